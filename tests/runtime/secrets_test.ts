/**
 * Secrets: `[secrets.NAME]` from a project file or a variable, read-only at /run/secrets/NAME in a
 * runc container (a busybox image built here, its service running as a non-root user of the
 * image), and as `HD_SECRET_<NAME>` paths for a host service; hd.toml errors as a table.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { sandboxSkip } from "./_util.ts";
import { throwsHd } from "../config/_util.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec, parseSpec } from "../../src/config/parse.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { HostRuntime } from "../../src/runtime/host.ts";
import { releaseEnv } from "../../src/runtime/sandbox_steps.ts";
import { releaseImageServices } from "../../src/runtime/image_services.ts";
import { removeSecrets, secretsRunDir, secretVar } from "../../src/runtime/secrets.ts";
import { freePort } from "../oci/_fixtures.ts";
import { imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";

Deno.test("secrets in hd.toml: forms and located errors", () => {
  using tmp = tempDir();
  const load = (text: string) =>
    parseSpec(`[environment]\nname = "t"\n${text}\n`, `${tmp.path}/hd.toml`, {
      env: { SET: "v" },
    });
  const s = load(
    `[services.a]\ncommand = "x"\nsecrets = ["db", "tok"]\n` +
      `[secrets.db]\nfile = "./secrets//db.txt"\n[secrets.tok]\nenvironment = "SET"\n`,
  );
  assertEquals(s.secrets, {
    db: { name: "db", file: "secrets/db.txt" },
    tok: { name: "tok", environment: "SET" },
  });
  assertEquals(s.services.a.secrets, ["db", "tok"]);
  assertEquals(secretVar("db.pass-word"), "HD_SECRET_DB_PASS_WORD");
  const bad: [string, string][] = [
    [
      '[services.a]\ncommand = "x"\nsecrets = ["dbb"]\n[secrets.db]\nfile = "f"',
      'unknown secret "dbb"',
    ],
    ['[services.a]\ncommand = "x"\nsecrets = ["nope"]', 'unknown secret "nope"'],
    ['[secrets.db]\nfile = "f"\nenvironment = "SET"', "exactly one of file and environment"],
    ["[secrets.db]", "exactly one of file and environment"],
    ['[secrets.db]\nfile = "../f"', 'leaves the project (a ".." component)'],
    ['[secrets.db]\nfile = "/etc/shadow"', "is an absolute path"],
    ['[secrets.db]\nenvironment = "UNSET_X"', "reads the variable UNSET_X, which is not set"],
    ['[secrets.DB]\nfile = "f"', 'secret name "DB" is not valid'],
    ['[secrets.db]\npath = "f"', 'unknown key "path"'],
  ];
  for (const [text, want] of bad) {
    const e = throwsHd(() => load(text));
    assert(e.message.includes(want), `${text}: ${e.message}`);
    assert(/hd\.toml:\d+:\d+: /.test(e.message), e.message);
    if (text.includes('"dbb"')) assert(e.hint.includes('did you mean "db"?'), e.hint);
  }
});

const skip = sandboxSkip;

async function get(url: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(url);
      if (r.ok) return await r.text();
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no answer from ${url}`);
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("timed out");
}

testIf(skip, "secrets: /run/secrets in a container, HD_SECRET_* paths on the host", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "sec", {
    Env: ["PATH=/bin"],
  });
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/secrets`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/secrets/db.txt`, "s3cret-file\n");
  Deno.chmodSync(`${dir}/secrets/db.txt`, 0o644);
  const port = freePort();
  const script = [
    "cat /run/secrets/db /run/secrets/tok > /out/seen",
    "if echo x > /run/secrets/db 2>/dev/null; then echo writable; else echo read-only; fi >> /out/seen",
    "id -u >> /out/seen",
    `exec httpd -f -p 127.0.0.1:${port} -h /out`,
  ].join("; ");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "sec"

[secrets.db]
file = "secrets/db.txt"

[secrets.tok]
environment = "HD_TEST_TOKEN"

[services.box]
image = "${ref}"
user = "www"
command = ${JSON.stringify(["sh", "-c", script])}
tmpfs = ["/out"]
secrets = ["db", "tok"]
port = ${port}

[services.host]
command = "cat \\"$HD_SECRET_DB\\" \\"$HD_SECRET_TOK\\" > host-seen; exec sleep 60"
secrets = ["db", "tok"]
`,
  );
  Deno.env.set("HD_TEST_TOKEN", "tok-from-env");
  let sup: Supervisor | null = null;
  const spec = loadSpec(`${dir}/hd.toml`);
  try {
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const rt = await HostRuntime.create(spec, store);
    await rt.prepare();
    await rt.ready();
    sup = new Supervisor({ services: rt.services, dir, env: rt.hostEnv, graceMs: 1000 });
    sup.start();
    assertEquals(
      await get(`http://127.0.0.1:${port}/seen`),
      "s3cret-file\ntok-from-envread-only\n33\n",
    );
    await until(() => {
      try {
        return Deno.readTextFileSync(`${dir}/host-seen`) === "s3cret-file\ntok-from-env";
      } catch {
        return false;
      }
    });
    // the variable's value sits in a private directory on /run, not in the project
    const run = secretsRunDir(dir);
    assertEquals(Deno.statSync(run).mode! & 0o777, 0o700);
    assertEquals(Deno.statSync(`${run}/tok`).mode! & 0o777, 0o444);
    assert(!Deno.readTextFileSync(`${dir}/hd.toml`).includes("tok-from-env"));
  } finally {
    Deno.env.delete("HD_TEST_TOKEN");
    await sup?.close();
    await reg.stop().catch(() => {});
    await releaseEnv(spec);
    releaseImageServices(spec);
    removeSecrets(dir);
  }
  let gone = false;
  try {
    Deno.statSync(secretsRunDir(dir));
  } catch {
    gone = true;
  }
  assert(gone, "secrets left after down");
});

/**
 * Who runs a base's steps and services, in real runc containers on the busybox image with users
 * www (33, also in group web) and app (1000): `[environment] user` is the default, a step's
 * `user` / `workdir` apply to that step only (Dockerfile USER / WORKDIR), a base service's `user`
 * overrides the default; names are resolved through the image root's /etc/passwd, and an unknown
 * name fails the step with its name.
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir, testIf } from "../_helpers.ts";
import { sandboxSkip } from "./_util.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { compileEnv } from "../../src/env/compile.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { SandboxRuntime } from "../../src/runtime/sandbox.ts";
import { runHostStep } from "../../src/runtime/host.ts";
import { unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { uniqueLayers } from "../../src/sandbox/layers.ts";
import { imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";

const skip = sandboxSkip;

async function until(cond: () => boolean, ms = 15000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

const WHO = 'id -u; id -g; echo \\"$HOME\\"; pwd';

testIf(skip, "user and workdir: steps and base services run as the user named", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "users");
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/out`, { recursive: true });
  Deno.chmodSync(`${dir}/out`, 0o777); // the services (uid 33, 1000) write their answers here
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "runas"
base = "${ref}"
user = "app"

[build]
steps = [
  { run = "mkdir -p /out && chmod 1777 /out && (${WHO}) > /out/s1", user = "root" },
  { run = "touch /tmp/a" },
  { run = "touch /tmp/b" },
  { run = "(${WHO}) > /out/s2", workdir = "/srv" },
  { run = "(${WHO}; id -G) > /out/s3", user = "www:web", workdir = "sub" },
]

[services.dflt]
command = "cat /out/s1 /out/s2 /out/s3 > out/.steps && mv out/.steps out/steps; (${WHO}) > out/.dflt && mv out/.dflt out/dflt; exec sleep 1000"

[services.www]
command = "(${WHO}; id -G) > out/.www && mv out/.www out/www; exec sleep 1000"
user = "www"
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  let sup: Supervisor | null = null;
  try {
    await rt.prepare();
    const c = await compileEnv(store, spec, { baseId: rt.baseId });
    for (const [i, s] of c.steps.entries()) {
      const lines: string[] = [];
      const r = await rt.runStep(i, s.id, s.spec, { onLine: (l) => lines.push(l) }).done;
      assertEquals(r.code, 0, `step ${i + 1}: ${lines.join("\n")}`);
    }
    assertEquals(await rt.ready(), false);
    sup = new Supervisor({ services: rt.services, dir, env: rt.hostEnv, graceMs: 1000 });
    sup.start();
    // each answer is written aside and renamed into place: a file seen is a file complete
    const ok = await until(() =>
      ["steps", "dflt", "www"].every((f) => {
        try {
          return Deno.readTextFileSync(`${dir}/out/${f}`).endsWith("\n");
        } catch {
          return false;
        }
      })
    );
    assertEquals(ok, true, "the services wrote their answers");
    const steps = Deno.readTextFileSync(`${dir}/out/steps`).trim().split("\n");
    assertEquals(steps.slice(0, 4), ["0", "0", "/root", "/app"], "step 1: root, as asked");
    assertEquals(steps.slice(4, 8), ["1000", "1000", "/home/app", "/srv"], "step 2: the default");
    assertEquals(steps.slice(8, 12), ["33", "82", "/var/www", "/app/sub"], "step 3: www:web");
    assertEquals(steps[12].split(" ").sort(), ["82"], "www:web: only the group named");
    // (steps 2 and 3 left the same layer, which overlayfs takes once: uniqueLayers)
    assertEquals(
      Deno.readTextFileSync(`${dir}/out/dflt`).trim().split("\n"),
      ["1000", "1000", "/home/app", "/app"],
      "a service without user: [environment] user",
    );
    const www = Deno.readTextFileSync(`${dir}/out/www`).trim().split("\n");
    assertEquals(www.slice(0, 4), ["33", "33", "/var/www", "/app"], "its own user");
    assertEquals(www[4].split(" ").sort(), ["33", "82"], "with the groups that list it");
  } finally {
    await sup?.close();
    await rt.close();
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

testIf(skip, "user: a name the image does not define fails the step, naming it", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "users");
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "runas-bad"
base = "${ref}"

[build]
steps = [{ run = "id", inputs = [], user = "nobody" }]
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  try {
    await rt.prepare();
    const c = await compileEnv(store, spec, { baseId: rt.baseId });
    const s = c.steps[0];
    const lines: string[] = [];
    const r = await rt.runStep(0, s.id, s.spec, { onLine: (l) => lines.push(l) }).done;
    assertEquals(r.code, 1);
    assertIncludes(lines.join("\n"), 'Cannot run build step 1 as user "nobody"');
    assertEquals(rt.isCached(0, s.id), false, "nothing kept");
  } finally {
    await rt.close();
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

testIf(skip, "hd exec / hd shell: as [environment] user, or as --user", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "users");
  const dir = `${tmp.path}/proj`;
  const store = `${tmp.path}/store`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "runas-exec"\nbase = "${ref}"\nuser = "app"\n`,
  );
  try {
    const run = async (...args: string[]) => {
      const r = await hd(args, { store, cwd: dir });
      return { code: r.code, out: r.stdout.trim(), err: r.stderr };
    };
    const who = "id -u; id -g; echo $HOME";
    const dflt = await run("exec", "sh", "-c", who);
    assertEquals(dflt.code, 0, dflt.err);
    assertEquals(dflt.out.split("\n"), ["1000", "1000", "/home/app"], "[environment] user");
    const root = await run("exec", "--user", "root", "sh", "-c", who);
    assertEquals(root.out.split("\n"), ["0", "0", "/root"], "--user root");
    const www = await run("shell", "--user", "www:web", "--", "sh", "-c", "id -u; id -g");
    assertEquals(www.out.split("\n"), ["33", "82"], "hd shell --user NAME:GROUP");
    const bad = await run("exec", "--user", "nobody", "id");
    assert(bad.code !== 0);
    assertIncludes(bad.err, '"nobody"');
    assertIncludes(bad.err, "--user");
  } finally {
    await hd(["down"], { store, cwd: dir });
    await reg.stop().catch(() => {});
  }
});

Deno.test("uniqueLayers: a repeated layer stays only at its highest place", () => {
  const cases: [string[], string[]][] = [
    [[], []],
    [["a", "b"], ["a", "b"]],
    [["a", "b", "b"], ["a", "b"]],
    [["a", "b", "a", "c"], ["b", "a", "c"]],
    [["x", "x", "x"], ["x"]],
  ];
  for (const [given, want] of cases) assertEquals(uniqueLayers(given), want, given.join(","));
});

Deno.test("workdir: a host step runs in its workdir below the project", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/sub/dir`, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    '[environment]\nname = "wd"\n[build]\nsteps = [{ run = "pwd > here", workdir = "sub/dir" }]\n',
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const r = await runHostStep(spec, spec.build.steps[0], "0".repeat(64), { capture: false }).done;
  assertEquals(r.code, 0);
  assertEquals(Deno.readTextFileSync(`${dir}/sub/dir/here`), `${Deno.realPathSync(dir)}/sub/dir\n`);
});

Deno.test("build.shell: a host step runs with the shell named", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  // busybox sh as the "shell", with its own flags: -e makes the failing `false` end the step
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    '[environment]\nname = "sh"\n[build]\nshell = ["/bin/sh", "-e", "-c"]\n' +
      'steps = ["echo $0 > zero; false; echo not-reached > after"]\n',
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const r = await runHostStep(spec, spec.build.steps[0], "0".repeat(64), { capture: false }).done;
  assert(r.code !== 0, "-e: the step failed at false");
  assertEquals(Deno.readTextFileSync(`${dir}/zero`), "/bin/sh\n");
  assertEquals(exists(`${dir}/after`), false);
});

testIf(skip, "build.shell: a sandboxed step runs with the shell named", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "users");
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]\nname = "sh-sbx"\nbase = "${ref}"\n[build]\nshell = ["/bin/sh", "-e", "-c"]\n` +
      'steps = [{ run = "false; touch /opt/after", inputs = [] }]\n',
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  try {
    await rt.prepare();
    const c = await compileEnv(store, spec, { baseId: rt.baseId });
    const r = await rt.runStep(0, c.steps[0].id, c.steps[0].spec, {}).done;
    assert(r.code !== 0, "-e: the step failed at false (sh -c alone would go on)");
  } finally {
    await rt.close();
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

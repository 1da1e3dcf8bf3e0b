/**
 * hd's own state stays out of reach from inside: the project's `.hd/` (up.json, logs, the
 * services' runc bundles and runc's state, the mounted root) is covered by an empty read-only
 * tmpfs wherever the project is visible in a container — a build step's overlay, `hd exec`, and
 * a sandboxed service, which could otherwise rewrite its own `config.json` (read by runc at its
 * next restart) and come back with every capability.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { busyboxRegistry } from "./_image.ts";
import { releaseEnvMount } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { stateMasks } from "../../src/sandbox/container.ts";

Deno.test("stateMasks: where the project's .hd would show inside (table)", () => {
  const o = (lowers: string[], dst: string) => ({ lowers, upper: "/u", work: "/w", dst });
  const cases: [string, Parameters<typeof stateMasks>, string[]][] = [
    ["project bound at /app", ["/p", [{ src: "/p", dst: "/app" }], []], ["/app/.hd"]],
    ["trailing slashes", ["/p/", [{ src: "/p/", dst: "/app/" }], []], ["/app/.hd"]],
    ["a parent of the project bound", ["/home/u/p", [{ src: "/home/u", dst: "/h" }], []], [
      "/h/p/.hd",
    ]],
    ["a subdirectory bound: no .hd there", ["/p", [{ src: "/p/src", dst: "/app/src" }], []], []],
    ["a sibling with a common prefix", ["/p", [{ src: "/pp", dst: "/x" }], []], []],
    ["the project as an overlay lower", ["/p", [], [o(["/p", "/r/app"], "/app")]], ["/app/.hd"]],
    ["bound twice", ["/p", [{ src: "/p", dst: "/a" }, { src: "/p", dst: "/b" }], []], [
      "/a/.hd",
      "/b/.hd",
    ]],
    ["unrelated binds", ["/p", [{ src: "/etc/resolv.conf", dst: "/etc/resolv.conf" }], []], []],
  ];
  for (const [what, args, want] of cases) assertEquals(stateMasks(...args), want, what);
});

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

testIf(skip, "steps, hd exec and services cannot read or rewrite the project's .hd/", async () => {
  using tmp = tempDir();
  const { reg, ref } = await busyboxRegistry(tmp.path);
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  // the step tries to read and write hd's state through the project's overlay
  const probe = [
    "mkdir -p out",
    "(ls -A .hd; echo ls=$?) > out/step.txt 2>&1",
    "(echo x > .hd/planted; echo write=$?) >> out/step.txt 2>&1",
  ].join("; ");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "masked"
base = "${ref}"

[build]
steps = [{ run = "${probe}", inputs = [], outputs = ["out"] }]

[services.svc]
command = "for b in /app/.hd/sandbox/services/svc/config.json /app/.hd/up.json; do (echo '{}' > $b) 2>/dev/null && echo WROTE $b; done; ls -A /app/.hd > /app/svc-ls.txt 2>&1; echo done > /app/svc-done; sleep 600"
restart_policy = "never"
`,
  );
  try {
    await using _down = downAtEnd({ cwd: dir, store });
    const up = await hd(["up", "-d"], { store, cwd: dir });
    assertEquals(up.code, 0, up.stdout + up.stderr);
    for (let i = 0; i < 200 && !exists(`${dir}/svc-done`); i++) await sleep(25);
    assert(exists(`${dir}/svc-done`), "the service ran");
    assertEquals(
      Deno.readTextFileSync(`${dir}/svc-ls.txt`).trim(),
      "",
      "the service sees an empty .hd",
    );
    const bundle = Deno.readTextFileSync(`${dir}/.hd/sandbox/services/svc/config.json`);
    assert(bundle.includes('"ociVersion"'), "the service's bundle is untouched");
    assert(Deno.readTextFileSync(`${dir}/.hd/up.json`).includes('"pid"'), "up.json is untouched");

    const step = await hd(["exec", "cat", "/app/out/step.txt"], { store, cwd: dir });
    assertEquals(step.code, 0, step.stderr);
    assert(/^ls=0$/m.test(step.stdout), `the step lists an empty .hd: ${step.stdout}`);
    assert(!/^write=0$/m.test(step.stdout), `the step cannot write into .hd: ${step.stdout}`);
    assert(!exists(`${dir}/.hd/planted`), "nothing planted on the host");

    const ex = await hd(["exec", "sh", "-c", "ls -A /app/.hd; echo x > /app/.hd/planted"], {
      store,
      cwd: dir,
    });
    assert(ex.code !== 0, `hd exec cannot write into .hd: ${ex.stdout}${ex.stderr}`);
    assertEquals(ex.stdout.trim(), "", "hd exec sees an empty .hd");
    assert(!exists(`${dir}/.hd/planted`), "nothing planted by hd exec");
  } finally {
    await reg.stop();
    releaseEnvMount(loadSpec(`${dir}/hd.toml`));
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sandboxed services under the real supervisor: the loop runtime pulls the busybox image from a
 * docker-registry on 127.0.0.1, runs the build step in the sandbox (its output under /app is kept
 * visible over the project bind mount), mounts the root, and the supervisor starts the wrapped
 * service — busybox httpd inside the namespaces — which answers on loopback, restarts, and stops.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { firstAnswer, sandboxSkip } from "./_util.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { compileEnv } from "../../src/env/compile.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { SandboxRuntime } from "../../src/runtime/sandbox.ts";
import { envRunDir, releaseEnv, unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { serviceContainerId } from "../../src/sandbox/runc.ts";
import { signalGroup, spawnGroup } from "../../src/sandbox/process.ts";
import { groupMembers } from "../../src/sys/proc.ts";
import { exists } from "../../src/sys/fs.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

const skip = sandboxSkip;

const get = (url: string) => firstAnswer(url, 100);

testIf(skip, "a sandboxed service under the supervisor serves a build step's output", async () => {
  using tmp = tempDir();
  const { reg, ref } = await busyboxRegistry(tmp.path);
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/site`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/site/index.html`, "from the project\n");
  const port = freePort();
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "svc"
base = "${ref}"

[build]
steps = [{ run = "mkdir -p gen && hostname > gen/host.txt", inputs = ["site"], outputs = ["gen"] }]

[services.web]
command = "httpd -f -p 127.0.0.1:${port} -h /app"
port = ${port}
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  let sup: Supervisor | null = null;
  try {
    await rt.prepare();
    await reg.stop();
    const c = await compileEnv(store, spec, { baseId: rt.baseId });
    const s = c.steps[0];
    assertEquals(rt.isCached(0, s.id), false);
    const r = await rt.runStep(0, s.id, s.spec, {}).done;
    assertEquals(r.code, 0);
    assertEquals(rt.isCached(0, s.id), true);
    assertEquals(await rt.ready(), false);
    sup = new Supervisor({ services: rt.services, dir, env: rt.hostEnv, graceMs: 1000 });
    sup.start();
    assertEquals(await get(`http://127.0.0.1:${port}/site/index.html`), "from the project\n");
    // gen/ came from the step's layer, not from the project
    assertEquals(await get(`http://127.0.0.1:${port}/gen/host.txt`), "svc\n");
    Deno.writeTextFileSync(`${dir}/site/index.html`, "edited\n");
    assertEquals(await get(`http://127.0.0.1:${port}/site/index.html`), "edited\n");
    await sup.restart(["web"]);
    assertEquals(await get(`http://127.0.0.1:${port}/gen/host.txt`), "svc\n");
  } finally {
    await sup?.close();
    await rt.close(); // the environment's network
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

/** Pids of live processes whose command line is exactly `argv` (the test's own marker). */
function pidsOf(argv: string[]): number[] {
  const want = argv.join("\0");
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const c = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replace(/\0$/, "");
      const st = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (c === want && !/\) [ZX] /.test(st)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

testIf(skip, "SIGKILL of runc or of the service's group leaves no container process", async () => {
  using tmp = tempDir();
  const { reg, ref } = await busyboxRegistry(tmp.path);
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(`${dir}/index.html`, "up\n");
  const port = freePort();
  const marker = ["sleep", String(3000 + (port % 1000))];
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "svc-kill"
base = "${ref}"

[services.web]
command = "${marker.join(" ")} & httpd -f -p 127.0.0.1:${port} -h /app"
port = ${port}
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  const stateDir = `${envRunDir(spec)}/runc/${serviceContainerId(spec.dir, "web")}`;
  try {
    await rt.prepare();
    await rt.ready();
    const web = rt.services.web;
    for (const how of ["runc", "group"]) {
      const g = spawnGroup(web.command, { cwd: dir, env: web.env });
      assertEquals(await get(`http://127.0.0.1:${port}/index.html`), "up\n", how);
      assert(await until(() => pidsOf(marker).length === 1), `${how}: the marker runs`);
      if (how === "runc") {
        const runc = groupMembers(g.pid).find((p) =>
          Deno.readTextFileSync(`/proc/${p}/comm`).trim() === "runc"
        );
        assert(runc !== undefined && runc > 1, "runc is in the service's group");
        Deno.kill(runc, "SIGKILL");
      } else {
        signalGroup(g.pid, "SIGKILL");
      }
      await g.status;
      await Promise.all([g.stdout.cancel(), g.stderr.cancel()]);
      assert(await until(() => pidsOf(marker).length === 0), `${how}: no container process left`);
      assert(
        await until(() =>
          pidsOf(["httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/app"]).length === 0
        ),
      );
      // runc had no time to remove its state: the next start (loop) or hd down deletes it
      assert(exists(stateDir), `${how}: a stale state to clean`);
    }
    const rel = await releaseEnv(spec);
    assertEquals(rel.deleted, [serviceContainerId(spec.dir, "web")]);
    assert(!exists(stateDir), "no stale runc state");
    assert(rel.unmounted, "the root is unmounted");
    Deno.removeSync(dir, { recursive: true }); // nothing busy below the project
  } finally {
    await reg.stop();
    unmountEnv(spec);
  }
});

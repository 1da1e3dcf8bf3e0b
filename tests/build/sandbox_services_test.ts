/**
 * Sandboxed services under the real supervisor: the loop runtime pulls the busybox image from a
 * docker-registry on 127.0.0.1, runs the build step in the sandbox (its output under /app is kept
 * visible over the project bind mount), mounts the root, and the supervisor starts the wrapped
 * service — busybox httpd inside the namespaces — which answers on loopback, restarts, and stops.
 * @module
 */
import { assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec } from "../../src/spec/parse.ts";
import { compileEnv } from "../../src/spec/compile.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { SandboxRuntime } from "../../src/build/sandbox_runtime.ts";
import { unmountEnv } from "../../src/build/run_sandbox.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

const skip = skipUnless({
  root: true,
  commands: ["unshare", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox"],
});

async function get(url: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(url);
      return await r.text();
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`no answer from ${url}`);
}

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
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

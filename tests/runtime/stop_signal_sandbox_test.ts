/**
 * A sandboxed service's `stop_signal` reaches the service inside its runc container (runc and
 * tini forward it): an sh script that traps SIGINT and ignores SIGTERM stops at once, well within
 * its long grace.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { sandboxSkip } from "./_util.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { SandboxRuntime } from "../../src/runtime/sandbox.ts";
import { unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

const skip = sandboxSkip;

async function until(cond: () => boolean, ms = 15000): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

const read = (p: string) => {
  try {
    return Deno.readTextFileSync(p);
  } catch {
    return "";
  }
};

testIf(skip, "stop_signal: SIGINT reaches a service in its runc container", async () => {
  using tmp = tempDir();
  const { reg, ref } = await busyboxRegistry(tmp.path);
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/out`, { recursive: true });
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "stopsig"
base = "${ref}"

[services.app]
command = "trap 'echo int >> out/sig; exit 0' INT; trap 'echo term >> out/sig' TERM; echo up > out/up; while :; do sleep 0.05; done"
stop_signal = "SIGINT"
restart_grace = "20s"
restart_policy = "never"
`,
  );
  const spec = loadSpec(`${dir}/hd.toml`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const rt = new SandboxRuntime(spec, store);
  const events: string[] = [];
  let sup: Supervisor | null = null;
  try {
    await rt.prepare();
    await rt.ready();
    sup = new Supervisor({
      services: rt.services,
      dir,
      env: rt.hostEnv,
      graceMs: 1000,
      onEvent: (s, m) => events.push(`${s}: ${m}`),
    });
    sup.start();
    assert(await until(() => read(`${dir}/out/up`) === "up\n"), "the service started");
    const t0 = performance.now();
    await sup.stop(["app"]);
    const ms = performance.now() - t0;
    assertEquals(read(`${dir}/out/sig`), "int\n", "the trap of SIGINT ran, no SIGTERM came");
    assert(events.includes("app: stopped"), events.join("; "));
    assert(ms < 10_000, `stopped by the signal, not the 20 s grace: ${ms} ms`);
  } finally {
    await sup?.close();
    await rt.close();
    await reg.stop().catch(() => {});
    unmountEnv(spec);
  }
});

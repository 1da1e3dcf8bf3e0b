/**
 * Per-service `stop_signal` and `restart_grace` under the real supervisor, with host services:
 * an sh script that traps SIGINT (and ignores SIGTERM) stops on the first signal when its
 * stop_signal is SIGINT; a service that ignores its stop signal is killed after its own grace,
 * not the supervisor's.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { svc, waitFor } from "./_util.ts";

const SETSID = skipUnless({ commands: ["setsid"] });

// writes `int`/`term` to its marker on those signals; only SIGINT ends it (the sleep is a child:
// the trap runs when it ends, so it sleeps in short steps)
const TRAPS = (m: string) =>
  `trap 'echo int >> ${m}; exit 0' INT; trap 'echo term >> ${m}' TERM; ` +
  `echo up > ${m}.up; while :; do sleep 0.05; done`;

testIf(SETSID, "stop_signal: the supervisor sends the service's signal, not SIGTERM", async () => {
  using tmp = tempDir();
  const [a, b] = [`${tmp.path}/a`, `${tmp.path}/b`];
  const events: string[] = [];
  const sup = new Supervisor({
    services: {
      // SIGINT: the trap ends it at once
      a: svc("a", TRAPS(a), { stop_signal: "SIGINT", restart_policy: "never" }),
      // the default SIGTERM: it does not end, so the (own, short) grace ends in SIGKILL
      b: svc("b", TRAPS(b), { restart_policy: "never", restartGraceMs: 300 }),
    },
    dir: tmp.path,
    env: { PATH: Deno.env.get("PATH")! },
    graceMs: 20_000, // [options]: a service without its own grace would hold the stop this long
    onEvent: (s, m) => events.push(`${s}: ${m}`),
  });
  try {
    sup.start();
    await waitFor(() => [a, b].every((m) => exists(`${m}.up`)), "both up");
    const t0 = performance.now();
    await sup.stop(["a", "b"]);
    const ms = performance.now() - t0;
    assertEquals(Deno.readTextFileSync(a), "int\n", "a got SIGINT, and only it");
    assert(Deno.readTextFileSync(b).startsWith("term"), "b got SIGTERM");
    assert(events.includes("a: stopped"), events.join("; "));
    assert(events.includes("b: killed (grace period over)"), events.join("; "));
    assert(ms < 10_000, `b's own grace (300 ms), not the 20 s of [options]: ${ms} ms`);
  } finally {
    await sup.close();
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

/**
 * When `hd up -d` stops waiting for the services (servicesSettled in src/services/report.ts), as a
 * table: ready or settled for good, never while something may still change by itself.
 */
import { assertEquals } from "../_assert.ts";
import { servicesSettled } from "../../src/services/report.ts";
import type { ServiceState } from "../../src/services/supervisor.ts";

type S = { name: string; state: ServiceState; ready: boolean | null; waitingFor: string[] };
const s = (name: string, state: ServiceState, more: Partial<S> = {}): S => ({
  name,
  state,
  ready: null,
  waitingFor: [],
  ...more,
});

const ROWS: [string, S[], boolean][] = [
  ["nothing to run", [], true],
  ["running without a port", [s("a", "running")], true],
  ["running, port ready", [s("a", "running", { ready: true })], true],
  ["running, port not ready yet", [s("a", "running", { ready: false })], false],
  ["starting", [s("a", "starting")], false],
  ["pending", [s("a", "pending")], false],
  ["in backoff (will restart)", [s("a", "backoff")], false],
  ["stopping", [s("a", "stopping")], false],
  ["crashed, exited, stopped", [s("a", "crashed"), s("b", "exited"), s("c", "stopped")], true],
  [
    "waiting for a crashed one",
    [s("db", "crashed"), s("api", "waiting", { waitingFor: ["db"] })],
    true,
  ],
  [
    "waiting for one still starting",
    [s("db", "starting"), s("api", "waiting", { waitingFor: ["db"] })],
    false,
  ],
  [
    "waiting, through a waiting one, for an exited one",
    [
      s("db", "exited"),
      s("api", "waiting", { waitingFor: ["db"] }),
      s("web", "waiting", { waitingFor: ["api"] }),
    ],
    true,
  ],
  [
    "waiting for one not in the list",
    [s("api", "waiting", { waitingFor: ["ghost"] })],
    true,
  ],
  [
    "waiting in a circle (a bad state): settled, not a hang",
    [s("a", "waiting", { waitingFor: ["b"] }), s("b", "waiting", { waitingFor: ["a"] })],
    true,
  ],
  [
    "one ready, one not yet",
    [s("db", "running", { ready: true }), s("api", "starting")],
    false,
  ],
];

Deno.test("report: when hd up -d stops waiting (servicesSettled)", () => {
  for (const [what, services, want] of ROWS) assertEquals(servicesSettled(services), want, what);
});

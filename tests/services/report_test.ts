/**
 * When `hd up -d` stops waiting for the services (servicesSettled in src/services/report.ts), as a
 * table: ready or settled for good, never while something may still change by itself.
 */
import { assertEquals } from "../_assert.ts";
import { servicesSettled, waitVerdict } from "../../src/services/report.ts";
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

Deno.test("waitVerdict: what `hd up -d --wait` makes of the services (table)", () => {
  type W = Parameters<typeof waitVerdict>[0][number];
  const w = (name: string, state: ServiceState, more: Partial<W> = {}): W => ({
    name,
    state,
    ready: null,
    waitingFor: [],
    lastExitCode: null,
    health: null,
    healthOutput: null,
    reason: null,
    ...more,
  });
  const rows: [string, W[], "ok" | "wait" | string][] = [
    ["nothing", [], "ok"],
    ["running, no port, no check, for 1 s", [w("a", "running", { uptimeMs: 1000 })], "ok"],
    ["running, no port, no check, just started", [w("a", "running", { uptimeMs: 20 })], "wait"],
    ["port ready", [w("a", "running", { ready: true })], "ok"],
    ["port not ready", [w("a", "starting", { ready: false })], "wait"],
    ["healthcheck starting", [w("a", "running", { health: "starting" })], "wait"],
    ["healthy", [w("a", "running", { health: "healthy" })], "ok"],
    [
      "unhealthy",
      [w("a", "running", { health: "unhealthy", healthOutput: "refused" })],
      "a: unhealthy: refused",
    ],
    ["a one-shot that completed", [w("m", "exited", { lastExitCode: 0 })], "ok"],
    ["a one-shot that failed", [w("m", "exited", { lastExitCode: 3 })], "m: exited with code 3"],
    ["backoff: may still come up", [w("a", "backoff", { lastExitCode: 1 })], "wait"],
    [
      "crash loop",
      [w("a", "crashed", { lastExitCode: 1 })],
      "a: crashed (exit code 1, crash loop)",
    ],
    [
      "a dependent a failed condition stopped",
      [
        w("m", "exited", { lastExitCode: 3 }),
        w("web", "failed", { reason: "m exited with code 3" }),
      ],
      "m: exited with code 3; web: not started: m exited with code 3",
    ],
    [
      "waiting for a crashed one",
      [w("db", "crashed", { lastExitCode: 1 }), w("api", "waiting", { waitingFor: ["db"] })],
      "db: crashed (exit code 1, crash loop); api: waiting for db, which is not coming up",
    ],
    ["waiting for one on its way", [
      w("db", "starting"),
      w("api", "waiting", { waitingFor: ["db"] }),
    ], "wait"],
    ["never started (not selected)", [w("a", "stopped"), w("b", "running", { ready: true })], "ok"],
  ];
  for (const [what, services, want] of rows) {
    const v = waitVerdict(services);
    const got = v.ok
      ? "ok"
      : v.failed.length
      ? v.failed.map((f) => `${f.name}: ${f.why}`).join("; ")
      : "wait";
    assertEquals(got, want, what);
  }
});

import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { parseSpec } from "../../src/config/parse.ts";
import type { HealthcheckSpec } from "../../src/config/types.ts";
import {
  conditionMet,
  type DepView,
  healthState,
  initialHealth,
  nextCheckDelay,
} from "../../src/services/health.ts";
import { Supervisor } from "../../src/services/supervisor.ts";
import { freePort, pidsWith, svc, waitFor } from "./_util.ts";

const SETSID = skipUnless({ commands: ["setsid"] });
const NODE = skipUnless({ commands: ["node", "setsid"] });

const spec = (more: Partial<HealthcheckSpec> = {}): HealthcheckSpec => ({
  probe: { kind: "shell", script: "true" },
  intervalMs: 1000,
  timeoutMs: 1000,
  retries: 3,
  startPeriodMs: 0,
  ...more,
});

Deno.test("health: healthState decides starting/healthy/unhealthy (table)", () => {
  const ok = { ok: true, output: "PONG" };
  const bad = { ok: false, output: "refused" };
  type Step = [number, boolean];
  const cases: [string, Partial<HealthcheckSpec>, Step[], string, number][] = [
    ["a success at once: healthy", {}, [[0, true]], "healthy", 0],
    [
      "fast failures before the first success count once per interval",
      {},
      [
        [0, false],
        [500, false],
        [999, false],
      ],
      "starting",
      0,
    ],
    [
      "…and after three intervals of failing: unhealthy",
      {},
      [
        [0, false],
        [1000, false],
        [1500, false],
        [2000, false],
        [3000, false],
      ],
      "unhealthy",
      3,
    ],
    [
      "start_period: failures do not count",
      { startPeriodMs: 5000 },
      [
        [1000, false],
        [2000, false],
        [3000, false],
        [4000, false],
        [4999, false],
      ],
      "starting",
      0,
    ],
    [
      "after start_period they count from its end",
      { startPeriodMs: 5000 },
      [
        [5500, false],
        [6000, false],
        [7000, false],
      ],
      "starting",
      2,
    ],
    [
      "once healthy, every failure counts (checks are an interval apart)",
      {},
      [
        [0, true],
        [1000, false],
        [2000, false],
      ],
      "healthy",
      2,
    ],
    [
      "…and retries of them make it unhealthy, start_period or not",
      { startPeriodMs: 60_000 },
      [
        [0, true],
        [1000, false],
        [2000, false],
        [3000, false],
      ],
      "unhealthy",
      3,
    ],
    [
      "a success resets the count and recovers",
      { retries: 1 },
      [
        [0, true],
        [1000, false],
        [2000, true],
      ],
      "healthy",
      0,
    ],
    [
      "retries = 1: one counted failure is unhealthy",
      { retries: 1 },
      [[1000, false]],
      "unhealthy",
      1,
    ],
  ];
  for (const [what, more, steps, status, failures] of cases) {
    let h = initialHealth(0);
    for (const [t, good] of steps) h = healthState(h, good ? ok : bad, t, spec(more));
    assertEquals([h.status, h.failures], [status, failures], what);
  }
  const h0 = initialHealth(0);
  assertEquals(nextCheckDelay(h0, spec({ intervalMs: 30_000 })), 500);
  assertEquals(nextCheckDelay(h0, spec({ intervalMs: 100 })), 100);
  const h1 = healthState(h0, ok, 10, spec({ intervalMs: 30_000 }));
  assertEquals(nextCheckDelay(h1, spec({ intervalMs: 30_000 })), 30_000);
  assertEquals(h1.output, "PONG");
});

Deno.test("health: conditionMet per depends_on condition (table)", () => {
  const dep = (more: Partial<DepView>): DepView => ({
    name: "d",
    state: "running",
    ready: null,
    health: null,
    lastExitCode: null,
    ...more,
  });
  const cases: [string, Parameters<typeof conditionMet>[0], DepView, boolean, string | null][] = [
    ["started: running", "started", dep({}), true, null],
    [
      "started: starting (port not yet)",
      "started",
      dep({ state: "starting", ready: false }),
      true,
      null,
    ],
    ["started: pending", "started", dep({ state: "pending" }), false, null],
    [
      "started: a one-shot that completed",
      "started",
      dep({ state: "exited", lastExitCode: 0 }),
      true,
      null,
    ],
    ["healthy: running, no check, no port", "healthy", dep({}), true, null],
    ["healthy: port not ready", "healthy", dep({ state: "starting", ready: false }), false, null],
    ["healthy: port ready", "healthy", dep({ ready: true }), true, null],
    ["healthy: check starting", "healthy", dep({ health: "starting" }), false, null],
    ["healthy: check healthy", "healthy", dep({ health: "healthy" }), true, null],
    ["healthy: check unhealthy", "healthy", dep({ health: "unhealthy" }), false, null],
    [
      "healthy: crashed waits (hd restart revives it)",
      "healthy",
      dep({ state: "crashed" }),
      false,
      null,
    ],
    ["completed: still running", "completed_successfully", dep({}), false, null],
    [
      "completed: exit 0",
      "completed_successfully",
      dep({ state: "exited", lastExitCode: 0 }),
      true,
      null,
    ],
    [
      "completed: exit 3 fails the dependent",
      "completed_successfully",
      dep({ state: "exited", lastExitCode: 3 }),
      false,
      "d exited with code 3 (depends_on condition completed_successfully)",
    ],
    [
      "completed: a crash loop fails it too",
      "completed_successfully",
      dep({ state: "crashed", lastExitCode: 1 }),
      false,
      "d exited with code 1 (depends_on condition completed_successfully)",
    ],
  ];
  for (const [what, cond, d, met, failed] of cases) {
    const v = conditionMet(cond, d);
    assertEquals(v.met, met, what);
    assertEquals(v.met ? null : v.failed, failed, what);
  }
});

Deno.test("health: hd.toml healthcheck and depends_on forms parse; bad ones are one-line errors", () => {
  const toml = (svcs: string) => `[environment]\nname = "t"\n${svcs}`;
  const s = parseSpec(
    toml(`[services.db]
command = "db"
healthcheck = { test = ["CMD", "pg_isready", "-q"], interval = "2s", retries = 5, start_period = "10s" }
[services.cache]
command = "c"
healthcheck = { test = "redis-cli ping" }
[services.api]
command = "a"
port = 3000
healthcheck = { http = "http://127.0.0.1:3000/health", timeout = "1s" }
depends_on = ["db", "cache"]
[services.migrate]
command = "m"
restart_policy = "never"
healthcheck = { test = ["CMD-SHELL", "test -f done"] }
[services.web]
command = "w"
healthcheck = { tcp = 8080 }
depends_on = { db = "service_healthy", migrate = "completed_successfully", cache = { condition = "service_started" } }
`),
    "/p/hd.toml",
  );
  const hc = (n: string) => s.services[n].healthcheck;
  assertEquals(hc("db")?.probe, { kind: "cmd", argv: ["pg_isready", "-q"] });
  assertEquals(
    [hc("db")?.intervalMs, hc("db")?.timeoutMs, hc("db")?.retries, hc("db")?.startPeriodMs],
    [2000, 30_000, 5, 10_000],
  );
  assertEquals(hc("cache")?.probe, { kind: "shell", script: "redis-cli ping" });
  assertEquals(hc("api")?.probe, { kind: "http", url: "http://127.0.0.1:3000/health" });
  assertEquals(hc("migrate")?.probe, { kind: "shell", script: "test -f done" });
  assertEquals(hc("web")?.probe, { kind: "tcp", port: 8080 });
  assertEquals(s.services.api.depends_on, ["db", "cache"]);
  assertEquals(s.services.api.depends_conditions, undefined);
  assertEquals(s.services.web.depends_on, ["db", "migrate", "cache"]);
  assertEquals(s.services.web.depends_conditions, {
    db: "healthy",
    migrate: "completed_successfully",
    cache: "started",
  });
  assertEquals(s.services.migrate.healthcheck?.probe.kind, "shell");
  const bad: [string, RegExp][] = [
    [`healthcheck = { test = ["CMD"] }`, /test must be \["CMD", program/],
    [`healthcheck = { test = ["NONE"] }`, /test must be/],
    [
      `healthcheck = { test = "x", http = "http://a/" }`,
      /one of test, http or tcp, not test and http/,
    ],
    [`healthcheck = { interval = "1s" }`, /needs one of test, http or tcp/],
    [`healthcheck = { http = "ftp://x/" }`, /http must be an http/],
    [`healthcheck = { tcp = 70000 }`, /tcp must be a port/],
    [`healthcheck = { test = "x", retries = 0 }`, /retries must be an integer/],
    [`healthcheck = { test = "x", interval = "99h" }`, /interval must be at most 1h/],
    [`healthcheck = { test = "x", timeout = "0s" }`, /timeout must be more than 0/],
    [`healthcheck = { test = "x", intervall = "1s" }`, /unknown key "intervall"/],
    [
      `depends_on = { x = "healty" }`,
      /condition of x must be started, healthy or completed_successfully, not "healty"/,
    ],
    [`depends_on = { nope = "healthy" }`, /unknown service "nope"/],
  ];
  for (const [line, want] of bad) {
    try {
      parseSpec(
        toml(`[services.x]\ncommand = "x"\n[services.y]\ncommand = "y"\n${line}\n`),
        "/p/hd.toml",
      );
      throw new Error(`accepted: ${line}`);
    } catch (e) {
      assert(want.test((e as Error).message), `${line}: ${(e as Error).message}`);
      assert((e as Error).message.includes("hd.toml:"), (e as Error).message);
    }
  }
});

function supervisor(dir: string, services: Parameters<typeof svc>[], events: string[]) {
  return new Supervisor({
    services: Object.fromEntries(services.map((a) => [a[0], svc(...a)])),
    dir,
    env: { PATH: Deno.env.get("PATH")!, GREETING: "hi" },
    graceMs: 500,
    onEvent: (s, m) => events.push(`${s}: ${m}`),
  });
}

const quick = (probe: HealthcheckSpec["probe"], more: Partial<HealthcheckSpec> = {}) =>
  spec({ probe, intervalMs: 100, timeoutMs: 2000, retries: 2, ...more });

testIf(
  SETSID,
  "health: a CMD check runs in the service's cwd and env; dependents wait for healthy",
  async () => {
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.path}/sub`);
    const events: string[] = [];
    const sup = supervisor(tmp.path, [
      ["db", "sleep 0.6; touch ready; exec sleep 60", {
        workdir: "sub",
        healthcheck: quick({ kind: "shell", script: 'test -f ready && echo "ok $GREETING"' }, {
          retries: 50,
        }),
      }],
      ["app", "exec sleep 60", { depends_on: ["db"] }],
    ], events);
    try {
      sup.start();
      await waitFor(() => sup.status()[0].pid !== null, "db started");
      await new Promise((r) => setTimeout(r, 300));
      assertEquals(sup.status()[0].health, "starting");
      assertEquals(sup.status()[1].state, "waiting", events.join("\n"));
      assert(await sup.settled(10_000));
      const [db, app] = sup.status();
      assertEquals([db.health, db.healthOutput, app.state], ["healthy", "ok hi", "running"]);
      const i = (p: string) => events.findIndex((e) => e.startsWith(p));
      assert(
        i("db: healthy: ok hi") >= 0 && i("db: healthy") < i("app: started"),
        events.join("\n"),
      );
    } finally {
      await sup.close();
    }
  },
);

testIf(
  SETSID,
  "health: failing checks make a service unhealthy with the last output line; timeouts fail",
  async () => {
    using tmp = tempDir();
    const events: string[] = [];
    const sup = supervisor(tmp.path, [
      ["bad", "exec sleep 60", {
        healthcheck: quick({
          kind: "cmd",
          argv: ["sh", "-c", "echo first; echo 'no answer'; exit 1"],
        }),
      }],
      ["slow", "exec sleep 60", {
        healthcheck: quick({ kind: "cmd", argv: ["sleep", "30"] }, { timeoutMs: 150, retries: 1 }),
      }],
    ], events);
    try {
      sup.start();
      await waitFor(
        () => sup.status().every((s) => s.health === "unhealthy"),
        "both unhealthy",
        10_000,
      );
      const [bad, slow] = sup.status();
      assertEquals(bad.healthOutput, "no answer");
      assertEquals(slow.healthOutput, "timed out after 150 ms");
      assert(
        events.some((e) => e.startsWith("bad: unhealthy (2 failed checks): no answer")),
        events.join("\n"),
      );
      assertEquals(bad.state, "running", "an unhealthy service keeps running");
    } finally {
      await sup.close();
    }
  },
);

testIf(NODE, "health: an http check is healthy on 2xx/3xx and unhealthy on 500", async () => {
  using tmp = tempDir();
  const [p1, p2] = [freePort(), freePort()];
  const server = (port: number, code: number) =>
    `exec node -e "require('http').createServer((q,r)=>{r.statusCode=${code};r.end('x')}).listen(${port},'127.0.0.1')"`;
  const events: string[] = [];
  const sup = supervisor(tmp.path, [
    ["ok", server(p1, 302), {
      healthcheck: quick({ kind: "http", url: `http://127.0.0.1:${p1}/` }),
    }],
    ["err", server(p2, 500), {
      healthcheck: quick({ kind: "http", url: `http://127.0.0.1:${p2}/` }, { retries: 1 }),
    }],
  ], events);
  try {
    sup.start();
    await waitFor(
      () => {
        const [a, b] = sup.status();
        // under load the first check may find node not listening yet: wait for the 500 itself
        return a.health === "healthy" && b.health === "unhealthy" && b.healthOutput === "HTTP 500";
      },
      "302 healthy, 500 unhealthy",
      10_000,
    );
    assertEquals(sup.status().map((s) => s.healthOutput), ["HTTP 302", "HTTP 500"]);
  } finally {
    await sup.close();
  }
});

testIf(
  SETSID,
  "depends_on: completed_successfully runs a one-shot first; a failed one fails its dependents",
  async () => {
    using tmp = tempDir();
    const events: string[] = [];
    const sup = supervisor(tmp.path, [
      ["migrate", "sleep 0.3; echo migrated > done", { restart_policy: "never" }],
      ["web", "test -f done && exec sleep 60", {
        depends_on: ["migrate"],
        depends_conditions: { migrate: "completed_successfully" },
        restart_policy: "never",
      }],
      ["broken", "exit 3", { restart_policy: "never" }],
      ["api", "exec sleep 60", {
        depends_on: ["broken"],
        depends_conditions: { broken: "completed_successfully" },
      }],
      ["worker", "exec sleep 60", {
        depends_on: ["migrate"],
        depends_conditions: { migrate: "started" },
      }],
    ], events);
    try {
      sup.start();
      assert(await sup.settled(10_000), events.join("\n"));
      const st = Object.fromEntries(sup.status().map((s) => [s.name, s]));
      assertEquals(
        [st.migrate.state, st.migrate.lastExitCode, st.web.state, st.broken.state, st.api.state],
        ["exited", 0, "running", "exited", "failed"],
        events.join("\n"),
      );
      assertEquals(
        st.api.reason,
        "broken exited with code 3 (depends_on condition completed_successfully)",
      );
      assert(
        events.includes(
          "api: not started: broken exited with code 3 (depends_on condition completed_successfully)",
        ),
      );
      assertEquals(st.worker.state, "running");
      // restarting web does not run the completed migration again
      await sup.restart(["web"]);
      assert(await sup.settled(10_000));
      assertEquals(
        events.filter((e) => e.startsWith("migrate: started")).length,
        1,
        events.join("\n"),
      );
    } finally {
      await sup.close();
    }
  },
);

testIf(SETSID, "health: stopping a service ends its running check at once", async () => {
  using tmp = tempDir();
  const marker = `${Math.floor(Math.random() * 1e6) + 1000}.5`; // a unique sleep time
  const events: string[] = [];
  const sup = supervisor(tmp.path, [
    ["db", "exec sleep 600", {
      healthcheck: quick({ kind: "cmd", argv: ["sleep", marker] }, { timeoutMs: 3_600_000 }),
    }],
  ], events);
  sup.start();
  await waitFor(() => pidsWith(`sleep ${marker}`).length > 0, "the check running");
  const t0 = performance.now();
  await sup.close();
  assert(performance.now() - t0 < 3000, "close did not wait for the check");
  await waitFor(() => pidsWith(`sleep ${marker}`).length === 0, "the check killed", 3000);
});

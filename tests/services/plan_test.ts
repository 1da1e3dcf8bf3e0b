/**
 * The loop's decisions as tables (src/services/plan.ts): which steps re-run, which services
 * restart and why, what an edit of hd.toml does, and the lines explaining it — no files, no
 * processes. One project throughout: db ← api ← web (depends_on), a worker watching nothing, an
 * install step keyed by package-lock.json and a chained build step.
 */
import { assertEquals } from "../_assert.ts";
import type { BuildStepSpec, EnvSpec } from "../../src/config/types.ts";
import { GlobSet } from "../../src/watch/pathmap.ts";
import {
  type Changes,
  configChange,
  configChanged,
  configPath,
  nextSteps,
  planRestart,
  type PlanState,
  planUpdate,
  reloadRefusal,
  stepJobs,
  type StepQueue,
  type StepsOutcome,
  stepWaves,
} from "../../src/services/plan.ts";
import { envSpec, svc } from "./_util.ts";

function step(index: number, run: string, more: Partial<BuildStepSpec> = {}): BuildStepSpec {
  return { run, inputs: null, outputs: [], env: {}, network: "host", index, ...more };
}

const SPEC: EnvSpec = envSpec("/p", {
  build: {
    steps: [
      step(0, "npm ci", { inputs: ["package-lock.json"], outputs: ["node_modules"] }),
      step(1, "npm run build"),
    ],
    cache: [],
  },
  services: {
    db: svc("db", "run-db", { watch: ["db"] }),
    api: svc("api", "run-api", { watch: ["api", "package-lock.json"], depends_on: ["db"] }),
    web: svc("web", "run-web", { watch: ["web"], depends_on: ["api"] }),
    worker: svc("worker", "run-worker"),
  },
});
const ORDER = ["db", "api", "web", "worker"];
const OLD = "a".repeat(64);
const NEW = "b".repeat(64);
const ROOT = "root aaaaaaaaaaaa \u2192 bbbbbbbbbbbb  ";

function state(more: Partial<PlanState> = {}): PlanState {
  const spec = more.spec ?? SPEC;
  return {
    spec,
    steps: [{ index: 0, hash: "h0", state: "ran" }, { index: 1, hash: "h1", state: "cached" }],
    watch: Object.fromEntries(
      Object.values(spec.services).map((s) => [s.name, new GlobSet(s.watch)]),
    ),
    order: ORDER,
    wanted: new Set(ORDER),
    servicesInPlace: true,
    canReload: true,
    ...more,
  };
}

function changes(more: Partial<Changes>): Changes {
  return {
    added: [],
    modified: [],
    removed: [],
    oldRoot: OLD,
    root: NEW,
    hashes: ["h0", "h1"],
    ...more,
  };
}

/** SPEC with `edit` applied to a deep copy. */
function edited(edit: (s: EnvSpec) => void): EnvSpec {
  const s = structuredClone(SPEC);
  edit(s);
  return s;
}

interface Row {
  name: string;
  state?: Partial<PlanState>;
  changes: Partial<Changes>;
  config?: string;
  rerun?: number[];
  /** Named for restart, then what restarts (with dependents). */
  restart?: string[];
  set?: string[];
  lines: string[];
}

const ROWS: Row[] = [
  {
    name: "a watched file: that service and its dependents",
    changes: { modified: ["api/server.js"] },
    restart: ["api"],
    set: ["api", "web"],
    lines: [
      `${ROOT}modified api/server.js`,
      "restarting api, web (api watches api/server.js)",
    ],
  },
  {
    name: "a file at the bottom of the graph: everything above it",
    changes: { added: ["db/schema.sql"] },
    restart: ["db"],
    set: ["db", "api", "web"],
    lines: [`${ROOT}added db/schema.sql`, "restarting db, api, web (db watches db/schema.sql)"],
  },
  {
    name: "a file only the top watches: the top alone",
    changes: { removed: ["web/page.js"] },
    restart: ["web"],
    set: ["web"],
    lines: [`${ROOT}removed web/page.js`, "restarting web (web watches web/page.js)"],
  },
  {
    name: "an unwatched file: nothing",
    changes: { modified: ["README.md"] },
    lines: [`${ROOT}modified README.md`, "no service watches it: nothing restarts"],
  },
  {
    name: "two services hit: each named once, reasons in watch order",
    changes: { modified: ["web/a.js", "api/b.js"] },
    restart: ["api", "web"],
    set: ["api", "web"],
    lines: [
      `${ROOT}modified web/a.js, api/b.js`,
      "restarting api, web (api watches api/b.js; web watches web/a.js)",
    ],
  },
  {
    name: "a watched file of a service not running (hd up db): nothing",
    state: { wanted: new Set(["db"]) },
    changes: { modified: ["web/a.js"] },
    lines: [`${ROOT}modified web/a.js`, "no service watches it: nothing restarts"],
  },
  {
    name: "dependents not running are not started by a restart",
    state: { wanted: new Set(["db", "api"]) },
    changes: { modified: ["db/x"] },
    restart: ["db"],
    set: ["db", "api"],
    lines: [`${ROOT}modified db/x`, "restarting db, api (db watches db/x)"],
  },
  {
    name: "a step's input changed: that step re-runs, and the chained one after it",
    changes: { modified: ["package-lock.json"], hashes: ["h0'", "h1'"] },
    rerun: [0, 1],
    restart: ["api"],
    set: ["api", "web"],
    lines: [
      `${ROOT}modified package-lock.json`,
      "restarting api, web (api watches package-lock.json)",
    ],
  },
  {
    name: "a tracked file nobody watches: the chained step re-runs, no restart, no 'nobody' line",
    changes: { modified: ["src/lib.ts"], hashes: ["h0", "h1'"] },
    rerun: [1],
    lines: [`${ROOT}modified src/lib.ts`],
  },
  {
    name: "a step that failed last time re-runs on any change",
    state: {
      steps: [{ index: 0, hash: "h0", state: "failed" }, {
        index: 1,
        hash: "h1",
        state: "pending",
      }],
    },
    changes: { modified: ["README.md"] },
    rerun: [0, 1],
    lines: [`${ROOT}modified README.md`],
  },
  {
    name: "many paths: the first three and a count",
    changes: { modified: ["a", "b", "c", "d", "e"] },
    lines: [`${ROOT}modified a, b, c and 2 more`, "no service watches it: nothing restarts"],
  },
  {
    name: "hd.toml: a service's own command changed: that service and its dependents restart",
    changes: {
      modified: ["hd.toml"],
      config: { spec: edited((s) => s.services.api.command = "run-api --v2") },
    },
    config: "in-place",
    restart: ["api"],
    set: ["api", "web"],
    lines: [
      `${ROOT}modified hd.toml`,
      "hd.toml changed: new configuration for api",
      "restarting api, web (api changed)",
    ],
  },
  {
    name: "hd.toml: a new watch glob applies to the same batch",
    changes: {
      modified: ["hd.toml", "static/logo.svg"],
      config: { spec: edited((s) => s.services.worker.watch = ["static"]) },
    },
    config: "in-place",
    restart: ["worker"],
    set: ["worker"],
    lines: [
      `${ROOT}modified hd.toml, static/logo.svg`,
      "hd.toml changed: new configuration for worker",
      "restarting worker (worker watches static/logo.svg)",
    ],
  },
  {
    name: "hd.toml: the same configuration (a comment): nothing to apply",
    changes: { modified: ["hd.toml"], config: { spec: structuredClone(SPEC) } },
    config: "in-place",
    lines: [
      `${ROOT}modified hd.toml`,
      "hd.toml changed: nothing to apply",
      "no service watches it: nothing restarts",
    ],
  },
  {
    name: "hd.toml: [environment] changed: reload, nothing else in this batch",
    changes: {
      modified: ["hd.toml", "api/x.js"],
      hashes: ["h0'", "h1'"],
      config: { spec: edited((s) => s.environment.env = { GREETING: "hello" }) },
    },
    config: "reload",
    lines: [`${ROOT}modified hd.toml, api/x.js`, "hd.toml changed: reloading the environment"],
  },
  {
    name: "hd.toml: a dependency between services changed: reload",
    changes: {
      modified: ["hd.toml"],
      config: { spec: edited((s) => s.services.worker.depends_on = ["db"]) },
    },
    config: "reload",
    lines: [`${ROOT}modified hd.toml`, "hd.toml changed: reloading the environment"],
  },
  {
    name: "hd.toml: a service added: reload",
    changes: {
      modified: ["hd.toml"],
      config: { spec: edited((s) => s.services.cron = svc("cron", "run-cron")) },
    },
    config: "reload",
    lines: [`${ROOT}modified hd.toml`, "hd.toml changed: reloading the environment"],
  },
  {
    name: "hd.toml: a service-only change in a sandbox (services wrapped): reload",
    state: { servicesInPlace: false },
    changes: {
      modified: ["hd.toml"],
      config: { spec: edited((s) => s.services.api.command = "run-api --v2") },
    },
    config: "reload",
    lines: [`${ROOT}modified hd.toml`, "hd.toml changed: reloading the environment"],
  },
  {
    name: "hd.toml: a reload with nobody to do it: a note, the batch goes on",
    state: { canReload: false },
    changes: {
      modified: ["hd.toml", "web/a.js"],
      config: { spec: edited((s) => s.options.debounceMs = 99) },
    },
    config: "manual",
    restart: ["web"],
    set: ["web"],
    lines: [
      `${ROOT}modified hd.toml, web/a.js`,
      "hd.toml changed: restart `hd up` to apply it",
      "restarting web (web watches web/a.js)",
    ],
  },
  {
    name: "hd.toml with an error: kept, the batch goes on",
    changes: { modified: ["hd.toml"], config: { error: "hd.toml:3: bad" } },
    config: "invalid",
    lines: [
      `${ROOT}modified hd.toml`,
      "hd.toml has an error: hd.toml:3: bad — keeping the running one",
      "no service watches it: nothing restarts",
    ],
  },
  {
    name: "a read hd.toml that is not among the changes is ignored",
    changes: { modified: ["README.md"], config: { error: "never read" } },
    lines: [`${ROOT}modified README.md`, "no service watches it: nothing restarts"],
  },
];

for (const row of ROWS) {
  Deno.test(`plan: ${row.name}`, () => {
    const plan = planUpdate(state(row.state), changes(row.changes));
    assertEquals(plan.config.kind, row.config ?? "unchanged", "config");
    assertEquals(plan.rerun, row.rerun ?? [], "rerun");
    assertEquals(plan.restart.services, row.restart ?? [], "restart");
    assertEquals(plan.restart.set, row.set ?? [], "set");
    assertEquals([...plan.lines, ...plan.restart.lines], row.lines, "lines");
  });
}

Deno.test("plan: a change applied in place updates the spec and the watch globs", () => {
  const fresh = edited((s) => s.services.worker.watch = ["static"]);
  const before = state();
  const plan = planUpdate(before, changes({ modified: ["hd.toml"], config: { spec: fresh } }));
  assertEquals(plan.config.kind === "in-place" && plan.config.spec, fresh);
  assertEquals(plan.watch.worker.patterns, ["static"]);
  assertEquals(before.watch.worker.patterns, [], "the old state is left alone");
  assertEquals(Object.keys(plan.watch), Object.keys(before.watch), "watch order kept");
});

interface RestartRow {
  name: string;
  changes: Partial<Changes>;
  outcome: StepsOutcome;
  restart: string[];
  lines: string[];
}

const AFTER_STEPS: RestartRow[] = [
  {
    name: "a step failed: nothing restarts, and it says why",
    changes: { modified: ["api/x.js"], hashes: ["h0'", "h1'"] },
    outcome: { failed: [0], stopping: false, rootChanged: false },
    restart: [],
    lines: ["not restarting services: a build step failed (fix it and save again)"],
  },
  {
    name: "stopping meanwhile: nothing restarts, silently",
    changes: { modified: ["api/x.js"] },
    outcome: { failed: [], stopping: true, rootChanged: false },
    restart: [],
    lines: [],
  },
  {
    name: "the sandbox root changed with the steps: every wanted service, watchers first",
    changes: { modified: ["web/a.js"], hashes: ["h0", "h1'"] },
    outcome: { failed: [], stopping: false, rootChanged: true },
    restart: ["web", "db", "api", "worker"],
    lines: [
      "the environment's root changed: every service restarts in the new one",
      "restarting db, api, web, worker (web watches web/a.js)",
    ],
  },
  {
    name: "a root change without a re-run is not one (nothing ran)",
    changes: { modified: ["README.md"] },
    outcome: { failed: [], stopping: false, rootChanged: true },
    restart: [],
    lines: ["no service watches it: nothing restarts"],
  },
];

AFTER_STEPS.push(
  {
    name: "a step ran on the host (npm ci): every service of the environment restarts after it",
    changes: { modified: ["package-lock.json"], hashes: ["h0'", "h1'"] },
    outcome: { failed: [], stopping: false, rootChanged: false, ran: [0, 1] },
    restart: ["api", "db", "web", "worker"],
    lines: [
      "steps 1, 2 re-ran: every service of the environment restarts on the new outputs",
      "restarting db, api, web, worker (api watches package-lock.json)",
    ],
  },
  {
    name: "one step ran, nobody watches its input: still every service, and the line says why",
    changes: { modified: ["src/lib.ts"], hashes: ["h0", "h1'"] },
    outcome: { failed: [], stopping: false, rootChanged: false, ran: [1] },
    restart: ["db", "api", "web", "worker"],
    lines: [
      "step 2 re-ran: every service of the environment restarts on the new outputs",
      "restarting db, api, web, worker",
    ],
  },
  {
    name: "the re-run steps were found cached on the host (nothing ran): only watchers",
    changes: { modified: ["package-lock.json"], hashes: ["h0'", "h1'"] },
    outcome: { failed: [], stopping: false, rootChanged: false, ran: [] },
    restart: ["api"],
    lines: ["restarting api, web (api watches package-lock.json)"],
  },
);

for (const row of AFTER_STEPS) {
  Deno.test(`plan after the steps: ${row.name}`, () => {
    const st = state();
    const plan = planUpdate(st, changes(row.changes));
    const r = planRestart(st, plan, row.outcome);
    assertEquals(r.services, row.restart);
    assertEquals(r.lines, row.lines);
  });
}

Deno.test("plan: which hd.toml edits apply in place, which reload (configChange)", () => {
  const table: [string, EnvSpec, boolean, string[] | null][] = [
    ["the same", structuredClone(SPEC), true, []],
    ["command", edited((s) => s.services.web.command = "x"), true, ["web"]],
    [
      "env and port",
      edited((s) => (s.services.db.env = { A: "1" }, s.services.db.port = 5432)),
      true,
      ["db"],
    ],
    [
      "restart policy and workdir of two",
      edited((s) => (s.services.api.restart_policy = "never", s.services.worker.workdir = "w")),
      true,
      ["api", "worker"],
    ],
    ["watch", edited((s) => s.services.api.watch = []), true, ["api"]],
    ["a command, in a sandbox", edited((s) => s.services.web.command = "x"), false, null],
    ["environment env", edited((s) => s.environment.env = { A: "1" }), true, null],
    ["environment base", edited((s) => s.environment.base = "debian:12"), true, null],
    ["a build step", edited((s) => s.build.steps[1].run = "make"), true, null],
    ["files", edited((s) => s.files.exclude = ["tmp"]), true, null],
    ["options", edited((s) => s.options.restartGraceMs = 5), true, null],
    [
      "dependencies (packages)",
      edited((s) => s.dependencies = [{ name: "jq" } as never]),
      true,
      null,
    ],
    ["depends_on", edited((s) => s.services.web.depends_on = ["db"]), true, null],
    // which services are active is decided when the loop starts: a new profile set reloads
    ["profiles", edited((s) => s.services.worker.profiles = ["debug"]), true, null],
    ["a service removed", edited((s) => delete s.services.worker), true, null],
    [
      "services reordered",
      edited((s) =>
        s.services = {
          worker: s.services.worker,
          db: s.services.db,
          api: s.services.api,
          web: s.services.web,
        }
      ),
      true,
      null,
    ],
  ];
  for (const [what, fresh, inPlace, want] of table) {
    assertEquals(configChange(SPEC, fresh, inPlace), want, what);
  }
  // source positions are not configuration
  const withAt = edited((s) => Object.assign(s.services.api, { at: { line: 9, col: 1 } }));
  assertEquals(configChange(SPEC, withAt, true), []);
});

Deno.test("plan: a reload keeps the environment's name (reloadRefusal)", () => {
  assertEquals(reloadRefusal(SPEC, edited((s) => s.options.debounceMs = 1)), null);
  assertEquals(
    reloadRefusal(SPEC, edited((s) => s.environment.name = "other")),
    "the environment name changed (t \u2192 other); stop and start hd up",
  );
});

Deno.test("plan: hd.toml is seen only inside the project (configPath, configChanged)", () => {
  const table: [string, string, string[], string | null, boolean][] = [
    ["/p/hd.toml", "/p", ["hd.toml"], "hd.toml", true],
    ["/p/conf/dev.toml", "/p", ["conf/dev.toml", "x"], "conf/dev.toml", true],
    ["/p/hd.toml", "/p", ["sub/hd.toml"], "hd.toml", false],
    ["/elsewhere/hd.toml", "/p", ["hd.toml"], null, false],
    ["/pp/hd.toml", "/p", ["hd.toml"], null, false],
  ];
  for (const [file, dir, changed, rel, seen] of table) {
    const spec = { ...SPEC, file, dir };
    assertEquals(configPath(spec), rel, file);
    assertEquals(configChanged(spec, changed), seen, file);
  }
});

Deno.test("plan after the steps: a service with an image of its own does not restart on a step", () => {
  const spec = edited((s) => {
    s.services.worker.image = "redis:7";
    s.services.worker.depends_on = [];
  });
  for (const outcome of [{ ran: [0] }, { rootChanged: true }]) {
    const st = state({ spec, wanted: new Set(["db", "api", "worker"]) });
    const plan = planUpdate(st, changes({ modified: ["src/x"], hashes: ["h0'", "h1"] }));
    const r = planRestart(st, plan, {
      failed: [],
      stopping: false,
      rootChanged: false,
      ...outcome,
    });
    assertEquals(r.services, ["db", "api"], JSON.stringify(outcome));
    assertEquals(r.set, ["db", "api"], "web is not wanted, worker has its own image");
  }
});

// ---- build steps side by side: the ready queue (nextSteps), its waves, the job bound ----

/** Dependency sets from a list of lists (index → the steps it depends on). */
function D(...sets: number[][]): Set<number>[] {
  return sets.map((s) => new Set(s));
}

Deno.test("nextSteps: which steps start now, as a table", () => {
  // 0 and 1 independent (disjoint inputs/outputs), 2 chained (depends on both), 3 on 2 too
  const fan = D([], [], [0, 1], [0, 1, 2]);
  const rows: { why: string; q: Omit<StepQueue, "deps">; deps?: Set<number>[]; start: number[] }[] =
    [
      {
        why: "independent steps start together",
        q: { todo: [0, 1, 2, 3], running: [], failed: [], jobs: 4 },
        start: [0, 1],
      },
      {
        why: "bounded by jobs, lowest index first",
        q: { todo: [0, 1, 2, 3], running: [], failed: [], jobs: 1 },
        start: [0],
      },
      {
        why: "a running step holds a slot",
        q: { todo: [1, 2, 3], running: [0], failed: [], jobs: 1 },
        start: [],
      },
      {
        why: "the chained step waits for both",
        q: { todo: [2, 3], running: [1], failed: [], jobs: 4 },
        start: [],
      },
      {
        why: "both done: the chained step starts, its dependent not yet",
        q: { todo: [2, 3], running: [], failed: [], jobs: 4 },
        start: [2],
      },
      {
        why: "a step outside the run (cached before) counts as done",
        q: { todo: [3], running: [], failed: [], jobs: 4 },
        start: [3],
      },
      {
        why: "re-run after an edit of step 1's input only: 1 (and what follows it) runs",
        q: { todo: [1, 2, 3], running: [], failed: [], jobs: 4 },
        start: [1],
      },
      {
        why: "after a failure nothing new starts (running ones finish)",
        q: { todo: [1, 2, 3], running: [1], failed: [0], jobs: 4 },
        start: [],
      },
      {
        why: "after a failure even an independent step does not start",
        deps: D([], [], []),
        q: { todo: [2], running: [], failed: [0], jobs: 4 },
        start: [],
      },
      {
        why: "an all-chained build runs one step at a time whatever jobs says",
        deps: D([], [0], [0, 1]),
        q: { todo: [0, 1, 2], running: [], failed: [], jobs: 8 },
        start: [0],
      },
      {
        why: "jobs below 1 still runs one",
        q: { todo: [0, 1], running: [], failed: [], jobs: 0 },
        start: [0],
      },
      {
        why: "todo order does not matter",
        q: { todo: [1, 0], running: [], failed: [], jobs: 1 },
        start: [0],
      },
    ];
  for (const r of rows) {
    assertEquals(nextSteps({ deps: r.deps ?? fan, ...r.q }), r.start, r.why);
  }
});

Deno.test("stepWaves: the schedule of equal-length steps, and the jobs bound", () => {
  const rows: { deps: Set<number>[]; run: number[]; jobs: number; waves: number[][] }[] = [
    { deps: D([], [], [0, 1]), run: [0, 1, 2], jobs: 4, waves: [[0, 1], [2]] },
    { deps: D([], [], [0, 1]), run: [0, 1, 2], jobs: 1, waves: [[0], [1], [2]] },
    { deps: D([], [], []), run: [0, 1, 2], jobs: 2, waves: [[0, 1], [2]] },
    { deps: D([], [0], [0, 1]), run: [0, 1, 2], jobs: 4, waves: [[0], [1], [2]] },
    { deps: D([], [], [0, 1]), run: [1, 2], jobs: 4, waves: [[1], [2]] },
    { deps: D([], [], [0, 1]), run: [], jobs: 4, waves: [] },
  ];
  for (const r of rows) {
    assertEquals(stepWaves(r.deps, r.run, r.jobs), r.waves, JSON.stringify(r));
  }
});

Deno.test("stepJobs: [options] jobs, else one per core", () => {
  assertEquals(stepJobs(undefined, 8), 8);
  assertEquals(stepJobs(2, 8), 2);
  assertEquals(stepJobs(1, 1), 1);
  assertEquals(stepJobs(undefined, 0), 1);
});

/**
 * What `hd up` does about a batch of changes, decided without doing it: which build steps re-run,
 * whether an edit of hd.toml applies in place, reloads or is refused, which services restart and
 * why, and the lines that explain it. These are the loop's decisions (docs/architecture.md: "where
 * decisions live"), so they are pure functions of what the loop knew before the batch and what
 * the batch changed — no files, processes or clocks — and tests/services/plan_test.ts checks them
 * row by row. src/services/loop.ts reads the inputs (ingest, hashes, hd.toml), asks
 * {@link planUpdate}, runs the steps, asks {@link planRestart} with their outcome, and restarts.
 *
 * @example
 * ```ts
 * import { planRestart, planUpdate, type PlanState } from "./plan.ts";
 * declare const state: PlanState;
 * const plan = planUpdate(state, {
 *   added: [], modified: ["api/server.js"], removed: [],
 *   oldRoot: "a".repeat(64), root: "b".repeat(64), hashes: [],
 * });
 * // … run plan.rerun …
 * const r = planRestart(state, plan, { failed: [], stopping: false, rootChanged: false });
 * console.log(plan.lines, r.lines, r.services);
 * ```
 * @module
 */
import type { EnvSpec } from "../config/types.ts";
import { affected, GlobSet } from "../watch/pathmap.ts";
import { type DepGraph, restartSet } from "./graph.ts";

/** What the loop knew before the batch: the inputs of {@link planUpdate}, besides the changes. */
export interface PlanState {
  /** The configuration running now. */
  spec: EnvSpec;
  /** Each build step's hash and state after its last run (`ran`, `cached`, `failed`, `pending`). */
  steps: readonly { index: number; hash: string; state: string }[];
  /** The compiled `watch` globs of each service, in hd.toml order. */
  watch: Record<string, GlobSet>;
  /** Service names in start (dependency) order. */
  order: readonly string[];
  /** Services meant to run (started and not stopped since): only these restart. */
  wanted: ReadonlySet<string>;
  /** The runtime runs a service's new settings as written after a restart (the host does). */
  servicesInPlace: boolean;
  /** Someone reloads the environment on request (`hd up` does; a bare DevLoop does not). */
  canReload: boolean;
}

/** What one batch changed (after the incremental ingest and the step hashes over the new tree). */
export interface Changes {
  added: readonly string[];
  modified: readonly string[];
  removed: readonly string[];
  /** The Env node's id before and after, for the explanation. */
  oldRoot: string;
  root: string;
  /** Every build step's hash over the new tree, by index. */
  hashes: readonly string[];
  /**
   * hd.toml read again — when {@link configChanged} says it is among the changed paths: the new
   * configuration, or the message of its error.
   */
  config?: { spec: EnvSpec } | { error: string };
}

/** What to do about an edit of hd.toml. */
export type ConfigDecision =
  /** hd.toml is not among the changes. */
  | { kind: "unchanged" }
  /** It does not parse or validate: keep running the previous one. */
  | { kind: "invalid"; error: string }
  /** Only services' own settings changed: take `spec`, restart `services` (and dependents). */
  | { kind: "in-place"; spec: EnvSpec; services: string[] }
  /** Anything else: the caller stops everything and starts again; this batch does nothing more. */
  | { kind: "reload" }
  /** A change that needs a reload, with nobody to do it: say to restart `hd up`. */
  | { kind: "manual" };

/** The plan of one batch, up to running the build steps. */
export interface UpdatePlan {
  config: ConfigDecision;
  /** The watch globs from now on (a service changed in place watches its new globs). */
  watch: Record<string, GlobSet>;
  /**
   * Steps to run again, in order: their hash changed, or they failed (or were skipped) last time.
   * Each still runs only if the runtime does not find it cached. Empty on a reload.
   */
  rerun: number[];
  /** The batch's changed paths: added, modified, then removed. */
  changed: string[];
  /** Lines to print before the steps run: the root line, then what hd.toml's change does. */
  lines: string[];
  /** The restarts when every step passes and the root stays (see {@link planRestart}). */
  restart: RestartPlan;
}

/** How running the steps of an {@link UpdatePlan} went. */
export interface StepsOutcome {
  /** Indexes of the steps that failed. */
  failed: readonly number[];
  /** The loop is stopping: nothing restarts. */
  stopping: boolean;
  /** The runtime's root changed with the steps (a sandbox layer): every service restarts. */
  rootChanged: boolean;
  /**
   * Indexes of the steps that ran (not found cached) and passed: their outputs were written again,
   * so every service that runs on the environment restarts (see {@link planRestart}).
   */
  ran?: readonly number[];
}

/** The restarts of a batch. */
export interface RestartPlan {
  /** The services to restart (what Supervisor.restart gets; it adds their dependents). */
  services: string[];
  /** `services` with their running dependents, in start order: what will restart. */
  set: string[];
  /** Why each named service restarts: `api watches api/x.js`, `b changed`. */
  why: string[];
  /** Lines to print after the steps. */
  lines: string[];
}

/**
 * hd.toml's path relative to the project, or null when it lies outside it (then the watcher never
 * reports it).
 *
 * @example
 * ```ts
 * import { configPath } from "./plan.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec; // file "/p/hd.toml", dir "/p"
 * configPath(spec); // "hd.toml"
 * ```
 */
export function configPath(spec: EnvSpec): string | null {
  return spec.file.startsWith(spec.dir + "/") ? spec.file.slice(spec.dir.length + 1) : null;
}

/**
 * True when hd.toml is among `changed` (so the loop reads it again for {@link Changes.config}).
 *
 * @example
 * ```ts
 * import { configChanged } from "./plan.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * if (configChanged(spec, ["hd.toml", "src/a.js"])) console.log("read it again");
 * ```
 */
export function configChanged(spec: EnvSpec, changed: readonly string[]): boolean {
  const rel = configPath(spec);
  // .env and env_file feed hd.toml's values (src/config/env_files.ts): reading it again is due
  const inputs = [...(rel !== null ? [rel] : []), ...(spec.configFiles ?? [])];
  return inputs.some((p) => changed.includes(p));
}

/**
 * Which services a new hd.toml changes when nothing but services' own settings changed (command,
 * env, watch, port, restart policy, workdir — not their names, dependencies or profiles), or null when it
 * takes a reload: anything else changed, or the runtime cannot apply a service's settings by a
 * restart (`servicesInPlace` false: the sandbox).
 *
 * @example
 * ```ts
 * import { configChange } from "./plan.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const old: EnvSpec, fresh: EnvSpec;
 * const services = configChange(old, fresh, true); // ["web"], [], or null: reload
 * ```
 */
export function configChange(
  old: EnvSpec,
  fresh: EnvSpec,
  servicesInPlace: boolean,
): string[] | null {
  if (!servicesInPlace) return null;
  const same = (a: unknown, b: unknown) => canon(a) === canon(b);
  if (
    !same(old.environment, fresh.environment) || !same(old.dependencies, fresh.dependencies) ||
    !same(old.build, fresh.build) || !same(old.files, fresh.files) ||
    !same(old.options, fresh.options)
  ) return null;
  const names = Object.keys(old.services);
  if (!same(names, Object.keys(fresh.services))) return null;
  if (names.some((n) => !same(old.services[n].depends_on, fresh.services[n]?.depends_on))) {
    return null;
  }
  // the active services are chosen when the loop starts (src/services/profiles.ts)
  if (names.some((n) => !same(old.services[n].profiles, fresh.services[n]?.profiles))) return null;
  return names.filter((n) => !same(old.services[n], fresh.services[n]));
}

/**
 * Why a running `hd up` cannot reload `old` into `fresh`, or null when it can: the environment's
 * name is its identity (refs, the state file, the supervisor's container ids).
 *
 * @example
 * ```ts
 * import { reloadRefusal } from "./plan.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const old: EnvSpec, fresh: EnvSpec;
 * const why = reloadRefusal(old, fresh);
 * if (why) console.log(`cannot reload: ${why}`);
 * ```
 */
export function reloadRefusal(old: EnvSpec, fresh: EnvSpec): string | null {
  const [a, b] = [old.environment.name, fresh.environment.name];
  return a === b ? null : `the environment name changed (${a} \u2192 ${b}); stop and start hd up`;
}

/**
 * Plans a batch up to its build steps: what hd.toml's change does, which steps re-run, the watch
 * globs from now on, the lines explaining it, and the restarts if the steps pass.
 *
 * @example
 * ```ts
 * import { planUpdate, type PlanState } from "./plan.ts";
 * declare const state: PlanState;
 * const plan = planUpdate(state, {
 *   added: ["src/new.js"], modified: [], removed: [],
 *   oldRoot: "a".repeat(64), root: "b".repeat(64), hashes: state.steps.map((s) => s.hash),
 * });
 * plan.rerun; // [] unless a step failed last time
 * plan.restart.services; // the services whose watch globs match src/new.js
 * ```
 */
export function planUpdate(prev: PlanState, changes: Changes): UpdatePlan {
  const what = [
    changes.modified.length ? `modified ${list(changes.modified)}` : "",
    changes.added.length ? `added ${list(changes.added)}` : "",
    changes.removed.length ? `removed ${list(changes.removed)}` : "",
  ].filter(Boolean).join("; ");
  const lines = [`root ${short(changes.oldRoot)} \u2192 ${short(changes.root)}  ${what}`];
  const changed = changedPaths(changes);
  const config = decideConfig(prev, changes, changed);
  const rel = configPath(prev.spec);
  let watch = prev.watch;
  switch (config.kind) {
    case "invalid":
      lines.push(`${rel} has an error: ${config.error} — keeping the running one`);
      break;
    case "in-place":
      lines.push(
        `${rel} changed: ${
          config.services.length
            ? `new configuration for ${config.services.join(", ")}`
            : "nothing to apply"
        }`,
      );
      watch = { ...prev.watch };
      for (const n of config.services) watch[n] = new GlobSet(config.spec.services[n].watch);
      break;
    case "reload":
      lines.push(`${rel} changed: reloading the environment`);
      return { config, watch, rerun: [], changed, lines, restart: noRestart() };
    case "manual":
      lines.push(`${rel} changed: restart \`hd up\` to apply it`);
      break;
  }
  // a changed hash re-runs a step; so does any change after it failed (or was skipped)
  const rerun = prev.steps
    .filter((st) =>
      st.hash !== changes.hashes[st.index] || st.state === "failed" || st.state === "pending"
    )
    .map((st) => st.index);
  const plan: UpdatePlan = { config, watch, rerun, changed, lines, restart: noRestart() };
  plan.restart = planRestart(prev, plan, { failed: [], stopping: false, rootChanged: false });
  return plan;
}

/** The paths of a batch, in the order the explanations name them (added, modified, removed). */
function changedPaths(c: Changes): string[] {
  return [...c.added, ...c.modified, ...c.removed];
}

function decideConfig(prev: PlanState, changes: Changes, changed: string[]): ConfigDecision {
  if (!configChanged(prev.spec, changed) || changes.config === undefined) {
    return { kind: "unchanged" };
  }
  if ("error" in changes.config) return { kind: "invalid", error: changes.config.error };
  const fresh = changes.config.spec;
  const services = configChange(prev.spec, fresh, prev.servicesInPlace);
  if (services !== null) return { kind: "in-place", spec: fresh, services };
  return prev.canReload ? { kind: "reload" } : { kind: "manual" };
}

/**
 * The restarts of a batch once its steps ran: none when a step failed (a line says so) or the loop
 * is stopping; otherwise the wanted services whose watch globs match a changed path, those whose
 * settings changed in place, and — when a step ran or the root changed — every wanted service that
 * runs on the environment (not those with an `image` of their own), with the lines that say who
 * restarts and why (or that nobody watches the change).
 *
 * @example
 * ```ts
 * import { planRestart, type PlanState, type UpdatePlan } from "./plan.ts";
 * declare const state: PlanState, plan: UpdatePlan;
 * const r = planRestart(state, plan, { failed: [0], stopping: false, rootChanged: false });
 * r.services; // []: "not restarting services: a build step failed …"
 * ```
 */
export function planRestart(
  prev: PlanState,
  plan: UpdatePlan,
  outcome: StepsOutcome,
): RestartPlan {
  const out = noRestart();
  if (outcome.failed.length) {
    out.lines.push("not restarting services: a build step failed (fix it and save again)");
    return out;
  }
  if (outcome.stopping || plan.config.kind === "reload") return out;
  const changed = plan.changed;
  const respec = plan.config.kind === "in-place" ? plan.config.services : [];
  const hit = [...affected(plan.watch, changed).keys()].filter((n) => prev.wanted.has(n));
  for (const n of respec) if (prev.wanted.has(n) && !hit.includes(n)) hit.push(n);
  // A step that ran rewrote its outputs (node_modules after `npm ci`, dist after a build): every
  // service that runs on the environment restarts after it, as compose's `develop.watch` rebuild
  // recreates the service built from it. Which files a process uses cannot be read from its
  // workdir, watch or command (node finds node_modules by walking up, a venv sits on PATH), so
  // "every service on the environment" is the rule that never leaves an old process running. A
  // service with an `image` of its own sees neither the steps nor their outputs: it stays.
  const onEnv = (n: string) => prev.wanted.has(n) && !prev.spec.services[n]?.image;
  const ran = outcome.ran ?? [];
  if (plan.rerun.length && (outcome.rootChanged || ran.length)) {
    for (const n of prev.order) if (onEnv(n) && !hit.includes(n)) hit.push(n);
    out.lines.push(
      outcome.rootChanged
        ? "the environment's root changed: every service restarts in the new one"
        : `${ran.length === 1 ? "step" : "steps"} ${
          ran.map((i) => i + 1).join(", ")
        } re-ran: every service of the environment restarts on the new outputs`,
    );
  }
  if (hit.length) {
    const why = hit.flatMap((n) => {
      const p = affected({ [n]: plan.watch[n] }, changed).get(n);
      return p ? [`${n} watches ${p[0]}`] : respec.includes(n) ? [`${n} changed`] : [];
    });
    out.services = hit;
    out.set = restartSet(graphOf(prev.spec), prev.order, hit, prev.wanted);
    out.why = why;
    out.lines.push(`restarting ${out.set.join(", ")}` + (why.length ? ` (${why.join("; ")})` : ""));
  } else if (plan.rerun.length === 0) {
    out.lines.push("no service watches it: nothing restarts");
  }
  return out;
}

function noRestart(): RestartPlan {
  return { services: [], set: [], why: [], lines: [] };
}

/** The services' dependency graph of `spec`. */
function graphOf(spec: EnvSpec): DepGraph {
  return Object.fromEntries(Object.values(spec.services).map((s) => [s.name, s.depends_on]));
}

/** JSON of `v` without source positions (`at`), for comparing two parses of hd.toml. */
function canon(v: unknown): string {
  return JSON.stringify(v, (k, x) => (k === "at" ? undefined : x));
}

function short(id: string): string {
  return id.slice(0, 12);
}

function list(paths: readonly string[]): string {
  return paths.length <= 3
    ? paths.join(", ")
    : `${paths.slice(0, 3).join(", ")} and ${paths.length - 3} more`;
}

/**
 * Where a run of build steps stands, the input of {@link nextSteps}: the dependency sets
 * (`stepDeps` of src/runtime/sandbox_steps.ts: for each step, the earlier steps it depends on,
 * transitively), the steps of this run not started yet, those running, those that failed in this
 * run, and how many may run at once.
 */
export interface StepQueue {
  /** For each step (by index), the steps it depends on. */
  deps: readonly ReadonlySet<number>[];
  /** Steps of this run not started yet. */
  todo: readonly number[];
  /** Steps of this run running now. */
  running: readonly number[];
  /** Steps of this run that failed. */
  failed: readonly number[];
  /** At most this many steps run at once (at least 1). */
  jobs: number;
}

/**
 * The steps to start now, lowest index first: those of `todo` none of whose dependencies is still
 * to run, running or failed in this run (a step outside the run is done: cached or ran before),
 * as many as free slots allow. After a failure nothing new starts: the steps already running
 * finish, the rest stay pending (the failed step's dependents cannot run, and an independent one
 * not yet started is not worth delaying the report of the failure for).
 *
 * @example
 * ```ts
 * import { nextSteps } from "./plan.ts";
 * const deps = [new Set<number>(), new Set<number>(), new Set([0, 1])];
 * nextSteps({ deps, todo: [0, 1, 2], running: [], failed: [], jobs: 4 }); // [0, 1]
 * nextSteps({ deps, todo: [2], running: [1], failed: [], jobs: 4 }); // []
 * nextSteps({ deps, todo: [2], running: [], failed: [], jobs: 4 }); // [2]
 * ```
 */
export function nextSteps(q: StepQueue): number[] {
  if (q.failed.length) return [];
  const open = new Set([...q.todo, ...q.running]);
  const free = Math.max(1, Math.floor(q.jobs)) - q.running.length;
  const out: number[] = [];
  for (const i of [...q.todo].sort((a, b) => a - b)) {
    if (out.length >= free) break;
    if (![...(q.deps[i] ?? [])].some((d) => open.has(d))) out.push(i);
  }
  return out;
}

/**
 * The waves of a run where every step takes the same time: each wave the steps {@link nextSteps}
 * starts once the previous wave finished — a summary of the schedule for tests and docs; `hd up`
 * itself follows the ready queue of {@link nextSteps}, which starts a step as soon as its own
 * dependencies are done.
 *
 * @example
 * ```ts
 * import { stepWaves } from "./plan.ts";
 * const deps = [new Set<number>(), new Set<number>(), new Set([0, 1])];
 * stepWaves(deps, [0, 1, 2], 4); // [[0, 1], [2]]
 * stepWaves(deps, [0, 1, 2], 1); // [[0], [1], [2]]
 * ```
 */
export function stepWaves(
  deps: readonly ReadonlySet<number>[],
  run: readonly number[],
  jobs: number,
): number[][] {
  const waves: number[][] = [];
  let todo = [...run];
  while (todo.length) {
    const wave = nextSteps({ deps, todo, running: [], failed: [], jobs });
    if (!wave.length) break; // unreachable: a step depends on earlier steps only
    waves.push(wave);
    todo = todo.filter((i) => !wave.includes(i));
  }
  return waves;
}

/**
 * How many build steps may run at once: `[options] jobs` when set, else `cores` (at least 1).
 *
 * @example
 * ```ts
 * import { stepJobs } from "./plan.ts";
 * stepJobs(undefined, 8); // 8
 * stepJobs(1, 8); // 1
 * ```
 */
export function stepJobs(jobs: number | undefined, cores: number): number {
  return Math.max(1, Math.floor(jobs ?? cores) || 1);
}

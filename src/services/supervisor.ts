/**
 * The service supervisor: starts host services in dependency order (a service starts once every
 * service it depends on is ready — its port accepts connections, or it is running when it has no
 * port), stops them in reverse order (SIGTERM to the process group, grace, SIGKILL), restarts a
 * service together with its dependents, and applies restart policies with exponential backoff and
 * a crash-loop limit. Output lines go to per-service log files and to a callback.
 *
 * @example
 * ```ts
 * import { Supervisor } from "./supervisor.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * const sup = new Supervisor({ services: spec.services, dir: spec.dir, env: {}, graceMs: 2000 });
 * sup.start();
 * await sup.restart(["api"]); // api and what depends on it; others keep running
 * await sup.stopAll();
 * ```
 * @module
 */
import { readInDir } from "../sys/nofollow.ts";
import { trace } from "../sys/trace.ts";
import { openPrivateAppend, privateDir } from "../sys/fs.ts";
import type { ServiceSpec } from "../config/types.ts";
import { type DepGraph, restartSet, topoOrder } from "./graph.ts";
import { type GroupProcess, signalGroup, spawnGroup, stopGroup } from "../sandbox/process.ts";
import { servicePids, waitForListener } from "./readiness.ts";
import { stampLine } from "./logs.ts";
import { type SpawnLine, spawnLine, takeEarly } from "./prespawn.ts";
import { GlobSet } from "../watch/pathmap.ts";
import {
  heldDecision,
  loadedSet,
  parseRecord,
  preloadList,
  WARM_LOADER,
  warmCommandLine,
  type WarmDecision,
  warmDecision,
} from "./warm.ts";
import {
  conditionMet,
  defaultCondition,
  type DepView,
  type HealthState,
  healthState,
  type HealthStatus,
  initialHealth,
  nextCheckDelay,
  runCheck,
} from "./health.ts";

/** A process group of a running service: its id and its leader's identity. */
export interface GroupRecord {
  service: string;
  /** The group's id = its leader's pid. */
  pgid: number;
  /** The leader's start time (clock ticks since boot, /proc/PID/stat field 22). */
  startTime: number;
  /** The leader's executable (/proc/PID/exe, or comm when unreadable) when recorded. */
  exe: string;
}

/** Lifecycle state of a service. */
export type ServiceState =
  | "pending" // wanted, not started yet
  | "waiting" // wanted, a dependency is not ready
  | "starting" // running, port not yet accepting
  | "running" // running (and ready)
  | "backoff" // died, restart scheduled
  | "stopping"
  | "stopped"
  | "exited" // died and the policy says to leave it
  | "crashed" // too many deaths in a minute: left stopped
  | "failed"; // not started: a dependency failed its depends_on condition

/** What `hd status` shows for one service. */
export interface ServiceStatus {
  name: string;
  state: ServiceState;
  pid: number | null;
  restarts: number;
  /** Epoch ms when the current process started. */
  startedAt: number | null;
  uptimeMs: number | null;
  port: number | null;
  /** Port readiness (null when the service has no port). */
  ready: boolean | null;
  lastExitCode: number | null;
  /** Dependencies not ready yet (state "waiting"). */
  waitingFor: string[];
  dependsOn: string[];
  /** Health (null without a healthcheck or while not running). */
  health: HealthStatus | null;
  /** The last line of the last healthcheck's output (null before the first check). */
  healthOutput: string | null;
  /** Why the service is "failed" (a dependency's condition), else null. */
  reason: string | null;
  /** Not started because none of its profiles is active: its profiles (set by the loop). */
  inactive?: string[];
  /**
   * The pid of its standby once it waits for its go, else null: a warm one (`reload = "warm"`)
   * once it has preloaded, or the container held ready for a plain sandboxed restart.
   */
  standby?: number | null;
  /** Its `labels` (absent: none). */
  labels?: Record<string, string>;
  /** Its `expose` ports (documentation only; absent: none). */
  expose?: number[];
}

/** Options of a {@link Supervisor}. */
export interface SupervisorOptions {
  services: Record<string, ServiceSpec>;
  /** Project directory; service workdirs are relative to it. */
  dir: string;
  /** Environment of every service (service env is added on top). */
  env: Record<string, string>;
  /** Time between SIGTERM and SIGKILL. */
  graceMs: number;
  /** Directory of `<service>.log` files, or null for none. */
  logDir?: string | null;
  /** Each output line of a service. */
  onLine?: (service: string, line: string) => void;
  /** Lifecycle messages ("ready on :8080", "exited with code 1, restarting in 200 ms"). */
  onEvent?: (service: string, message: string) => void;
  /** Called after any state change. */
  onChange?: () => void;
  /** Deaths within `windowMs` that make a crash loop (default 5 in 60 s). */
  crashLoop?: { deaths: number; windowMs: number };
  /** Restart backoff: first delay and cap (default 100 ms doubling to 10 s). */
  backoff?: { initialMs: number; maxMs: number };
  /**
   * The processes of a service whose group leader is `leader` — whose listening sockets make it
   * ready (default {@link servicePids}: the group and its descendants).
   */
  pids?: (service: string, leader: number) => readonly number[];
}

interface Svc {
  spec: ServiceSpec;
  state: ServiceState;
  proc: GroupProcess | null;
  ready: boolean;
  restarts: number;
  deaths: number[];
  failStreak: number;
  startedAt: number | null;
  lastExitCode: number | null;
  gen: number;
  stopRequested: boolean;
  exited: Promise<void> | null;
  timer: ReturnType<typeof setTimeout> | null;
  log: Deno.FsFile | null;
  logSize: number;
  health: HealthState | null;
  healthTimer: ReturnType<typeof setTimeout> | null;
  /** Ends the running healthcheck when the service stops. */
  healthAbort: AbortController | null;
  reason: string | null;
  /** The warm standby (`reload = "warm"`), waiting for its go. */
  standby: Standby | null;
  /** The last reason for a cold start logged (each is logged once until a warm handover). */
  warmWhy: string | null;
  /** The standby slot the running container was started in (null: the service's own id). */
  slot: string | null;
}

/** A warm standby: a process that preloaded the unchanged modules and waits for go. */
interface Standby {
  proc: GroupProcess;
  command: string;
  /** Where it reports its module cache once it preloaded (see `loadedSet` in warm.ts). */
  loadedFile: string;
  /** The project's path as it sees it (its report's paths are relative to it). */
  root: string;
  /** Its module cache as it reported it; null until then. */
  loaded: Set<string> | null;
  /** Project-relative paths changed since it started. */
  changed: Set<string>;
  stepsRan: number;
  alive: boolean;
  modules: number;
  /** A sandboxed service's standby: the container slot it runs in (null on the host). */
  slot: string | null;
  /** A held container of a plain restart (no preloading: `loaded` stays null). */
  held: boolean;
}

/**
 * A plain service of the environment's base that keeps a held container (the wrapped spec's env
 * of src/runtime/sandbox_services.ts): its own command and the start script of each slot.
 */
interface SandboxHeld {
  command: string;
  slots: Record<string, string>;
}

/**
 * A service of the environment's base with standby containers (the wrapped spec's env of
 * src/runtime/sandbox_services.ts): where its records are on the host, the project's path inside,
 * its own command and the start script of each standby slot.
 */
interface SandboxWarm {
  dir: string;
  root: string;
  /** Where `dir/in` appears inside. */
  mount: string;
  command: string;
  slots: Record<string, string>;
}

/**
 * The start scripts of the standby slots in a wrapped spec's env (`<prefix>A`, `<prefix>B`, …, by
 * slot name in lower case), or null when fewer than two are there.
 */
function slotScripts(env: Record<string, string>, prefix: string): Record<string, string> | null {
  const slots: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.length === prefix.length + 1 && k.startsWith(prefix) && /[A-Z]$/.test(k)) {
      slots[k.slice(-1).toLowerCase()] = v;
    }
  }
  return Object.keys(slots).length < 2 ? null : slots;
}

/** The records of a sandboxed service are written by the container: at most this is read. */
export const MAX_RECORD_BYTES = 32 << 20;

/**
 * Reads a file the container may write; null when absent, too big, or not a regular file inside
 * its directory (the container could make it a link to a host file, or a FIFO the supervisor
 * would wait on forever: src/sys/nofollow.ts's readBeneath).
 */
export function readSmall(path: string): string | null {
  try {
    const bytes = readInDir(path, MAX_RECORD_BYTES);
    return bytes === null ? null : new TextDecoder().decode(bytes);
  } catch {
    return null;
  }
}

/** Time between a warm service's readiness and the start of its next standby. */
const STANDBY_DELAY_MS = 30;

const enc = new TextEncoder();

/** A service log is rotated (to `<service>.log.1`) past this size. */
export const LOG_ROTATE_BYTES = 16 << 20;

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

/** Owns the processes of the services of one environment. */
export class Supervisor {
  #o: SupervisorOptions;
  #svc = new Map<string, Svc>();
  #graph: DepGraph;
  #order: string[];
  #desired = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** hd's private directory of the warm loader and the records (outside the project). */
  #warmDir: string | null = null;
  /** Standbys being stopped (awaited by close). */
  #dropping = new Set<Promise<unknown>>();
  /** Standby containers being stopped, by `service:slot` (their slot is free once they are). */
  #slotStops = new Map<string, Promise<unknown>>();
  /** Numbers the standbys' report files. */
  #standbys = 0;

  constructor(opts: SupervisorOptions) {
    this.#o = opts;
    this.#graph = Object.fromEntries(
      Object.values(opts.services).map((s) => [s.name, s.depends_on]),
    );
    this.#order = topoOrder(this.#graph);
    if (opts.logDir) privateDir(opts.logDir);
    for (const name of this.#order) {
      this.#svc.set(name, {
        spec: opts.services[name],
        state: "stopped",
        proc: null,
        ready: false,
        restarts: 0,
        deaths: [],
        failStreak: 0,
        startedAt: null,
        lastExitCode: null,
        gen: 0,
        stopRequested: false,
        exited: null,
        timer: null,
        log: opts.logDir ? openPrivateAppend(`${opts.logDir}/${name}.log`) : null,
        logSize: opts.logDir ? fileSize(`${opts.logDir}/${name}.log`) : 0,
        health: null,
        healthTimer: null,
        healthAbort: null,
        reason: null,
        standby: null,
        warmWhy: null,
        slot: null,
      });
    }
  }

  /** Service names in start order. */
  get order(): string[] {
    return [...this.#order];
  }

  /** Starts `names` (default: all) and what they depend on; returns at once. */
  start(names: Iterable<string> = this.#order): void {
    const want = new Set<string>();
    const add = (n: string) => {
      if (want.has(n)) return;
      want.add(n);
      for (const d of this.#graph[n] ?? []) add(d);
    };
    const named = new Set(names);
    for (const n of named) add(n);
    for (const n of want) {
      this.#desired.add(n);
      const s = this.#svc.get(n)!;
      // a one-shot dependency that completed is not run again for a dependent
      const completed = s.state === "exited" && s.lastExitCode === 0 && !named.has(n);
      if (["stopped", "exited", "crashed", "failed"].includes(s.state) && !completed) {
        this.#set(s, "pending");
      }
    }
    this.#pump();
  }

  /** Resolves once every wanted service is ready, or settled in a state that will not change. */
  async settled(timeoutMs = 30_000): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const busy = [...this.#desired].some((n) => {
        const s = this.#svc.get(n)!;
        if (s.state === "waiting") {
          return this.#blockers(n).some((d) =>
            !["crashed", "exited", "failed", "stopped"].includes(this.#svc.get(d)!.state)
          );
        }
        if (s.state === "running" && s.health?.status === "starting") return true;
        return ["pending", "starting", "backoff", "stopping"].includes(s.state);
      });
      if (!busy) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  /** Status of every service, in start order. */
  status(): ServiceStatus[] {
    const now = Date.now();
    return this.#order.map((name) => {
      const s = this.#svc.get(name)!;
      const live = s.proc !== null;
      return {
        name,
        state: s.state,
        pid: s.proc?.pid ?? null,
        restarts: s.restarts,
        startedAt: live ? s.startedAt : null,
        uptimeMs: live && s.startedAt ? now - s.startedAt : null,
        port: s.spec.port,
        ready: s.spec.port === null ? null : s.ready,
        lastExitCode: s.lastExitCode,
        waitingFor: s.state === "waiting" ? this.#blockers(name) : [],
        dependsOn: [...s.spec.depends_on],
        health: s.proc !== null && s.health ? s.health.status : null,
        healthOutput: s.health && s.health.output !== "" ? s.health.output : null,
        reason: s.state === "failed" ? s.reason : null,
        standby: s.standby?.alive && (s.standby.held || this.#loaded(s.standby))
          ? s.standby.proc.pid
          : null,
        ...(s.spec.labels ? { labels: { ...s.spec.labels } } : {}),
        ...(s.spec.expose?.length ? { expose: [...s.spec.expose] } : {}),
      };
    });
  }

  /**
   * Replaces the configuration of a service (same name and dependencies); it applies from its
   * next start — {@link restart} it to apply now.
   */
  updateService(spec: ServiceSpec): void {
    const s = this.#svc.get(spec.name);
    if (!s) throw new Error(`no service "${spec.name}"`);
    s.spec = spec;
    this.#dropStandby(s); // started with the old settings
  }

  /** The pid of the warm standby of `name` (waiting for its go), or null. */
  standbyPid(name: string): number | null {
    const sb = this.#svc.get(name)?.standby;
    return sb && sb.alive ? sb.proc.pid : null;
  }

  /**
   * Tells the warm standbys what a batch changed (project-relative paths) and how many build steps
   * ran. A standby of a service not in `restarting` that can no longer be handed over to (it
   * loaded a changed module, …) is replaced now; the restarting ones decide at their start.
   */
  noteChanges(changed: readonly string[], stepsRan: number, restarting: readonly string[]): void {
    for (const [name, s] of this.#svc) {
      const sb = s.standby;
      if (!sb) continue;
      for (const p of changed) sb.changed.add(p);
      sb.stepsRan += stepsRan;
      if (sb.held) {
        // a held container is on the root it was created on: a step that ran replaces it now
        if (restarting.includes(name) || sb.stepsRan === 0) continue;
        this.#dropStandby(s);
        if (s.proc && s.ready) this.#prepareSoon(name, s.gen);
        continue;
      }
      // a restarting service decides at its start; one still loading is judged once it reports
      // (every change since it started counts then)
      if (restarting.includes(name) || this.#loaded(sb) === null) continue;
      const d = this.#warmVerdict(s);
      if (d === "warm") continue;
      this.#dropStandby(s);
      this.#event(name, `standby replaced: ${d.why}`);
      if (s.proc && s.ready) this.#prepareSoon(name, s.gen);
    }
  }

  /** True when `name` is meant to run (started and not stopped since). */
  wanted(name: string): boolean {
    return this.#desired.has(name);
  }

  /**
   * Process groups of running services, with their leader's start time and executable now (what
   * `.hd/up.json` records so that a later hd can prove a leftover group is one it started).
   */
  groups(): GroupRecord[] {
    const out: GroupRecord[] = [];
    for (const [name, s] of this.#svc) {
      if (!s.proc) continue;
      const r = s.proc.record();
      if (r.startTime === null || r.exe === null) continue; // gone already
      out.push({ service: name, pgid: s.proc.pid, startTime: r.startTime, exe: r.exe });
    }
    return out;
  }

  /** The services {@link restart} of `names` would restart, in start order. */
  restartSet(names: string[]): string[] {
    return restartSet(this.#graph, this.#order, names, this.#desired);
  }

  /**
   * Restarts `names` and every running service that depends on them: signals them to stop in
   * reverse order (all at once), then starts them in dependency order. Others keep running. Resolves to the set
   * restarted (in start order).
   */
  restart(names: Iterable<string>): Promise<string[]> {
    return this.#serial(async () => {
      const named = [...names];
      for (const n of named) {
        if (!this.#svc.has(n)) throw new Error(`no service "${n}"`);
      }
      const chosen = this.restartSet(named);
      // signalled in reverse order without waiting in between: a restart should be quick
      await Promise.all([...chosen].reverse().map((n) => this.#stopOne(n)));
      for (const n of chosen) {
        const s = this.#svc.get(n)!;
        if (named.includes(n)) (s.deaths = [], s.failStreak = 0);
        s.restarts++;
        this.#desired.add(n);
        this.#set(s, "pending");
      }
      // a service named here that was not running brings what it depends on
      this.start(chosen);
      return chosen;
    });
  }

  /**
   * Stops `names` (in reverse dependency order) and leaves them stopped until {@link start} or
   * {@link restart}; what depends on them keeps running (as `docker compose stop`).
   */
  stop(names: Iterable<string>): Promise<void> {
    return this.#serial(async () => {
      const named = new Set(names);
      for (const n of named) if (!this.#svc.has(n)) throw new Error(`no service "${n}"`);
      for (const n of [...this.#order].reverse()) {
        if (!named.has(n)) continue;
        this.#desired.delete(n);
        this.#dropStandby(this.#svc.get(n)!);
        await this.#stopOne(n);
        const s = this.#svc.get(n)!;
        if (s.state !== "stopped") this.#set(s, "stopped");
      }
    });
  }

  /** Stops every service in reverse dependency order; the supervisor can start again later. */
  stopAll(): Promise<void> {
    return this.#serial(async () => {
      this.#desired.clear();
      for (const s of this.#svc.values()) this.#dropStandby(s);
      for (const n of [...this.#order].reverse()) await this.#stopOne(n);
      await Promise.all(this.#dropping);
    });
  }

  /** Stops everything and closes the log files. */
  async close(): Promise<void> {
    await this.stopAll();
    this.#closed = true;
    for (const s of this.#svc.values()) this.#dropStandby(s);
    await Promise.all(this.#dropping);
    if (this.#warmDir !== null) {
      try {
        Deno.removeSync(this.#warmDir, { recursive: true });
      } catch { /* gone */ }
      this.#warmDir = null;
    }
    for (const s of this.#svc.values()) {
      try {
        s.log?.close();
      } catch { /* closed */ }
      s.log = null;
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn, fn);
    this.#queue = p.catch(() => {});
    return p;
  }

  #set(s: Svc, state: ServiceState): void {
    s.state = state;
    this.#o.onChange?.();
  }

  #depView(name: string): DepView {
    const s = this.#svc.get(name)!;
    return {
      name,
      state: s.state,
      ready: s.spec.port === null ? null : s.ready,
      health: s.spec.healthcheck ? (s.proc && s.health ? s.health.status : "starting") : null,
      lastExitCode: s.lastExitCode,
    };
  }

  /** Each dependency of `name` with the verdict on its condition. */
  #conditions(name: string) {
    const spec = this.#svc.get(name)!.spec;
    return (this.#graph[name] ?? []).map((d) => {
      const dep = this.#svc.get(d)!;
      const cond = spec.depends_conditions?.[d] ??
        defaultCondition({
          ready: dep.spec.port === null ? null : false,
          health: dep.spec.healthcheck ? "starting" : null,
        });
      return { dep: d, verdict: conditionMet(cond, this.#depView(d)) };
    });
  }

  #blockers(name: string): string[] {
    return this.#conditions(name).filter((c) => !c.verdict.met).map((c) => c.dep);
  }

  #pump(): void {
    if (this.#closed) return;
    for (const n of this.#order) {
      if (!this.#desired.has(n)) continue;
      const s = this.#svc.get(n)!;
      if (s.state !== "pending" && s.state !== "waiting") continue;
      const conds = this.#conditions(n);
      const failed = conds.map((c) => c.verdict.met ? null : c.verdict.failed).find((f) => f);
      if (failed) {
        s.reason = failed;
        this.#set(s, "failed");
        this.#event(n, `not started: ${failed}`);
        continue;
      }
      const blockers = conds.filter((c) => !c.verdict.met).map((c) => c.dep);
      if (blockers.length === 0) this.#spawn(n);
      else if (s.state !== "waiting") {
        this.#set(s, "waiting");
        this.#event(n, `waiting for ${blockers.join(", ")}`);
      }
    }
  }

  #event(name: string, msg: string): void {
    this.#write(name, `[hd ${new Date().toISOString().slice(11, 23)}] ${msg}`);
    this.#o.onEvent?.(name, msg);
  }

  #write(name: string, line: string): void {
    const s = this.#svc.get(name)!;
    if (!s.log) return;
    try {
      const bytes = enc.encode(stampLine(Date.now(), line) + "\n"); // hd logs interleaves by it
      s.log.writeSync(bytes);
      s.logSize += bytes.length;
      if (s.logSize > LOG_ROTATE_BYTES && this.#o.logDir) {
        // keep one previous file: <service>.log.1
        const path = `${this.#o.logDir}/${name}.log`;
        s.log.close();
        Deno.renameSync(path, `${path}.1`);
        s.log = openPrivateAppend(path);
        s.logSize = 0;
      }
    } catch { /* log unavailable */ }
  }

  async #pipe(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
    let buf = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.#write(name, line);
          this.#o.onLine?.(name, line);
        }
      }
    } catch { /* stream broken */ }
    if (buf) (this.#write(name, buf), this.#o.onLine?.(name, buf));
  }

  #spawn(name: string): void {
    const s = this.#svc.get(name)!;
    const gen = ++s.gen;
    const spec = s.spec;
    const line = spawnLine(this.#o.dir, spec, this.#o.env);
    const cwd = line.cwd;
    let proc: GroupProcess | null = null;
    let how = "";
    const held = this.#sandboxHeld(spec);
    if (held !== null) {
      const sb = s.standby;
      const d = heldDecision({
        command: held.command,
        standby: sb ? { alive: sb.alive, command: sb.command } : null,
        stepsRan: sb?.stepsRan ?? 0,
      });
      if (d === "held" && sb) {
        proc = this.#takeStandby(s, sb);
        how = ", in the container held ready";
      } else if (d !== "held") {
        this.#dropStandby(s);
        if (sb !== null) this.#event(name, `new container: ${d.why}`);
      }
    } else if (spec.reload === "warm") {
      const sb = s.standby;
      const d = this.#warmVerdict(s);
      if (d === "warm" && sb) {
        proc = this.#takeStandby(s, sb);
        s.warmWhy = null;
        how = `, warm: its standby had preloaded ${sb.loaded?.size ?? sb.modules} modules`;
        // a sandbox's file is bound into the next standby: emptied, not removed
        if (sb.slot === null) removeQuietly(sb.loadedFile);
      } else if (d !== "warm") {
        this.#dropStandby(s);
        const first = sb === null && s.restarts === 0; // nothing to hand over to yet
        if (!first && s.warmWhy !== d.why) this.#event(name, `cold start: ${d.why}`);
        if (!first) s.warmWhy = d.why;
      }
    }
    if (proc === null) {
      s.slot = null;
      this.#sandboxLoader(spec);
      const warmLine = this.#warmLine(spec);
      // started before the session loaded (src/services/prespawn.ts) with this very line
      proc = warmLine === null && held === null ? takeEarly(name, line) : null;
      if (proc !== null) how = ", started before the session loaded";
      else {
        try {
          proc = spawnGroup(warmLine ?? spec.command, {
            cwd,
            env: { ...line.env, ...(warmLine ? this.#warmEnv(name) : {}) },
          });
        } catch (e) {
          this.#event(name, `cannot start: ${(e as Error).message}`);
          s.lastExitCode = 127;
          this.#died(name, gen);
          return;
        }
      }
    }
    trace(`supervisor: spawned ${name}`);
    s.proc = proc;
    s.stopRequested = false;
    s.startedAt = Date.now();
    s.ready = spec.port === null;
    this.#set(s, spec.port === null ? "running" : "starting");
    this.#event(name, `started (pid ${proc.pid}${how}): ${spec.command}`);
    if (spec.healthcheck) this.#watchHealth(name, gen, cwd);
    const pipes = Promise.all([this.#pipe(name, proc.stdout), this.#pipe(name, proc.stderr)]);
    s.exited = proc.status.then(async (st) => {
      if (s.gen !== gen) return;
      s.lastExitCode = st.signal ? 128 + signalNumber(st.signal) : st.code;
      s.proc = null;
      s.ready = false;
      this.#stopHealth(s);
      if (s.stopRequested) {
        // stopGroup handles the rest of the group
        this.#set(s, "stopped");
        return;
      }
      signalGroup(proc.pid, "SIGKILL"); // leftovers of a dead leader would hold its port
      await Promise.race([pipes, new Promise((r) => setTimeout(r, 50))]);
      this.#died(name, gen);
    });
    if (spec.port !== null) {
      const port = spec.port;
      const pids = () => this.#o.pids?.(name, proc.pid) ?? servicePids(proc.pid);
      // without a pids option, most polls look at the leader's descendants only (cheap)
      const leader = this.#o.pids ? undefined : proc.pid;
      waitForListener(port, { pids, leader, until: () => s.gen !== gen || s.proc === null }).then(
        (l) => {
          if (!l || s.gen !== gen || s.proc === null) return;
          s.ready = true;
          trace(`supervisor: ${name} ready`);
          this.#set(s, "running");
          this.#event(
            name,
            `ready on ${l.address.includes(":") ? `[${l.address}]` : l.address}:${port}`,
          );
          this.#pump();
          this.#prepareSoon(name, gen);
        },
      );
    } else {
      queueMicrotask(() => this.#pump());
      this.#prepareSoon(name, gen);
    }
  }

  /** The warm loader's path (written once into hd's private directory), or null. */
  #loader(): string | null {
    if (this.#warmDir === null) {
      try {
        const dir = Deno.makeTempDirSync({ prefix: "hd-warm-" }); // 0700
        Deno.writeTextFileSync(`${dir}/loader.cjs`, WARM_LOADER, { mode: 0o600 });
        this.#warmDir = dir;
      } catch {
        return null;
      }
    }
    return `${this.#warmDir}/loader.cjs`;
  }

  #sandboxed(spec: ServiceSpec): boolean {
    return Object.hasOwn(spec.env, "HD_SANDBOX") || spec.image !== undefined;
  }

  /** The standby containers of a warm service of the environment's base, or null. */
  #sandboxWarm(spec: ServiceSpec): SandboxWarm | null {
    const e = spec.env;
    if (spec.reload !== "warm" || !e.HD_SANDBOX_WARM_DIR || !e.HD_SANDBOX_WARM_ROOT) return null;
    if (!e.HD_SANDBOX_WARM_MOUNT) return null;
    const slots = slotScripts(e, "HD_SANDBOX_WARM_");
    if (slots === null) return null;
    const command = e.HD_SANDBOX_WARM_CMD ?? "";
    const mount = e.HD_SANDBOX_WARM_MOUNT;
    return { dir: e.HD_SANDBOX_WARM_DIR, root: e.HD_SANDBOX_WARM_ROOT, mount, command, slots };
  }

  /**
   * Hands `s` over to its standby `sb`: the old instance is stopped (a restart waits for it), so
   * the standby may run (and listen) now; its group becomes the service's.
   */
  #takeStandby(s: Svc, sb: Standby): GroupProcess {
    s.standby = null;
    s.slot = sb.slot;
    sb.proc.go?.();
    return sb.proc;
  }

  /** The held containers of a plain service of the environment's base, or null. */
  /**
   * How service `name` would be started now when it is a plain host service (no warm standby, no
   * held container): what src/services/prespawn.ts's early processes are compared with; null
   * otherwise.
   */
  plainLine(name: string): SpawnLine | null {
    const spec = this.#svc.get(name)?.spec;
    if (!spec || this.#sandboxHeld(spec) !== null || this.#warmLine(spec) !== null) return null;
    return spawnLine(this.#o.dir, spec, this.#o.env);
  }

  #sandboxHeld(spec: ServiceSpec): SandboxHeld | null {
    const e = spec.env;
    if (spec.reload === "warm" || e.HD_SANDBOX_HELD_CMD === undefined) return null;
    const slots = slotScripts(e, "HD_SANDBOX_HELD_");
    return slots === null ? null : { command: e.HD_SANDBOX_HELD_CMD, slots };
  }

  /**
   * Writes the warm loader into a sandboxed warm service's directory (bound read-only into its
   * containers), before its container starts: temp file + rename in hd's own directory.
   */
  #sandboxLoader(spec: ServiceSpec): void {
    const w = this.#sandboxWarm(spec);
    if (w === null) return;
    try {
      const f = `${w.dir}/in/loader.cjs`;
      Deno.writeTextFileSync(`${f}.${Deno.pid}.tmp`, WARM_LOADER, { mode: 0o644 });
      Deno.renameSync(`${f}.${Deno.pid}.tmp`, f);
    } catch { /* its node starts without the loader: cold restarts */ }
  }

  /** Where the running instance of `name` records its modules (null: nowhere yet). */
  #recordPath(name: string, spec: ServiceSpec): string | null {
    const w = this.#sandboxWarm(spec);
    if (w) return `${w.dir}/record.json`;
    return this.#warmDir === null ? null : `${this.#warmDir}/${name}.record.json`;
  }

  /** The command line of a warm service (`node --require LOADER …`), or null: run it as written. */
  #warmLine(spec: ServiceSpec): string | null {
    if (spec.reload !== "warm" || this.#sandboxed(spec) || this.#closed) return null;
    const loader = this.#loader();
    return loader === null ? null : warmCommandLine(spec.command, loader);
  }

  #warmEnv(name: string): Record<string, string> {
    return { HD_WARM_RECORD: `${this.#warmDir}/${name}.record.json` };
  }

  #warmVerdict(s: Svc): WarmDecision {
    const sb = s.standby;
    const w = this.#sandboxWarm(s.spec);
    return warmDecision({
      reload: s.spec.reload,
      command: w ? w.command : s.spec.command,
      sandboxed: w === null && this.#sandboxed(s.spec),
      standby: sb ? { alive: sb.alive, command: sb.command, preloaded: this.#loaded(sb) } : null,
      changed: sb ? [...sb.changed] : [],
      stepsRan: sb?.stepsRan ?? 0,
    });
  }

  /** What standby `sb` holds in its module cache, once it has reported it. */
  #loaded(sb: Standby): Set<string> | null {
    if (sb.loaded === null) {
      try {
        const text = readSmall(sb.loadedFile);
        if (text) sb.loaded = loadedSet(text, sb.root);
      } catch { /* not yet */ }
    }
    return sb.loaded;
  }

  /** Starts the next standby of `name` shortly after its process `gen` is up. */
  #prepareSoon(name: string, gen: number): void {
    const s = this.#svc.get(name)!;
    const held = this.#sandboxHeld(s.spec) !== null;
    if ((s.spec.reload !== "warm" && !held) || s.standby !== null) return;
    let tries = 0;
    const tick = () => {
      if (this.#closed || s.gen !== gen || !s.proc || s.standby || !this.#desired.has(name)) return;
      // the first instance writes its record once its entry point has run: wait for it a little
      const rec = held ? null : this.#recordPath(name, s.spec);
      if (rec !== null && tries++ < 40) {
        try {
          if (Deno.statSync(rec).size === 0) return void setTimeout(tick, 50);
        } catch {
          return void setTimeout(tick, 50);
        }
      }
      this.#prepare(name);
    };
    setTimeout(tick, STANDBY_DELAY_MS);
  }

  /** Spawns a standby: the service's warm command, preloading the last record's modules. */
  #prepare(name: string): void {
    const s = this.#svc.get(name)!;
    const h = this.#sandboxHeld(s.spec);
    if (h !== null) return this.#prepareHeld(name, s, h);
    const w = this.#sandboxWarm(s.spec);
    if (w !== null) return this.#prepareContainer(name, s, w);
    const line = this.#warmLine(s.spec);
    const loader = this.#loader();
    if (line === null || loader === null) return;
    const dir = this.#warmDir!;
    let rec = null;
    try {
      rec = parseRecord(Deno.readTextFileSync(`${dir}/${name}.record.json`));
    } catch { /* no record yet: the standby still saves node's own start */ }
    const { paths } = preloadList(rec ?? { entry: null, modules: [], children: [] }, {
      dir: this.#o.dir,
      watch: new GlobSet(s.spec.watch),
      loader,
    });
    const list = `${dir}/${name}.preload.json`;
    const cwd = s.spec.workdir && s.spec.workdir !== "."
      ? `${this.#o.dir}/${s.spec.workdir}`
      : this.#o.dir;
    const loadedFile = `${dir}/${name}.loaded.${++this.#standbys}.json`;
    let proc: GroupProcess;
    try {
      Deno.writeTextFileSync(`${list}.tmp`, JSON.stringify(paths), { mode: 0o600 });
      Deno.renameSync(`${list}.tmp`, list);
      proc = spawnGroup(line, {
        cwd,
        env: {
          ...this.#o.env,
          ...s.spec.env,
          ...this.#warmEnv(name),
          HD_WARM_PRELOAD: list,
          HD_WARM_LOADED: loadedFile,
          HD_WARM_HOLD: "1",
        },
        hold: true,
      });
    } catch (e) {
      this.#event(name, `cannot start a standby: ${(e as Error).message}`);
      return;
    }
    this.#adoptStandby(s, proc, {
      command: s.spec.command,
      loadedFile,
      root: this.#o.dir,
      modules: paths.length,
      slot: null,
      held: false,
    });
  }

  /** Records `proc` as the standby of `s` (alive until its group exits). */
  #adoptStandby(
    s: Svc,
    proc: GroupProcess,
    o: Pick<Standby, "command" | "loadedFile" | "root" | "modules" | "slot" | "held">,
  ): void {
    const sb: Standby = {
      proc,
      ...o,
      loaded: null,
      changed: new Set(),
      stepsRan: 0,
      alive: true,
    };
    proc.status.then(() => sb.alive = false);
    s.standby = sb;
  }

  /**
   * Spawns the standby of a service of the environment's base: a container of the service's own
   * (same root, mounts, user, env and network namespace; src/runtime/sandbox_services.ts) in the
   * slot the running one does not use, preloading what the running container recorded. The
   * paths are as the container sees them (the project at `w.root`).
   */
  #prepareContainer(name: string, s: Svc, w: SandboxWarm): void {
    const slot = this.#freeSlot(name, s, w.slots);
    if (slot === null) return;
    const text = readSmall(`${w.dir}/record.json`);
    const rec = text ? parseRecord(text) : null;
    const { paths } = preloadList(rec ?? { entry: null, modules: [], children: [] }, {
      dir: w.root,
      watch: new GlobSet(s.spec.watch),
      loader: `${w.mount}/loader.cjs`,
    });
    const list = `${w.dir}/in/preload.json`;
    const loadedFile = `${w.dir}/loaded.json`;
    let proc: GroupProcess;
    try {
      this.#sandboxLoader(s.spec);
      Deno.writeTextFileSync(`${list}.${Deno.pid}.tmp`, JSON.stringify(paths), { mode: 0o644 });
      Deno.renameSync(`${list}.${Deno.pid}.tmp`, list);
      Deno.writeTextFileSync(loadedFile, ""); // in place: it is bound into the container
      proc = spawnGroup(`eval "$HD_SANDBOX_STANDBY"`, {
        cwd: this.#o.dir,
        env: { ...this.#o.env, ...s.spec.env, HD_SANDBOX_STANDBY: w.slots[slot] },
        hold: true,
      });
    } catch (e) {
      this.#event(name, `cannot start a standby: ${(e as Error).message}`);
      return;
    }
    this.#adoptStandby(s, proc, {
      command: w.command, // what warmVerdict compares: the service's own command
      loadedFile,
      root: w.root,
      modules: paths.length,
      slot,
      held: false,
    });
  }

  /**
   * The standby slot of `name` the running container does not use, or null: hd is closing, or a
   * standby of that slot is still stopping (it holds the container id) — then this prepares again
   * once it is gone.
   */
  #freeSlot(name: string, s: Svc, slots: Record<string, string>): string | null {
    if (this.#closed) return null;
    const slot = Object.keys(slots).sort().find((k) => k !== s.slot)!;
    const busy = this.#slotStops.get(`${name}:${slot}`);
    if (!busy) return slot;
    const gen = s.gen;
    busy.then(() => {
      if (this.#closed || s.gen !== gen || !s.proc || s.standby || !this.#desired.has(name)) return;
      this.#prepare(name);
    });
    return null;
  }

  /**
   * Spawns the held container of a plain service of the environment's base in the slot the
   * running one does not use: runc creates it now (root, mounts, user, network namespace, cgroup)
   * and its shell waits for the go before the service's command (src/runtime/sandbox_services.ts).
   */
  #prepareHeld(name: string, s: Svc, h: SandboxHeld): void {
    const slot = this.#freeSlot(name, s, h.slots);
    if (slot === null) return;
    let proc: GroupProcess;
    try {
      proc = spawnGroup(`eval "$HD_SANDBOX_STANDBY"`, {
        cwd: this.#o.dir,
        env: { ...this.#o.env, ...s.spec.env, HD_SANDBOX_STANDBY: h.slots[slot] },
        hold: true,
      });
    } catch (e) {
      this.#event(name, `cannot hold a container ready: ${(e as Error).message}`);
      return;
    }
    this.#adoptStandby(s, proc, {
      command: h.command,
      loadedFile: "",
      root: "",
      modules: 0,
      slot,
      held: true,
    });
  }

  /** Stops the standby of `s` (in the background; close waits for it). */
  #dropStandby(s: Svc): void {
    const sb = s.standby;
    if (!sb) return;
    s.standby = null;
    sb.proc.release?.(); // hd's end of its stdin: no go will come
    const p = stopGroup(sb.proc.pid, sb.proc.status, this.#o.graceMs)
      .then(() => Promise.all([sb.proc.stdout.cancel(), sb.proc.stderr.cancel()]))
      .catch(() => {})
      // a sandbox's file is bound into the next standby (emptied when that one starts)
      .finally(() => sb.slot === null && !sb.held && removeQuietly(sb.loadedFile));
    this.#dropping.add(p);
    p.finally(() => this.#dropping.delete(p));
    if (sb.slot !== null) {
      const key = `${s.spec.name}:${sb.slot}`;
      this.#slotStops.set(key, p);
      p.finally(() => this.#slotStops.get(key) === p && this.#slotStops.delete(key));
    }
  }

  /** Runs the healthcheck of `name` while its process `gen` lives. */
  #watchHealth(name: string, gen: number, cwd: string): void {
    const s = this.#svc.get(name)!;
    const hc = s.spec.healthcheck!;
    const leader = s.proc!.pid;
    s.health = initialHealth(Date.now());
    const abort = new AbortController();
    s.healthAbort = abort;
    const live = () => s.gen === gen && s.proc !== null && s.proc.pid === leader;
    const tick = async () => {
      s.healthTimer = null;
      if (!live()) return;
      const pids = this.#o.pids?.(name, leader) ?? servicePids(leader);
      // a sandboxed service's command is wrapped (src/runtime/sandbox_services.ts): HD_SANDBOX
      const sandboxed = Object.hasOwn(s.spec.env, "HD_SANDBOX");
      const r = await runCheck(hc, {
        cwd,
        env: { ...this.#o.env, ...s.spec.env },
        pids,
        sandboxed,
        signal: abort.signal,
      });
      if (!live() || !s.health) return;
      const before = s.health.status;
      s.health = healthState(s.health, r, Date.now(), hc);
      if (s.health.status !== before) {
        this.#event(
          name,
          s.health.status === "healthy"
            ? `healthy${r.output ? `: ${r.output}` : ""}`
            : `${s.health.status} (${s.health.failures} failed checks): ${r.output}`,
        );
        this.#o.onChange?.();
        this.#pump();
      }
      if (live()) s.healthTimer = setTimeout(tick, nextCheckDelay(s.health, hc));
    };
    s.healthTimer = setTimeout(tick, 0);
  }

  #stopHealth(s: Svc): void {
    if (s.healthTimer !== null) clearTimeout(s.healthTimer);
    s.healthTimer = null;
    s.healthAbort?.abort();
    s.healthAbort = null;
  }

  #died(name: string, gen: number): void {
    const s = this.#svc.get(name)!;
    const now = Date.now();
    const code = s.lastExitCode;
    const ran = s.startedAt ? now - s.startedAt : 0;
    s.deaths = [...s.deaths.filter((t) => now - t < (this.#o.crashLoop?.windowMs ?? 60_000)), now];
    const policy = s.spec.restart_policy;
    if (!this.#desired.has(name) || policy === "never" || (policy === "on_failure" && code === 0)) {
      this.#set(s, "exited");
      this.#event(name, `exited with code ${code} (restart_policy = "${policy}": left stopped)`);
      this.#pump(); // a dependent may wait for it to complete
      return;
    }
    const limit = this.#o.crashLoop?.deaths ?? 5;
    if (s.deaths.length >= limit) {
      this.#set(s, "crashed");
      queueMicrotask(() => this.#pump());
      this.#event(
        name,
        `exited with code ${code}; crash loop (${s.deaths.length} exits within ${
          Math.round((this.#o.crashLoop?.windowMs ?? 60_000) / 1000)
        } s): left stopped — fix it, then \`hd restart ${name}\``,
      );
      return;
    }
    if (ran > 10_000) s.failStreak = 0;
    s.failStreak++;
    const b = this.#o.backoff ?? { initialMs: 100, maxMs: 10_000 };
    const delay = Math.min(b.initialMs * 2 ** (s.failStreak - 1), b.maxMs);
    this.#set(s, "backoff");
    this.#event(name, `exited with code ${code}; restarting in ${delay} ms`);
    s.timer = setTimeout(() => {
      s.timer = null;
      if (s.gen !== gen || s.state !== "backoff" || !this.#desired.has(name)) return;
      s.restarts++;
      this.#set(s, "pending");
      this.#pump();
    }, delay);
  }

  async #stopOne(name: string): Promise<void> {
    const s = this.#svc.get(name)!;
    if (s.timer !== null) (clearTimeout(s.timer), s.timer = null);
    this.#stopHealth(s);
    if (s.proc) {
      trace(`supervisor: stopping ${name}`);
      s.stopRequested = true;
      this.#set(s, "stopping");
      // the service's own stop_signal / restart_grace, else SIGTERM and [options] restart_grace
      const how = await stopGroup(
        s.proc.pid,
        s.proc.status,
        s.spec.restartGraceMs ?? this.#o.graceMs,
        (s.spec.stop_signal ?? "SIGTERM") as Deno.Signal,
      );
      await s.exited;
      trace(`supervisor: ${name} stopped`);
      this.#event(name, how === "kill" ? "killed (grace period over)" : "stopped");
    }
    s.gen++;
    s.proc = null;
    s.ready = false;
    if (s.state !== "crashed" && s.state !== "exited") this.#set(s, "stopped");
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* gone */ }
}

function signalNumber(sig: Deno.Signal): number {
  const n: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return n[sig] ?? 0;
}

/**
 * The inner loop of `hd up`: ingest the project (stat cache), hash the build steps and the Env
 * node, run the steps that are not cached, start the services, then watch — each debounced batch
 * of changes re-ingests only the changed files, prints the old and new root hash, re-runs the
 * steps whose hash changed, and restarts the services whose `watch` globs match a changed path
 * (with their dependents, in dependency order). Everything else keeps running.
 *
 * Declared build outputs (e.g. node_modules) are not tracked files: they are what steps make, and
 * tracking them would make a step invalidate itself.
 *
 * What a batch does (re-run, restart, reload, and the lines explaining it) is decided by the pure
 * functions of plan.ts; this class reads their inputs and carries the plan out. Where steps and
 * services run is a runtime (src/runtime/runtime.ts): the host, or the sandbox of a `base` image.
 *
 * @example
 * ```ts
 * import { DevLoop } from "./loop.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const loop = await DevLoop.open({ spec, store, print: (src, line) => console.log(src, line) });
 * await loop.start();
 * // … edits happen, the loop reacts …
 * await loop.stop();
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { openPrivateAppend } from "../sys/fs.ts";
import type { Store } from "../cas/store.ts";
import { putNode } from "../dag/dag.ts";
import { type EnvNode, nodeId } from "../dag/node.ts";
import type { Tree } from "../dag/tree.ts";
import type { PathFilter } from "../scan/filter.ts";
import { StatCache } from "../scan/statcache.ts";
import { type CompiledEnv, compileEnv, statCachePath, trackedFilter } from "../env/compile.ts";
import { envNode, stepHashes } from "../env/step_hashes.ts";
import { loadSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { lazyImport } from "../sys/lazy.ts";
import type { RemoteCache } from "../remote/cache.ts";
import { createRuntime, type LoopRuntime, type RunningStep } from "../runtime/runtime.ts";
import { GlobSet } from "../watch/pathmap.ts";
import { applyChanges, type UpdateResult } from "../watch/update.ts";
import { ingestTree } from "../scan/ingest.ts";
import { ProjectWatcher } from "../watch/watcher.ts";
import {
  configChanged,
  nextSteps,
  planRestart,
  type PlanState,
  planUpdate,
  stepJobs,
} from "./plan.ts";
import { stepDeps } from "../runtime/step_plan.ts";
import { replicaTargets, type Selection, selectServices } from "./profiles.ts";
import { listenersOnPort } from "./readiness.ts";
import { trace } from "../sys/trace.ts";
import { ownOutputFiles } from "../watch/own_output.ts";
import { CA_CERTS_HINT, tlsInterception } from "../runtime/ca_certs.ts";
import { type ServiceStatus, Supervisor } from "./supervisor.ts";
import { dropEarly, earlyIds, settleEarly, takeEarlyCheck } from "./prespawn.ts";
import {
  loadQuickStatus,
  type ProofChanges,
  proofSubject,
  saveQuickStatus,
  type SpecBinding,
} from "../env/quick_status.ts";
import { changedPaths, proofCovers } from "../env/proof_update.ts";
import { gatherStatus } from "../env/report.ts";
import { after, type Timer } from "../sys/timer.ts";

/**
 * The remote step cache's module (src/runtime/remote_steps.ts, with src/remote): loaded only
 * when a step is not cached here, so that a no-change `hd up` never reads it.
 */
function remoteSteps(): Promise<typeof import("../runtime/remote_steps.ts")> {
  return lazyImport<typeof import("../runtime/remote_steps.ts")>(
    new URL("../runtime/remote_steps.ts", import.meta.url),
  );
}

/**
 * Where a printed line comes from: "hd", "build", or a service name.
 *
 * @example
 * ```ts
 * import type { LineSource } from "./loop.ts";
 * const src: LineSource = "build";
 * ```
 */
export type LineSource = string;

/**
 * Options of a {@link DevLoop}.
 *
 * @example
 * ```ts
 * import type { DevLoopOptions } from "./loop.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const opts: DevLoopOptions = { spec, store, only: ["web"], print: console.log, noWatch: true };
 * ```
 */
export interface DevLoopOptions {
  spec: EnvSpec;
  store: Store;
  /** Services to run (with their dependencies); default all. */
  only?: string[];
  /** Active profiles (`--profile`, `HD_PROFILES`): see src/services/profiles.ts. */
  profiles?: string[];
  /** Receives every line: hd's messages, build output, service output. */
  print: (source: LineSource, line: string) => void;
  /** Structured events (for --json). */
  onEvent?: (ev: Record<string, unknown>) => void;
  /** Called when service states change. */
  onChange?: () => void;
  /** Do not watch (tests of the start alone). */
  noWatch?: boolean;
  /**
   * Called (not awaited) when hd.toml itself changed; the caller reloads (stops this loop and
   * starts one with the new spec). Without it, a note says to restart `hd up`.
   */
  onSpecChange?: () => void;
  /** The remote build cache: `--cache REF` (over HD_REMOTE_CACHE and hd.toml), `--push-cache`. */
  remote?: { flag?: string; push?: boolean };
  /**
   * How `spec` was parsed (src/env/quick_status.ts's SpecBinding): given, the proof of the first
   * compile is saved binding hd.toml, for the next no-change start (src/services/prespawn.ts).
   */
  bind?: SpecBinding;
}

const REMOTE_OFF = "remote cache off until hd up restarts (it failed; steps run here)";

/** The most paths held while a start is not done (more: a scan finds what changed). */
const HELD_MAX = 10_000;

/**
 * State of one build step after the last run.
 *
 * @example
 * ```ts
 * import type { StepState } from "./loop.ts";
 * const st: StepState = { index: 0, run: "npm ci", hash: "ab12", state: "cached" };
 * ```
 */
export interface StepState {
  index: number;
  run: string;
  hash: string;
  state: "cached" | "ran" | "failed" | "pending";
  ms?: number;
}

/**
 * What `hd status` shows about a running loop.
 *
 * @example
 * ```ts
 * import type { DevLoop, LoopStatus } from "./loop.ts";
 * declare const loop: DevLoop;
 * const st: LoopStatus = loop.status();
 * console.log(st.root, st.updates, st.lastUpdate?.restarted);
 * ```
 */
export interface LoopStatus {
  env: string;
  dir: string;
  /** Id of the Env node. */
  root: string;
  /** Id of the root Dir of the tracked files. */
  files: string;
  steps: StepState[];
  services: ServiceStatus[];
  updates: number;
  lastUpdate: UpdateReport | null;
  watching: boolean;
}

/**
 * What one batch of changes did.
 *
 * @example
 * ```ts
 * import type { DevLoop, UpdateReport } from "./loop.ts";
 * declare const loop: DevLoop;
 * const r: UpdateReport | null = await loop.update(["src/a.js"]);
 * console.log(r?.stepsRun, r?.restarted, r?.ms);
 * ```
 */
export interface UpdateReport {
  paths: number;
  oldRoot: string;
  root: string;
  added: string[];
  modified: string[];
  removed: string[];
  stepsRun: number[];
  stepsFailed: number[];
  restarted: string[];
  /** From the batch to the restarted services spawned (and the refs recorded). */
  ms: number;
  /** Ingest + hashing, build steps, stopping and spawning services. */
  timings: { hashMs: number; stepsMs: number; restartMs: number };
}

/**
 * One environment's loop: files → DAG → steps → services → watch.
 *
 * @example
 * ```ts
 * import { DevLoop } from "./loop.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const loop = await DevLoop.open({ spec, store, print: (src, line) => console.log(`${src} | ${line}`) });
 * await loop.start();
 * console.log(loop.root, loop.supervisor.status());
 * await loop.stop();
 * ```
 */
export class DevLoop {
  #o: DevLoopOptions;
  /** The remote cache (false: none configured; undefined: not looked at yet). */
  #remote: RemoteCache | false | undefined;
  #spec: EnvSpec;
  #store: Store;
  #filter: PathFilter;
  #outputs: GlobSet;
  #ownOutput: string[];
  /** The stat cache: the one the compile loaded, else loaded on first use (see #statCache). */
  #cache: StatCache | null;
  #tree: Tree | null = null;
  #filesRoot = "";
  #envRoot = "";
  #baseId: string | null = null;
  #packageIds: string[] = [];
  #steps: StepState[] = [];
  #watchGlobs: Record<string, GlobSet>;
  #watcher: ProjectWatcher | null = null;
  /** Build steps running now (side by side when independent). */
  #running = new Set<RunningStep>();
  /** The last call of runtime.recordPending (calls run one after the other: #recordPending). */
  #recording: Promise<void> = Promise.resolve();
  #stopping = false;
  /** Set by {@link projectGone}. */
  #projectGone = false;
  #cacheTimer: ReturnType<typeof setTimeout> | null = null;
  #captureTimer: ReturnType<typeof setTimeout> | null = null;
  #updates = 0;
  #last: UpdateReport | null = null;
  /** What profiles and the named services start (src/services/profiles.ts). */
  #selection: Selection;
  /** The service supervisor. */
  readonly supervisor: Supervisor;
  /** Where steps and services run: the host, or the sandbox of the `base` image. */
  readonly runtime: LoopRuntime;

  /**
   * The loop of `opts.spec`, with its runtime ({@link createRuntime}: only the host's or only
   * the sandbox's code is loaded). Starts nothing yet: see {@link start}.
   */
  static async open(opts: DevLoopOptions): Promise<DevLoop> {
    const runtime = await createRuntime(opts.spec, opts.store, (l) => opts.print("hd", l));
    return new DevLoop(opts, runtime);
  }

  private constructor(opts: DevLoopOptions, runtime: LoopRuntime) {
    this.#o = opts;
    this.#spec = opts.spec;
    this.#store = opts.store;
    // never track (nor watch) a file hd itself writes to: `hd up > up.log` must not loop
    this.#ownOutput = ownOutputFiles(opts.spec.dir);
    this.#filter = trackedFilter(opts.spec, this.#ownOutput);
    this.#outputs = new GlobSet(opts.spec.build.steps.flatMap((s) => s.outputs));
    this.#cache = null;
    this.#watchGlobs = Object.fromEntries(
      Object.values(opts.spec.services).map((s) => [s.name, new GlobSet(s.watch)]),
    );
    this.runtime = runtime;
    this.supervisor = new Supervisor({
      services: this.runtime.services,
      dir: opts.spec.dir,
      env: this.runtime.hostEnv,
      graceMs: opts.spec.options.restartGraceMs,
      logDir: `${opts.spec.dir}/.hd/logs`,
      onLine: (svc, line) => opts.print(svc, line),
      onEvent: (svc, msg) => {
        opts.print(svc, `\u2500\u2500 ${msg}`);
        opts.onEvent?.({ event: "service", service: svc, message: msg });
      },
      onChange: opts.onChange,
    });
    // a scaled service's name stands for its replicas
    const only = replicaTargets(opts.spec.services, opts.only ?? []);
    if (only.length) {
      for (const n of only) {
        if (!opts.spec.services[n]) {
          throw new HdError(
            `Cannot start service "${n}": no such service in ${opts.spec.file}`,
            `services: ${Object.keys(opts.spec.services).join(", ") || "(none)"}`,
            2,
          );
        }
      }
    }
    this.#selection = selectServices(opts.spec.services, opts.profiles ?? [], only);
  }

  get #cachePath(): string {
    return statCachePath(this.#spec);
  }

  /** The environment of services, steps and `hd exec`: the host's plus [environment].env. */
  baseEnv(): Record<string, string> {
    return { ...Deno.env.toObject(), ...this.#spec.environment.env };
  }

  /** Id of the Env node (the root hash). */
  /** The configuration in use (an edit of hd.toml applied in place changes it). */
  get spec(): EnvSpec {
    return this.#spec;
  }

  get root(): string {
    return this.#envRoot;
  }

  #print(line: string): void {
    this.#o.print("hd", line);
  }

  #envNode(stepIds: string[]): EnvNode {
    const name = this.#spec.environment.name;
    return envNode(name, this.#filesRoot, this.#baseId, this.#packageIds, stepIds);
  }

  /** Stores the Env node and moves the refs `trees/<name>` and `envs/<name>`. */
  #persistEnv(node: EnvNode, filesRoot: string): void {
    const name = this.#spec.environment.name;
    putNode(this.#store, node);
    this.#store.setRef(`trees/${name}`, filesRoot);
    this.#store.setRef(`envs/${name}`, nodeId(node));
  }

  /**
   * Ingests, runs uncached steps, starts the services and (unless `noWatch`) the watcher.
   * Throws when a build step fails (nothing is started then).
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (e) {
      // a watcher started before the scan of a start that failed watches for no one
      if (this.#held !== null) {
        this.#held = null;
        const w = this.#watcher;
        this.#watcher = null;
        await w?.close();
      }
      throw e;
    } finally {
      await dropEarly(); // a failed build, a stop meanwhile: no early service runs on
    }
  }

  async #start(): Promise<void> {
    const t0 = performance.now();
    if (this.#spec.environment.base !== null) {
      this.#print(`base ${this.#spec.environment.base}: preparing the image`);
    }
    await this.runtime.prepare();
    trace("loop: runtime prepared");
    if (this.#ownOutput.length) {
      this.#print(`not tracking ${this.#ownOutput.join(", ")}: hd writes its output there`);
    }
    const scanStart = Date.now();
    const subjectOpts = { baseId: this.runtime.baseId, imageIds: this.runtime.imageIds };
    const c = await compileEnv(this.#store, this.#spec, {
      ...subjectOpts,
      exclude: this.#ownOutput,
      fromProof: true, // nothing changed, or files edited in place: no scan
      // the early services' check of the proof, made before the session loaded: not made twice
      checked: takeEarlyCheck(this.#spec.dir) ?? undefined,
      // a scan: the watcher starts before it reads anything, and what it sees is held until
      // the start is done (#flushHeld)
      beforeScan: this.#o.noWatch ? undefined : () => {
        this.#held = new Set();
        this.#watch();
      },
    });
    trace("loop: env compiled");
    this.#tree = c.tree;
    this.#filesRoot = c.filesRoot;
    this.#envRoot = c.envId;
    this.#baseId = c.baseId;
    this.#packageIds = c.packages.map((p) => p.id);
    // the cache the compile just loaded and saved, not the file read and verified again
    // a tree from the project's proof loaded none: loaded when an update first needs it
    this.#cache = c.statCache ?? null;
    const hashes = c.steps.map((s) => s.id);
    this.#print(
      `root ${this.#envRoot}  (${c.files} files, ${c.files - c.cacheHits} read, ${
        Math.round(performance.now() - t0)
      } ms)`,
    );
    this.#o.onEvent?.({
      event: "root",
      root: this.#envRoot,
      files: this.#filesRoot,
      count: c.files,
      read: c.files - c.cacheHits,
    });
    this.#steps = this.#spec.build.steps.map((s, i) => ({
      index: i,
      run: s.run,
      hash: hashes[i],
      state: "pending",
    }));
    const failed = await this.#runSteps(new Set(this.#steps.map((s) => s.index)));
    if (this.#stopping) return; // stopped while building: start nothing
    if (failed.length) {
      const s = this.#spec.build.steps[failed[0]];
      throw new HdError(
        `Cannot start the environment: build step ${failed[0] + 1} (\`${s.run}\`) failed`,
        "fix the step (its output is above and in .hd/logs/build.log), then run `hd up` again",
      );
    }
    trace("loop: steps done");
    await this.runtime.ready();
    trace("loop: runtime ready");
    // services started before the session loaded (src/services/prespawn.ts) are kept when this
    // compile found the tree and environment their proof named, no step ran, and the supervisor
    // starts them the same way; the others are stopped (and gone) before anything starts
    const ids = earlyIds(this.#spec.dir);
    const same = ids !== null && ids.filesRoot === c.filesRoot && ids.envId === c.envId &&
      this.#steps.every((s) => s.state === "cached");
    const early = await settleEarly(
      this.#spec.dir,
      (name) => same ? this.supervisor.plainLine(name) : null,
    );
    // readiness is the service's own listener: a port another process holds delays it
    for (const svc of Object.values(this.#spec.services)) {
      if (
        svc.port !== null && !this.runtime.services[svc.name]?.readyHost && !early.has(svc.name) &&
        listenersOnPort(svc.port).length > 0
      ) {
        this.#print(
          `warning: port ${svc.port} of ${svc.name} is already in use by another process; ` +
            `${svc.name} is not ready until it listens there itself (stop the other process, or change the port)`,
        );
      }
    }
    trace("loop: port check done");
    this.supervisor.start(this.#selection.start);
    trace("loop: supervisor.start returned");
    await dropEarly(); // any the supervisor did not take
    // a tree taken from the proof unchanged is the proof's: the one on disk stays (a scan's, or
    // one with files edited since, is saved)
    if (c.proofEdits !== 0) this.#saveProofSoon(c, scanStart);
    // After a scan the watcher runs already (it started before the scan read anything) and
    // what it saw meanwhile is applied now. A tree from the proof: the watcher starts once the
    // services settle (its set-up, ~15-70 ms on a 10k-file tree, would hold up their readiness
    // checks), and the proof is then checked again (#watchAfterStart).
    if (!this.#o.noWatch) {
      if (c.proofEdits !== undefined) {
        this.#watchAfterStart(proofSubject(this.#spec, subjectOpts));
      } else await this.#flushHeld();
    }
    this.#captureSoon();
  }

  /**
   * Paths the watcher reported while the start was not done (it started before the scan):
   * applied once the start is done, not while its steps run or its services start. Null when
   * nothing is held; `overflow` when more than {@link HELD_MAX} came (then a scan finds them).
   */
  #held: Set<string> | null = null;
  #heldOverflow = false;

  /** Applies what the watcher saw while the start was not done ({@link #held}). */
  async #flushHeld(): Promise<void> {
    const held = this.#held;
    this.#held = null;
    const w = this.#watcher;
    if (held === null || w === null) return;
    const dir = this.#spec.dir;
    if (this.#heldOverflow) {
      this.#heldOverflow = false;
      const paths = await this.#changedByScan();
      trace(`loop: held while starting: too many, a scan found ${paths.length} paths`);
      w.report(paths.map((p) => `${dir}/${p}`));
    } else if (held.size > 0) {
      trace(`loop: held while starting: ${held.size} paths`);
      w.report([...held].map((p) => `${dir}/${p}`));
    }
  }

  /** Starts the watcher: its batches are {@link update}s (held while the start is not done). */
  #watch(): ProjectWatcher {
    const w = new ProjectWatcher(this.#spec.dir, {
      debounceMs: this.#spec.options.debounceMs,
      filter: this.#filter,
      ignore: this.#outputs,
      onBatch: (paths) => {
        const held = this.#held;
        if (held === null) return this.update(paths).then(() => {});
        for (const p of paths) {
          if (held.size >= HELD_MAX) this.#heldOverflow = true;
          else held.add(p);
        }
      },
      // the kernel dropped events: a scan against the stat cache finds what they said
      onRescan: () => {
        if (this.#held === null) return this.#changedByScan();
        this.#heldOverflow = true; // (found by the scan once the start is done)
        return [];
      },
    });
    this.#watcher = w;
    w.start();
    trace("loop: watcher started");
    return w;
  }

  /**
   * The start's tree came from the project's proof, checked before anything watched (by the
   * compile, or by the early services before the session loaded). Once the services started
   * settle (at most a second), the watcher starts, then the proof is checked again and what
   * differs from it is handed to the watcher as if it had seen it (an update finds no change
   * where the tree has it already): nothing written since the first check goes unseen. When the
   * proof no longer holds (hd.toml, hd.lock or many files changed since), a scan against the stat
   * cache finds what differs from the tree. Off the start's path: `hd up -d` has returned.
   */
  #watchAfterStart(subject: string): void {
    const spec = this.#spec;
    let found: (v: ProofChanges | null) => void = () => {};
    const recheck = {
      found: new Promise<ProofChanges | null>((r) => found = r),
      done: false,
    };
    this.#recheck = recheck;
    const end = (v: ProofChanges | null) => {
      recheck.done = true;
      found(v);
    };
    void this.supervisor.settled(1000).then(async () => {
      if (this.#stopping || spec !== this.#spec || this.#watcher !== null || !this.#tree) {
        return end(null);
      }
      const watcher = this.#watch();
      const q = await loadQuickStatus(this.#store.identity().key, spec, subject);
      end(q);
      // (stopped meanwhile, or reloaded: another watcher, or none)
      if (this.#stopping || (this.#watcher as ProjectWatcher | null) !== watcher) return;
      const paths = q !== null
        ? changedPaths(this.#tree, spec.dir, q)
        : await this.#changedByScan();
      trace(`loop: checked again after the start (${q ? "proof" : "scan"}), ${paths.length} paths`);
      watcher.report(paths.map((p) => `${spec.dir}/${p}`));
    }).catch((e) => {
      end(null);
      this.#print(
        `warning: cannot check for files changed while starting: ${(e as Error).message}`,
      );
    });
  }

  /**
   * What differs between the project and the tree in use, by a scan against the stat cache
   * (it reads only files whose stat changed): paths relative to the project.
   */
  async #changedByScan(): Promise<string[]> {
    const store = this.#store;
    using _lease = store.lease("hd up: what changed while starting");
    const fresh = await store.withLock(
      "shared",
      () => ingestTree(store, this.#spec.dir, { filter: this.#filter, cache: this.#statCache() }),
    );
    const { diffTrees } = await lazyImport<typeof import("../dag/diff.ts")>(
      new URL("../dag/diff.ts", import.meta.url),
    );
    const d = diffTrees(store, this.#filesRoot, fresh.root);
    return [...d.added, ...d.removed, ...d.changed].map((p) => p.replace(/\/$/, ""));
  }

  /** The start's proof, while its save is pending ({@link #saveProofSoon}). */
  #proof: { timer: Timer; save: (stopping?: boolean) => Promise<void> } | null = null;
  /**
   * The check after the start ({@link #watchAfterStart}): what it found changed since the proof
   * (null: it found the proof no longer holds, or did not run), and whether it is done.
   */
  #recheck: { found: Promise<ProofChanges | null>; done: boolean } | null = null;

  /**
   * Saves the proof of this start's compile (src/env/quick_status.ts; binding hd.toml when its
   * parse allows), a second later, off the services' start: the next no-change `hd up -d` starts
   * its first services from it (src/services/prespawn.ts), and `hd status` answers from it. A
   * file written since the compile began keeps it from being saved (the racy rule). A session
   * that ends sooner saves it as it stops (one whose files changed meanwhile saves a fresh one,
   * {@link #saveFreshProof}). Only on the host and when hd tracks the project as `hd status` does
   * (no own output excluded).
   */
  #saveProofSoon(c: CompiledEnv, scanStart: number): void {
    const bind = this.#o.bind;
    if (!bind || !this.#proofAllowed()) return;
    const spec = this.#spec;
    const save = async (stopping = false) => {
      this.#proof = null;
      if (spec !== this.#spec) return; // hd.toml applied in place since
      // a tree from the proof is vouched for by the check after the start (#watchAfterStart):
      // saved only when that found nothing besides what the compile's check did (a file
      // written in between, in the tree or not, would otherwise be recorded with what it held
      // before); not waited for by a stop
      const again = this.#recheck;
      if (again !== null) {
        if (stopping && !again.done) return;
        if (!proofCovers(c.proofChanges, await again.found)) return;
      }
      const secret = this.#store.identity().key;
      await saveQuickStatus(secret, spec, proofSubject(spec, {}), c, scanStart, bind)
        .catch(() => {});
    };
    this.#proof = { timer: after(1000, () => void save()), save };
  }

  /**
   * Runs the steps in `which` that are not cached; returns the indexes that failed (ascending).
   * Steps whose dependency sets allow it (stepDeps: disjoint declared inputs and outputs) run side
   * by side, at most `[options] jobs` (default: one per core) at once, each starting as soon as
   * the steps it depends on are done ({@link nextSteps}). Their output lines are prefixed with the
   * step number. After a failure nothing new starts; the steps already running finish.
   */
  async #runSteps(which: Set<number>): Promise<number[]> {
    const deps = stepDeps(this.#spec);
    const jobs = stepJobs(this.#spec.options.jobs, navigator.hardwareConcurrency);
    const todo = this.#steps.filter((s) => which.has(s.index)).map((s) => s.index);
    const running = new Map<number, Promise<void>>();
    const failed: number[] = [];
    const log = { file: null as Deno.FsFile | null, path: `${this.#spec.dir}/.hd/logs/build.log` };
    while (!this.#stopping) {
      const start = nextSteps({ deps, todo, running: [...running.keys()], failed, jobs });
      for (const i of start) {
        todo.splice(todo.indexOf(i), 1);
        running.set(
          i,
          this.#runStep(this.#steps[i], log).then((ok) => {
            if (!ok) failed.push(i);
            running.delete(i);
          }),
        );
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    await Promise.all(running.values());
    for (const i of todo) this.#steps[i].state = "pending";
    log.file?.close();
    return failed.sort((a, b) => a - b);
  }

  /** Runs one step unless it is cached (here or in the remote cache); false when it failed. */
  async #runStep(
    st: StepState,
    log: { file: Deno.FsFile | null; path: string },
  ): Promise<boolean> {
    const spec = this.#spec.build.steps[st.index];
    if (this.runtime.isCached(st.index, st.hash)) {
      st.state = "cached";
      this.#print(`step ${st.index + 1} cached (${st.hash.slice(0, 12)}): ${st.run}`);
      return true;
    }
    if (this.#remote === undefined) {
      const r = (await remoteSteps()).specRemote(this.#store, this.#spec, this.#o.remote?.flag);
      this.#remote ??= r ?? false;
    }
    if (this.#remote) {
      const { fromRemote } = await remoteSteps();
      const got = await fromRemote(this.runtime, this.#store, this.#remote, st.index, st.hash);
      if (got.line) this.#print(got.line);
      if (got.hit) (st.state = "cached", this.#o.onChange?.());
      if (got.hit) return true;
      // a failing remote is not asked again this session: each edit would wait for it
      if (got.line?.startsWith("warning")) (this.#remote = false, this.#print(REMOTE_OFF));
    }
    if (this.#stopping) return (st.state = "pending", true); // stopped meanwhile: start nothing
    this.#print(`step ${st.index + 1} running (${st.hash.slice(0, 12)}): ${st.run}`);
    log.file ??= openLog(log.path);
    const tag = `[${st.index + 1}] `;
    const write = (line: string) => {
      try {
        log.file?.writeSync(new TextEncoder().encode(line + "\n"));
      } catch { /* no log */ }
    };
    write(`[hd] step ${st.index + 1} (${st.hash}): ${st.run}`);
    let untrusted = false; // a TLS-intercepting proxy: hint at ca_certs
    const running = this.runtime.runStep(st.index, st.hash, spec, {
      onLine: (line) => (
        untrusted ||= tlsInterception(line), write(tag + line), this.#o.print("build", tag + line)
      ),
    });
    this.#running.add(running);
    const r = await running.done;
    this.#running.delete(running);
    st.ms = Math.round(r.ms);
    st.state = r.code === 0 ? "ran" : "failed";
    this.#print(
      r.code === 0
        ? `step ${st.index + 1} done in ${st.ms} ms`
        : `step ${st.index + 1} failed with exit code ${r.code} after ${st.ms} ms`,
    );
    // (on the host a step already has the host's certificates)
    if (r.code !== 0 && untrusted && this.#spec.environment.base !== null) {
      if (!this.#spec.environment.caCerts) this.#print(`hint: ${CA_CERTS_HINT}`);
    }
    this.#o.onEvent?.({ event: "step", index: st.index, hash: st.hash, code: r.code, ms: st.ms });
    if (r.code === 0 && this.#remote && this.#o.remote?.push) {
      await this.#recordPending();
      this.#print(await (await remoteSteps()).pushStep(this.#store, this.#remote, st.hash));
    }
    return r.code === 0;
  }

  /** Applies one batch of changed paths (relative to the project). */
  async update(paths: string[]): Promise<UpdateReport | null> {
    if (!this.#tree || this.#stopping) return null;
    const t0 = performance.now();
    trace(`loop: update of ${paths.length} paths`);
    const tree = this.#tree;
    // Keeps the new tree (and what the steps store) from a gc until persistEnv sets the refs.
    using _lease = this.#store.lease("hd up: update");
    const r: UpdateResult = await this.#store.withLock(
      "shared",
      () =>
        applyChanges(this.#store, tree, this.#spec.dir, paths, {
          filter: this.#filter,
          ignore: this.#outputs,
          cache: this.#statCache(),
        }),
    );
    if (r.root === r.oldRoot) return null;
    this.#filesRoot = r.root;
    const hashes = await this.#store.withLock(
      "shared",
      () =>
        stepHashes(this.#spec, tree, {
          store: this.#store,
          baseId: this.runtime.baseId,
          imageIds: this.runtime.imageIds,
        })
          .map((s) => s.id),
    );
    const oldEnv = this.#envRoot;
    const env = this.#envNode(hashes);
    this.#envRoot = nodeId(env);
    const tHash = performance.now();
    trace("loop: update hashed");
    const changed = [...r.added, ...r.modified, ...r.removed];
    const plan = planUpdate(this.#planState(), {
      added: r.added,
      modified: r.modified,
      removed: r.removed,
      oldRoot: oldEnv,
      root: this.#envRoot,
      hashes,
      config: configChanged(this.#spec, changed) ? readConfig(this.#spec) : undefined,
    });
    for (const line of plan.lines) this.#print(line);
    if (plan.config.kind === "reload") {
      this.#o.onSpecChange?.();
      return null;
    }
    if (plan.config.kind === "in-place") {
      this.#spec = plan.config.spec;
      for (const n of plan.config.services) this.supervisor.updateService(this.#spec.services[n]);
    }
    this.#watchGlobs = plan.watch;
    for (const i of plan.rerun) this.#steps[i].hash = hashes[i];
    const failed = plan.rerun.length ? await this.#runSteps(new Set(plan.rerun)) : [];
    const tSteps = performance.now();
    const stepsRun = plan.rerun.filter((i) => this.#steps[i].state === "ran");
    // only a step that writes declared outputs hands the services new files to run on; a step
    // without outputs (a check, a chained script) re-running restarts nobody by itself
    const wroteOutputs = stepsRun.filter((i) => this.#spec.build.steps[i].outputs.length > 0);
    const stopping = this.#stopping;
    // a sandboxed environment whose root changed (a step's layer): every service restarts in it
    const rootChanged = failed.length === 0 && !stopping && plan.rerun.length > 0 &&
      await this.runtime.ready();
    const restart = planRestart(this.#planState(), plan, {
      failed,
      stopping,
      rootChanged,
      ran: wroteOutputs,
    });
    for (const line of restart.lines) this.#print(line);
    // warm standbys (reload = "warm") learn what changed: a stale one is not handed over to
    this.supervisor.noteChanges(changed, stepsRun.length, restart.set);
    const restarted = restart.services.length
      ? await this.supervisor.restart(restart.services)
      : [];
    const tRestart = performance.now();
    // recorded after the restart: nothing on the way to a restarted service waits for an fsync
    await this.#store.withLock("shared", () => this.#persistEnv(env, r.root));
    this.#saveCacheSoon();
    this.#captureSoon();
    const report: UpdateReport = {
      paths: paths.length,
      oldRoot: oldEnv,
      root: this.#envRoot,
      added: r.added,
      modified: r.modified,
      removed: r.removed,
      stepsRun,
      stepsFailed: failed,
      restarted,
      ms: Math.round(performance.now() - t0),
      timings: {
        hashMs: round1(tHash - t0),
        stepsMs: round1(tSteps - tHash),
        restartMs: round1(tRestart - tSteps),
      },
    };
    this.#updates++;
    this.#last = report;
    this.#o.onEvent?.({ event: "update", ...report });
    return report;
  }

  /** What the plan of a batch starts from: this loop's configuration, steps and services now. */
  #planState(): PlanState {
    const order = this.supervisor.order;
    return {
      spec: this.#spec,
      steps: this.#steps,
      watch: this.#watchGlobs,
      order,
      wanted: new Set(order.filter((n) => this.supervisor.wanted(n))),
      servicesInPlace: this.runtime.servicesInPlace,
      canReload: this.#o.onSpecChange !== undefined,
    };
  }

  /**
   * Saves the stat cache a second after the last update (and on stop): serializing it costs CPU
   * that a service being restarted needs more.
   */
  #saveCacheSoon(): void {
    if (this.#cacheTimer !== null) clearTimeout(this.#cacheTimer);
    if (this.#stopping) {
      this.#cacheTimer = null;
      this.#saveCache();
      return;
    }
    this.#cacheTimer = setTimeout(() => {
      this.#cacheTimer = null;
      this.#saveCache();
    }, 1000);
  }

  /** Writes the stat cache into the project's .hd/ (unless the project is gone). */
  #saveCache(): void {
    if (!this.#projectGone) this.#cache?.save(this.#cachePath, true);
  }

  /** The stat cache, loaded from the project on first use. */
  #statCache(): StatCache {
    return this.#cache ??= StatCache.load(this.#cachePath, this.#store);
  }

  /**
   * The project directory is gone (deleted or replaced): nothing is written into it from now on
   * (the stat cache would create `.hd/` again at its path). The caller stops the loop.
   */
  projectGone(): void {
    this.#projectGone = true;
  }

  /**
   * Records the outputs of the steps that ran (`builds/<hash>`) a little later: reading a big
   * `node_modules` takes a while, and services being (re)started should not wait for it.
   */
  #captureSoon(): void {
    if (this.runtime.unrecorded === 0) return;
    if (this.#captureTimer !== null) clearTimeout(this.#captureTimer);
    this.#captureTimer = setTimeout(() => {
      this.#captureTimer = null;
      this.#recordPending().catch((e) => this.#print(`cannot record step outputs: ${e.message}`));
    }, 1500);
  }

  /**
   * Records the outputs of the steps that ran (runtime.recordPending), one call after the other:
   * with steps side by side, a step about to be pushed must not find its outputs being recorded
   * by a call that started for another step and has not finished.
   */
  #recordPending(): Promise<void> {
    const next = this.#recording.then(() => this.runtime.recordPending());
    this.#recording = next.catch(() => {});
    return next;
  }

  /** The loop's status. */
  status(): LoopStatus {
    return {
      env: this.#spec.environment.name,
      dir: this.#spec.dir,
      root: this.#envRoot,
      files: this.#filesRoot,
      steps: this.#steps.map((s) => ({ ...s })),
      services: this.supervisor.status().map((x) =>
        this.#selection.inactive[x.name] && x.state === "stopped"
          ? { ...x, inactive: this.#selection.inactive[x.name] }
          : x
      ),
      updates: this.#updates,
      lastUpdate: this.#last,
      watching: this.#watcher !== null,
    };
  }

  /** Stops the watcher, the running steps (all at once), and the services (reverse dependency order). */
  async stop(opts: { final?: boolean } = {}): Promise<void> {
    this.#stopping = true;
    const proof = this.#proof;
    this.#proof = null;
    proof?.timer.cancel();
    // The session ends (not a reload): the proof for the next start (src/services/prespawn.ts),
    // the start's if nothing changed since (before the services stop, which may write), else one
    // of the project as it is now (after the services stopped and the stat cache was saved).
    const fresh = opts.final === true && this.#updates > 0;
    if (opts.final && !fresh && proof) await proof.save(true);
    // every running step at once (each its own process group, or container)
    await Promise.all([...this.#running].map((r) => r.stop(this.#spec.options.restartGraceMs)));
    const w = this.#watcher;
    this.#watcher = null;
    const closing = w?.close();
    await this.supervisor.close();
    await this.runtime.close?.().catch(() => {});
    await closing;
    if (this.#captureTimer !== null) (clearTimeout(this.#captureTimer), this.#captureTimer = null);
    await this.#recordPending().catch(() => {});
    if (this.#cacheTimer !== null) {
      clearTimeout(this.#cacheTimer);
      this.#cacheTimer = null;
      this.#saveCache();
    }
    if (fresh) await this.#saveFreshProof().catch(() => {});
  }

  /**
   * Compiles the project as it is now (hashing only, through the stat cache) and saves its proof,
   * as {@link #saveProofSoon} does for the start's: for a session whose files changed since. Not
   * when hd.toml was applied in place (the parse the binding recorded is no longer the spec's).
   */
  async #saveFreshProof(): Promise<void> {
    const bind = this.#o.bind;
    if (!this.#proofAllowed() || !bind || this.#spec !== this.#o.spec) return;
    // what `hd status` does when its proof fails: compile without writing, save the proof
    await gatherStatus(this.#store, this.#spec, undefined, { quick: "save", bind });
  }

  /** Whether a proof of this loop may be saved: on the host, tracking what `hd status` does. */
  #proofAllowed(): boolean {
    return this.#o.bind !== undefined && this.runtime.baseId === undefined &&
      !this.runtime.imageIds && this.#ownOutput.length === 0;
  }
}

function openLog(path: string): Deno.FsFile | null {
  try {
    return openPrivateAppend(path);
  } catch {
    return null;
  }
}

/** hd.toml of `spec` read again: the new configuration, or the message of its error. */
function readConfig(spec: EnvSpec): { spec: EnvSpec } | { error: string } {
  try {
    return { spec: loadSpec(spec.file) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

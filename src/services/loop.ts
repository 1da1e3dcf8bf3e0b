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
 * @example
 * ```ts
 * import { DevLoop } from "./loop.ts";
 * const loop = new DevLoop({ spec, store, print: (src, line) => console.log(src, line) });
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
import { compileEnv, envNode, statCachePath, stepHashes, trackedFilter } from "../env/compile.ts";
import { loadSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { HostRuntime } from "../runtime/host.ts";
import { SandboxRuntime } from "../runtime/sandbox.ts";
import type { LoopRuntime, RunningStep } from "../runtime/runtime.ts";
import { affected, GlobSet } from "../watch/pathmap.ts";
import { applyChanges, type UpdateResult } from "../watch/update.ts";
import { ProjectWatcher } from "../watch/watcher.ts";
import { portOpen } from "./readiness.ts";
import { type ServiceStatus, Supervisor } from "./supervisor.ts";

/** Where a printed line comes from: "hd", "build", or a service name. */
export type LineSource = string;

/** Options of a {@link DevLoop}. */
export interface DevLoopOptions {
  spec: EnvSpec;
  store: Store;
  /** Services to run (with their dependencies); default all. */
  only?: string[];
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
}

/** State of one build step after the last run. */
export interface StepState {
  index: number;
  run: string;
  hash: string;
  state: "cached" | "ran" | "failed" | "pending";
  ms?: number;
}

/** What `hd status` shows about a running loop. */
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

/** What one batch of changes did. */
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

/** One environment's loop: files → DAG → steps → services → watch. */
export class DevLoop {
  #o: DevLoopOptions;
  #spec: EnvSpec;
  #store: Store;
  #filter: PathFilter;
  #outputs: GlobSet;
  #cache: StatCache;
  #tree: Tree | null = null;
  #filesRoot = "";
  #envRoot = "";
  #baseId: string | null = null;
  #packageIds: string[] = [];
  #steps: StepState[] = [];
  #watchGlobs: Record<string, GlobSet>;
  #watcher: ProjectWatcher | null = null;
  #running: RunningStep | null = null;
  #stopping = false;
  #cacheTimer: ReturnType<typeof setTimeout> | null = null;
  #captureTimer: ReturnType<typeof setTimeout> | null = null;
  #updates = 0;
  #last: UpdateReport | null = null;
  /** The service supervisor. */
  readonly supervisor: Supervisor;
  /** Where steps and services run: the host, or the sandbox of the `base` image. */
  readonly runtime: LoopRuntime;

  constructor(opts: DevLoopOptions) {
    this.#o = opts;
    this.#spec = opts.spec;
    this.#store = opts.store;
    this.#filter = trackedFilter(opts.spec);
    this.#outputs = new GlobSet(opts.spec.build.steps.flatMap((s) => s.outputs));
    this.#cache = StatCache.empty(opts.store);
    this.#watchGlobs = Object.fromEntries(
      Object.values(opts.spec.services).map((s) => [s.name, new GlobSet(s.watch)]),
    );
    this.runtime = opts.spec.environment.base === null
      ? new HostRuntime(opts.spec, opts.store)
      : new SandboxRuntime(opts.spec, opts.store);
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
    if (opts.only?.length) {
      for (const n of opts.only) {
        if (!opts.spec.services[n]) {
          throw new HdError(
            `Cannot start service "${n}": no such service in ${opts.spec.file}`,
            `services: ${Object.keys(opts.spec.services).join(", ") || "(none)"}`,
            2,
          );
        }
      }
    }
  }

  get #cachePath(): string {
    return statCachePath(this.#spec);
  }

  /** The environment of services, steps and `hd exec`: the host's plus [environment].env. */
  baseEnv(): Record<string, string> {
    return { ...Deno.env.toObject(), ...this.#spec.environment.env };
  }

  /** Id of the Env node (the root hash). */
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
    const t0 = performance.now();
    if (this.#spec.environment.base !== null) {
      this.#print(`base ${this.#spec.environment.base}: preparing the image`);
    }
    await this.runtime.prepare();
    const c = await compileEnv(this.#store, this.#spec, { baseId: this.runtime.baseId });
    this.#tree = c.tree;
    this.#filesRoot = c.filesRoot;
    this.#envRoot = c.envId;
    this.#baseId = c.baseId;
    this.#packageIds = c.packages.map((p) => p.id);
    this.#cache = StatCache.load(this.#cachePath, this.#store);
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
    await this.runtime.ready();
    if (!this.#o.noWatch) {
      this.#watcher = new ProjectWatcher(this.#spec.dir, {
        debounceMs: this.#spec.options.debounceMs,
        filter: this.#filter,
        ignore: this.#outputs,
        onBatch: (paths) => this.update(paths).then(() => {}),
      });
      this.#watcher.start();
    }
    // a port something else already listens on would look ready at once
    for (const svc of Object.values(this.#spec.services)) {
      if (svc.port !== null && await portOpen(svc.port)) {
        this.#print(
          `warning: port ${svc.port} of ${svc.name} is already in use by another process; ` +
            `${svc.name} will look ready before it is (stop the other process, or change the port)`,
        );
      }
    }
    this.supervisor.start(this.#o.only?.length ? this.#o.only : undefined);
    this.#captureSoon();
  }

  /** Runs the steps in `which` that are not cached, in order; returns the indexes that failed. */
  async #runSteps(which: Set<number>): Promise<number[]> {
    const failed: number[] = [];
    let log: Deno.FsFile | null = null;
    for (const st of this.#steps) {
      if (!which.has(st.index) || this.#stopping) continue;
      const spec = this.#spec.build.steps[st.index];
      if (this.runtime.isCached(st.index, st.hash)) {
        st.state = "cached";
        this.#print(`step ${st.index + 1} cached (${st.hash.slice(0, 12)}): ${st.run}`);
        continue;
      }
      if (failed.length) {
        st.state = "pending";
        continue;
      }
      this.#print(`step ${st.index + 1} running (${st.hash.slice(0, 12)}): ${st.run}`);
      log ??= openLog(`${this.#spec.dir}/.hd/logs/build.log`);
      const write = (line: string) => {
        try {
          log?.writeSync(new TextEncoder().encode(line + "\n"));
        } catch { /* no log */ }
      };
      write(`[hd] step ${st.index + 1} (${st.hash}): ${st.run}`);
      this.#running = this.runtime.runStep(st.index, st.hash, spec, {
        onLine: (line) => (write(line), this.#o.print("build", line)),
      });
      const r = await this.#running.done;
      this.#running = null;
      st.ms = Math.round(r.ms);
      st.state = r.code === 0 ? "ran" : "failed";
      this.#print(
        r.code === 0
          ? `step ${st.index + 1} done in ${st.ms} ms`
          : `step ${st.index + 1} failed with exit code ${r.code} after ${st.ms} ms`,
      );
      this.#o.onEvent?.({ event: "step", index: st.index, hash: st.hash, code: r.code, ms: st.ms });
      if (r.code !== 0) failed.push(st.index);
    }
    log?.close();
    return failed;
  }

  /** Applies one batch of changed paths (relative to the project). */
  async update(paths: string[]): Promise<UpdateReport | null> {
    if (!this.#tree || this.#stopping) return null;
    const t0 = performance.now();
    const tree = this.#tree;
    // Keeps the new tree (and what the steps store) from a gc until persistEnv sets the refs.
    using _lease = this.#store.lease("hd up: update");
    const r: UpdateResult = await this.#store.withLock(
      "shared",
      () =>
        applyChanges(this.#store, tree, this.#spec.dir, paths, {
          filter: this.#filter,
          ignore: this.#outputs,
          cache: this.#cache,
        }),
    );
    if (r.root === r.oldRoot) return null;
    this.#filesRoot = r.root;
    const hashes = await this.#store.withLock(
      "shared",
      () =>
        stepHashes(this.#spec, tree, { store: this.#store, baseId: this.runtime.baseId })
          .map((s) => s.id),
    );
    const oldEnv = this.#envRoot;
    const env = this.#envNode(hashes);
    this.#envRoot = nodeId(env);
    const tHash = performance.now();
    const changed = [...r.added, ...r.modified, ...r.removed];
    const what = [
      r.modified.length ? `modified ${list(r.modified)}` : "",
      r.added.length ? `added ${list(r.added)}` : "",
      r.removed.length ? `removed ${list(r.removed)}` : "",
    ].filter(Boolean).join("; ");
    this.#print(`root ${short(oldEnv)} \u2192 ${short(this.#envRoot)}  ${what}`);
    const specRel = this.#spec.file.startsWith(this.#spec.dir + "/")
      ? this.#spec.file.slice(this.#spec.dir.length + 1)
      : null;
    const respec: string[] = [];
    if (specRel !== null && changed.includes(specRel)) {
      let fresh: EnvSpec | null = null;
      try {
        fresh = loadSpec(this.#spec.file);
      } catch (e) {
        this.#print(`${specRel} has an error: ${(e as Error).message} — keeping the running one`);
      }
      const inPlace = fresh ? this.#applyInPlace(fresh) : null;
      if (inPlace !== null) {
        respec.push(...inPlace);
        this.#print(
          `${specRel} changed: ${
            inPlace.length ? `new configuration for ${inPlace.join(", ")}` : "nothing to apply"
          }`,
        );
      } else if (fresh && this.#o.onSpecChange) {
        this.#print(`${specRel} changed: reloading the environment`);
        this.#o.onSpecChange();
        return null;
      } else if (fresh) {
        this.#print(`${specRel} changed: restart \`hd up\` to apply it`);
      }
    }
    const rerun = new Set<number>();
    for (const st of this.#steps) {
      // a changed hash re-runs a step; so does any change after it failed (or was skipped)
      if (st.hash !== hashes[st.index] || st.state === "failed" || st.state === "pending") {
        st.hash = hashes[st.index];
        rerun.add(st.index);
      }
    }
    const failed = rerun.size ? await this.#runSteps(rerun) : [];
    const tSteps = performance.now();
    const stepsRun = [...rerun].filter((i) => this.#steps[i].state === "ran");
    let restarted: string[] = [];
    if (failed.length) {
      this.#print("not restarting services: a build step failed (fix it and save again)");
    } else if (!this.#stopping) {
      const hit = [...affected(this.#watchGlobs, changed).keys()].filter((n) =>
        this.supervisor.wanted(n)
      );
      for (const n of respec) if (this.supervisor.wanted(n) && !hit.includes(n)) hit.push(n);
      // a sandboxed environment whose root changed (a step's layer): every service restarts in it
      if (rerun.size && await this.runtime.ready()) {
        for (const n of this.supervisor.order) {
          if (this.supervisor.wanted(n) && !hit.includes(n)) hit.push(n);
        }
        this.#print("the environment's root changed: every service restarts in the new one");
      }
      if (hit.length) {
        const why = hit.flatMap((n) => {
          const p = affected({ [n]: this.#watchGlobs[n] }, changed).get(n);
          return p ? [`${n} watches ${p[0]}`] : respec.includes(n) ? [`${n} changed`] : [];
        });
        this.#print(
          `restarting ${this.supervisor.restartSet(hit).join(", ")}` +
            (why.length ? ` (${why.join("; ")})` : ""),
        );
        restarted = await this.supervisor.restart(hit);
      } else if (rerun.size === 0) {
        this.#print("no service watches it: nothing restarts");
      }
    }
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

  /**
   * Takes a new hd.toml without a reload when only services' own settings changed (command,
   * env, watch, port, restart policy, workdir — not their names or dependencies) on the host.
   * Returns the services whose configuration changed, or null when a full reload is needed.
   */
  #applyInPlace(fresh: EnvSpec): string[] | null {
    if (!this.runtime.servicesInPlace) return null;
    const old = this.#spec;
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
    const changed = names.filter((n) => !same(old.services[n], fresh.services[n]));
    this.#spec = fresh;
    for (const n of changed) {
      this.supervisor.updateService(fresh.services[n]);
      this.#watchGlobs[n] = new GlobSet(fresh.services[n].watch);
    }
    return changed;
  }

  /**
   * Saves the stat cache a second after the last update (and on stop): serializing it costs CPU
   * that a service being restarted needs more.
   */
  #saveCacheSoon(): void {
    if (this.#cacheTimer !== null) clearTimeout(this.#cacheTimer);
    if (this.#stopping) {
      this.#cacheTimer = null;
      this.#cache.save(this.#cachePath, true);
      return;
    }
    this.#cacheTimer = setTimeout(() => {
      this.#cacheTimer = null;
      this.#cache.save(this.#cachePath, true);
    }, 1000);
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
      this.runtime.recordPending().catch((e) =>
        this.#print(`cannot record step outputs: ${e.message}`)
      );
    }, 1500);
  }

  /** The loop's status. */
  status(): LoopStatus {
    return {
      env: this.#spec.environment.name,
      dir: this.#spec.dir,
      root: this.#envRoot,
      files: this.#filesRoot,
      steps: this.#steps.map((s) => ({ ...s })),
      services: this.supervisor.status(),
      updates: this.#updates,
      lastUpdate: this.#last,
      watching: this.#watcher !== null,
    };
  }

  /** Stops the watcher, a running step, and the services (reverse dependency order). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running?.stop(this.#spec.options.restartGraceMs);
    const w = this.#watcher;
    this.#watcher = null;
    const closing = w?.close();
    await this.supervisor.close();
    await closing;
    if (this.#captureTimer !== null) (clearTimeout(this.#captureTimer), this.#captureTimer = null);
    await this.runtime.recordPending().catch(() => {});
    if (this.#cacheTimer !== null) {
      clearTimeout(this.#cacheTimer);
      this.#cacheTimer = null;
      this.#cache.save(this.#cachePath, true);
    }
  }
}

function openLog(path: string): Deno.FsFile | null {
  try {
    return openPrivateAppend(path);
  } catch {
    return null;
  }
}

/** JSON of `v` without source positions (`at`), for comparing two parses of hd.toml. */
function canon(v: unknown): string {
  return JSON.stringify(v, (k, x) => (k === "at" ? undefined : x));
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function short(id: string): string {
  return id.slice(0, 12);
}

function list(paths: string[]): string {
  return paths.length <= 3
    ? paths.join(", ")
    : `${paths.slice(0, 3).join(", ")} and ${paths.length - 3} more`;
}

/**
 * One `hd up` of a project, from taking its lock to removing its state: the process lifecycle
 * around the dev loop. It holds `.hd/up.lock` (one `hd up` per project), keeps `.hd/up.json` (who
 * runs, and the process groups of its services) current, answers the control socket
 * `.hd/control.sock` (`hd status`, `hd restart`, `hd down`), stops on SIGINT/SIGTERM (a second
 * Ctrl-C while stopping kills the services at once), and reloads: when hd.toml changes in a way
 * the loop cannot apply in place, the loop is stopped and a new one started from the new file; a
 * failed reload waits for the next edit of the project. It exists so that the CLI (src/cli/up.ts)
 * is left with flags, printing and exit codes, and so that this lifecycle can be driven — and
 * tested — without a terminal: every line and event goes to callbacks.
 *
 * @example
 * ```ts
 * import { UpSession } from "./session.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const session = await UpSession.open({
 *   spec,
 *   store,
 *   detached: false,
 *   print: (src, line) => console.log(`${src} | ${line}`),
 *   onEvent: (ev) => console.log(JSON.stringify(ev)),
 * });
 * await session.start(); // built, services starting; Ctrl-C or `hd down` ends it
 * await session.done();
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { loadSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { trackedFilter } from "../env/compile.ts";
import { ProjectWatcher } from "../watch/watcher.ts";
import { signalGroup } from "../sandbox/process.ts";
import {
  acquireUpLock,
  type ControlRequest,
  controlSocketPath,
  readUpState,
  removeUpState,
  selfState,
  serveControl,
  type UpState,
  writeUpState,
} from "./control.ts";
import { DevLoop, type LineSource, type LoopStatus } from "./loop.ts";
import { reloadRefusal } from "./plan.ts";
import { type ReconcileResult, sameConfig } from "./reconcile.ts";
import { cleanupIfStale, formatCleanup } from "./report.ts";
import { dirIdentity, rootGoneReason } from "./root_gone.ts";
import { after, type Timer } from "../sys/timer.ts";
import { takeEarlyLock } from "./prespawn.ts";
import type { SpecBinding } from "../env/quick_status.ts";

/**
 * The error of a second `hd up` of a project: another holds `.hd/up.lock` (`byLock`), or a live
 * state file names another `hd up`. `holder` is its pid (for the message only).
 *
 * @example
 * ```ts
 * import { AlreadyRunning } from "./session.ts";
 * const e = new AlreadyRunning("web", 4242);
 * console.log(e.message); // Cannot start web: `hd up` is already running (pid 4242)
 * ```
 */
export class AlreadyRunning extends HdError {
  /** The pid of the `hd up` that runs, or null when unknown. */
  readonly holder: number | null;
  /** True when the lock said so (rather than a live state file). */
  readonly byLock: boolean;
  /** The error for environment `env`; `exitCode` 1 unless given. */
  constructor(env: string, holder: number | null, exitCode = 1, byLock = false) {
    super(
      `Cannot start ${env}: \`hd up\` is already running (pid ${holder ?? "unknown"})`,
      "see `hd status`; `hd restart SERVICE` restarts one, `hd down` stops everything",
      exitCode,
    );
    this.holder = holder;
    this.byLock = byLock;
  }
}

/**
 * Where a session is: building and starting, running, failed (a start or reload failed; the
 * session waits for an edit), or stopped.
 *
 * @example
 * ```ts
 * import type { UpPhase, UpSession } from "./session.ts";
 * declare const session: UpSession;
 * const p: UpPhase = session.phase;
 * ```
 */
export type UpPhase = "starting" | "running" | "failed" | "stopped";

/**
 * Options of {@link UpSession.open}.
 *
 * @example
 * ```ts
 * import type { UpSessionOptions } from "./session.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const opts: UpSessionOptions = { spec, store, detached: true, print: () => {}, signals: false };
 * ```
 */
export interface UpSessionOptions {
  /** The project's configuration as loaded; a reload reads `spec.file` again. */
  spec: EnvSpec;
  store: Store;
  /** Services to run (with their dependencies); default all. */
  only?: string[];
  /** Active profiles (`hd up --profile`, `HD_PROFILES`; src/services/profiles.ts). */
  profiles?: string[];
  /** This is a detached supervisor (recorded in the state; a failed start lingers 300 ms). */
  detached: boolean;
  /** Every line: hd's own ("hd"), build output ("build"), each service's output. */
  print: (source: LineSource, line: string) => void;
  /** Structured events: the loop's, then `started`, `reload`, `stopping`, `stopped`. */
  onEvent?: (ev: Record<string, unknown>) => void;
  /** The configuration in use: at start, and at each reload before its services start. */
  onSpec?: (spec: EnvSpec) => void;
  /** What opening found and cleaned up (a stale state), one line each. */
  onNote?: (line: string) => void;
  /** Stop on SIGINT/SIGTERM, kill on a second SIGINT (default true; false in tests). */
  signals?: boolean;
  /** The remote build cache (`--cache`, `--push-cache`); see DevLoopOptions.remote. */
  remote?: { flag?: string; push?: boolean };
  /** How `spec` was parsed, for the proof of its first start; see DevLoopOptions.bind. */
  bind?: SpecBinding;
}

/** One `hd up` of a project (see the module doc). */
export class UpSession {
  #o: UpSessionOptions;
  #lock: Deno.FsFile;
  #spec: EnvSpec;
  /** Set by {@link open} (before anything can use it) and by each reload. */
  #loop!: DevLoop;
  /** Reloads finished (applied or not), for `hd up -d` reconciling. */
  #reloadsDone = 0;
  #phase: UpPhase = "starting";
  #state: UpState;
  /** The state file as last written: rewritten only when it changes. */
  #saved = "";
  #stateTimer: Timer | null = null;
  #refresh: ReturnType<typeof setInterval> | null = null;
  #server: { close(): void } | null = null;
  #signals: [Deno.Signal, () => void][] = [];
  /** What the main loop waits for: a stop (signal, `hd down`) or a reload (hd.toml changed). */
  #stopReason: string | null = null;
  #reloadWanted = false;
  #poke: () => void = () => {};
  /** After a failed reload, any edit of the project (hd.toml or a step's input) retries it. */
  #retryWatch: ProjectWatcher | null = null;
  #done: Promise<void> = Promise.resolve();
  /** The project directory at the start: deleted or replaced, the session stops. */
  #root: ReturnType<typeof dirIdentity> = "unknown";
  /** Set once the project directory was found gone: nothing more is written into it. */
  #rootGone = false;
  /** Bumped at each change of the phase or of a service (`status` answers carry it). */
  #version = 0;
  /** `status` requests waiting for the next change ({@link #bump}). */
  #waiters = new Set<() => void>();

  /**
   * Takes the project's `.hd/up.lock` (held until the session ends), cleans up after a
   * supervisor that is gone, and prepares the loop; nothing is built or started yet. Throws
   * {@link AlreadyRunning} when another `hd up` runs, and the loop's errors (an unknown service
   * in `only`).
   *
   * @example
   * ```ts
   * import { AlreadyRunning, UpSession, type UpSessionOptions } from "./session.ts";
   * declare const opts: UpSessionOptions;
   * try {
   *   await UpSession.open(opts);
   * } catch (e) {
   *   if (e instanceof AlreadyRunning) console.log(`running as pid ${e.holder}`);
   * }
   * ```
   */
  static async open(opts: UpSessionOptions): Promise<UpSession> {
    const dir = opts.spec.dir;
    const env = opts.spec.environment.name;
    // the lock the services started before the session took (src/services/prespawn.ts)
    const early = takeEarlyLock(dir);
    const lock = early ? { file: early } : acquireUpLock(dir);
    if (!("file" in lock)) throw new AlreadyRunning(env, lock.holder, 1, true);
    try {
      const stale = cleanupIfStale(dir);
      if (stale) opts.onNote?.(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(dir);
      if (cur?.alive) throw new AlreadyRunning(env, cur.state.pid); // an hd without the lock
      const session = new UpSession(opts, lock.file);
      session.#loop = await session.#makeLoop(opts.spec);
      return session;
    } catch (e) {
      lock.file.close();
      throw e;
    }
  }

  private constructor(opts: UpSessionOptions, lock: Deno.FsFile) {
    this.#o = opts;
    this.#lock = lock;
    this.#spec = opts.spec;
    this.#state = selfState(opts.spec.dir, opts.spec.environment.name, opts.detached);
  }

  /** Where the session is. */
  get phase(): UpPhase {
    return this.#phase;
  }

  /** The configuration in use (the new one once a reload took it). */
  get spec(): EnvSpec {
    return this.#spec;
  }

  /**
   * What the control socket answers to `status`: the phase, the loop's status, and a version
   * that changes whenever either may have.
   */
  status(): { phase: UpPhase; version: number } & LoopStatus {
    return { phase: this.#phase, version: this.#version, ...this.#loop.status() };
  }

  /** Marks a change: wakes the `status` requests waiting for one. */
  #bump(): void {
    this.#version++;
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** The status once its version is no longer `after` (or after `waitMs`, at most 1 s). */
  async #statusAfter(after: number, waitMs: number): Promise<unknown> {
    if (after === this.#version && this.#phase !== "stopped") {
      let wake = () => {};
      const timer = setTimeout(() => wake(), Math.max(0, Math.min(waitMs, 1000)));
      await new Promise<void>((r) => {
        wake = r;
        this.#waiters.add(r);
      });
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
    return this.status();
  }

  /**
   * Writes the state file, opens the control socket, listens for signals, builds the environment
   * and starts its services. Resolves once they are starting; the session then runs until
   * {@link stop} ({@link done} resolves after). When the build fails, everything is released
   * (lock, state, socket) and the error is thrown.
   */
  async start(): Promise<void> {
    this.#o.onSpec?.(this.#spec);
    // the state records each service's group with its leader's executable, which may change just
    // after a spawn (setsid, sh, then the command): it is compared again every second
    // the project directory is looked at as often: deleted or replaced, the session stops
    this.#root = dirIdentity(this.#spec.dir);
    this.#startRefresh();
    // this process holds .hd/up.lock: whatever state file is there is not a live one's
    this.#saveState();
    this.#server = serveControl(controlSocketPath(this.#spec.dir), (req) => this.#handle(req));
    if (this.#o.signals !== false) {
      const on = (sig: Deno.Signal): [Deno.Signal, () => void] => [sig, () => this.stop(sig)];
      this.#signals = [on("SIGINT"), on("SIGTERM")];
      for (const [s, f] of this.#signals) Deno.addSignalListener(s, f);
    }
    try {
      await this.#loop.start();
      this.#phase = "running";
      this.#bump();
      this.#emit({ event: "started", root: this.#loop.root });
    } catch (e) {
      this.#phase = "failed";
      this.#bump();
      if (this.#o.detached) await new Promise((r) => setTimeout(r, 300)); // let `hd up -d` see it
      await this.#abort();
      throw e;
    }
    this.#done = this.#run();
  }

  /** Resolves once the session has stopped its services and released the project. */
  done(): Promise<void> {
    return this.#done;
  }

  /**
   * Asks for a reload: stop the services, read hd.toml again, start anew (what an edit of
   * hd.toml that cannot apply in place does). Returns at once.
   */
  reload(): void {
    this.#reloadWanted = true;
    this.#poke();
  }

  /**
   * Asks the session to stop (`reason` is printed: "SIGINT", "hd down"); a build step running is
   * ended at once. Returns at once; {@link done} resolves once stopped.
   */
  stop(reason: string): void {
    this.#stopReason ??= reason;
    // still building: end the running step now rather than after it
    if (this.#phase === "starting") this.#loop.stop().catch(() => {});
    this.#poke();
  }

  /** Why the session was asked to stop ("SIGINT", "hd down", …), or null while it was not. */
  get stopReason(): string | null {
    return this.#stopReason;
  }

  /** Kills every service's process group now (a second Ctrl-C while stopping). */
  kill(): void {
    for (const g of this.#loop.supervisor.groups()) signalGroup(g.pgid, "SIGKILL");
  }

  #print(line: string): void {
    this.#o.print("hd", line);
  }

  #emit(ev: Record<string, unknown>): void {
    this.#o.onEvent?.(ev);
  }

  /** Resolves at the next stop or reload request (at once when one is pending). */
  #next(): Promise<void> {
    return this.#stopReason !== null || this.#reloadWanted
      ? Promise.resolve()
      : new Promise<void>((r) => this.#poke = () => (this.#poke = () => {}, r()));
  }

  #makeLoop(spec: EnvSpec): Promise<DevLoop> {
    return DevLoop.open({
      spec,
      store: this.#o.store,
      only: this.#o.only,
      profiles: this.#o.profiles,
      print: this.#o.print,
      onEvent: this.#o.onEvent,
      // (a reload's spec was parsed without recording what it read)
      bind: spec === this.#o.spec ? this.#o.bind : undefined,
      onChange: () => {
        this.#bump();
        // the next turn (after(), not setTimeout: the first change comes before the first
        // services start, see #startRefresh)
        this.#stateTimer ??= after(0, () => {
          this.#stateTimer = null;
          this.#saveState();
        });
      },
      onSpecChange: () => this.reload(),
      remote: this.#o.remote,
    });
  }

  /**
   * Stops the session when its project directory is gone ({@link rootGoneReason}): its services
   * are stopped as by `hd down`, and a detached supervisor exits.
   */
  #checkRoot(): void {
    if (this.#rootGone || this.#phase === "stopped") return;
    const why = rootGoneReason(this.#spec.dir, this.#root, dirIdentity(this.#spec.dir));
    if (why === null) return;
    this.#rootGone = true;
    this.#loop.projectGone();
    this.#print(`${why}: stopping its services and exiting`);
    this.#emit({ event: "root-gone", reason: why });
    this.stop(why);
  }

  #saveState(): void {
    if (this.#phase === "stopped") return;
    this.#state.groups = this.#loop.supervisor.groups();
    const text = JSON.stringify(this.#state);
    if (text === this.#saved) return;
    // deleted under us: writing the state would create the directory again
    this.#checkRoot();
    if (this.#rootGone) return;
    this.#saved = text;
    try {
      writeUpState(this.#spec.dir, this.#state);
    } catch (e) {
      this.#print(`cannot write .hd/up.json: ${(e as Error).message}`);
    }
  }

  #handle(req: ControlRequest): Promise<unknown> {
    switch (req.op) {
      case "ping":
        return Promise.resolve({ ok: true });
      case "status":
        return typeof req.after === "number"
          ? this.#statusAfter(req.after, typeof req.waitMs === "number" ? req.waitMs : 250)
          : Promise.resolve(this.status());
      case "restart": {
        for (const n of req.services) {
          if (!this.#spec.services[n]) return Promise.resolve({ error: `no service "${n}"` });
        }
        return this.#loop.supervisor.restart(req.services).then((restarted) => ({ restarted }));
      }
      case "down":
        this.stop("hd down");
        return Promise.resolve({ ok: true });
      case "reconcile":
      case "start":
      case "stop": {
        const names = Array.isArray(req.services) ? req.services : [];
        for (const n of names) {
          if (typeof n !== "string" || !Object.hasOwn(this.#loop.spec.services, n)) {
            return Promise.resolve({ error: `no service "${n}"` });
          }
        }
        if (req.op === "reconcile") return this.#reconcile(names);
        const sup = this.#loop.supervisor;
        if (req.op === "stop") return sup.stop(names).then(() => ({ stopped: names }));
        sup.start(names);
        return Promise.resolve({ started: names });
      }
      default:
        return Promise.resolve({ error: "unknown op" });
    }
  }

  /**
   * `hd up -d` while up: applies the hd.toml on disk if it differs from the configuration in use
   * — the watcher applies an edit within its debounce, so it gets that time first; otherwise a
   * reload — then starts the named services that are not running.
   */
  async #reconcile(names: string[]): Promise<ReconcileResult | { error: string }> {
    let fresh: EnvSpec;
    try {
      fresh = loadSpec(this.#spec.file);
    } catch (e) {
      return { error: (e as Error).message };
    }
    const upToDate = sameConfig(fresh, this.#loop.spec);
    let applied: ReconcileResult["applied"] = null;
    if (!upToDate) {
      const sleep = () => new Promise((r) => setTimeout(r, 50));
      const before = this.#reloadsDone;
      const busy = () => this.#reloadWanted || this.#reloadsDone !== before;
      // the watcher applies an edit within its debounce (in place, or by asking for a reload)
      const end = Date.now() + 4 * this.#loop.spec.options.debounceMs + 1000;
      while (Date.now() < end && !sameConfig(fresh, this.#loop.spec) && !busy()) await sleep();
      applied = "watcher";
      if (!sameConfig(fresh, this.#loop.spec) && !busy()) {
        const refused = reloadRefusal(this.#spec, fresh);
        if (refused !== null) return { error: refused };
        applied = "reload";
        this.reload();
      }
      // a reload replaces the loop: answer once it is done (the new loop runs, or it failed)
      const limit = Date.now() + 600_000;
      while (Date.now() < limit && this.#stopReason === null) {
        const settled = this.#phase !== "starting" && !this.#reloadWanted;
        if (settled && (sameConfig(fresh, this.#loop.spec) || this.#reloadsDone !== before)) break;
        await sleep();
      }
      if (!sameConfig(fresh, this.#loop.spec)) {
        return { error: "the new hd.toml could not be applied (see `hd logs hd`)" };
      }
    }
    const sup = this.#loop.supervisor;
    const started = names.filter((n) => !sup.wanted(n));
    if (names.length) sup.start(names);
    return { upToDate, applied, started };
  }

  /** From started to stopped: reloads on request, then the stop. */
  async #run(): Promise<void> {
    try {
      while (true) {
        await this.#next();
        if (this.#stopReason !== null) break;
        this.#reloadWanted = false;
        await this.#reloadNow();
      }
      await this.#closeRetry();
      const order = [...this.#loop.supervisor.order].reverse();
      this.#print(`stopping (${this.#stopReason}): ${order.join(", ")}`);
      this.#emit({ event: "stopping", reason: this.#stopReason });
      // a second Ctrl-C during the stop kills at once
      const force = () => this.kill();
      this.#removeSignals();
      if (this.#o.signals !== false) Deno.addSignalListener("SIGINT", force);
      try {
        await this.#loop.stop({ final: true });
      } finally {
        if (this.#o.signals !== false) Deno.removeSignalListener("SIGINT", force);
      }
      this.#print("stopped");
      this.#emit({ event: "stopped" });
    } catch (e) {
      await this.#abort();
      throw e;
    } finally {
      this.#release();
    }
  }

  /** One reload (counted in {@link #reloadsDone}, whatever its outcome). */
  async #reloadNow(): Promise<void> {
    try {
      await this.#reloadOnce();
    } finally {
      this.#reloadsDone++;
    }
  }

  /** One reload: read hd.toml again; if it is usable, stop this loop and start a new one. */
  async #reloadOnce(): Promise<void> {
    let fresh: EnvSpec;
    try {
      fresh = loadSpec(this.#spec.file);
      const refused = reloadRefusal(this.#spec, fresh);
      if (refused !== null) throw new Error(refused);
    } catch (e) {
      this.#print(`cannot reload: ${(e as Error).message} — still running the previous one`);
      this.#emit({ event: "reload", ok: false, error: (e as Error).message });
      return;
    }
    this.#print("reloading: stopping the services of the previous configuration");
    await this.#closeRetry();
    await this.#loop.stop();
    this.#spec = fresh;
    this.#o.onSpec?.(fresh);
    this.#phase = "starting";
    this.#bump();
    try {
      this.#loop = await this.#makeLoop(fresh);
      await this.#loop.start();
      this.#phase = "running";
      this.#bump();
      this.#emit({ event: "reload", ok: true, root: this.#loop.root });
    } catch (e) {
      this.#phase = "failed";
      this.#bump();
      const hint = e instanceof HdError && e.hint ? ` (${e.hint})` : "";
      this.#print(`reload failed: ${(e as Error).message}${hint}; waiting for a change`);
      this.#emit({ event: "reload", ok: false, error: (e as Error).message });
      this.#retryWatch = new ProjectWatcher(fresh.dir, {
        debounceMs: fresh.options.debounceMs,
        filter: trackedFilter(fresh),
        onBatch: () => this.reload(),
      });
      this.#retryWatch.start();
    }
  }

  async #closeRetry(): Promise<void> {
    await this.#retryWatch?.close();
    this.#retryWatch = null;
  }

  /** After an error: stop what runs, then release the project. */
  async #abort(): Promise<void> {
    await this.#closeRetry().catch(() => {});
    await this.#loop.stop().catch(() => {});
    this.#release();
  }

  #removeSignals(): void {
    for (const [s, f] of this.#signals) {
      try {
        Deno.removeSignalListener(s, f);
      } catch { /* removed */ }
    }
    this.#signals = [];
  }

  /**
   * Every second: the project directory's check and the state file. The first tick comes from
   * src/sys/timer.ts's `after`, not setInterval: the first Node timer of a process costs ~7 ms of
   * the main thread, which here would delay the first services' start; by the first tick the
   * services' readiness polls have paid it, while the services started.
   */
  #startRefresh(): void {
    const tick = () => (this.#checkRoot(), this.#saveState());
    after(1000, () => {
      if (this.#phase === "stopped" || this.#refresh !== null) return;
      tick();
      this.#refresh = setInterval(tick, 1000);
    });
  }

  /** Stops listening, removes this session's state file and socket, and drops the lock. */
  #release(): void {
    if (this.#phase === "stopped") return;
    this.#removeSignals();
    this.#phase = "stopped";
    this.#bump();
    if (this.#refresh !== null) clearInterval(this.#refresh);
    this.#stateTimer?.cancel();
    this.#server?.close();
    const dir = this.#spec.dir;
    const cur = readUpState(dir);
    if (cur?.state?.pid === Deno.pid || cur?.invalid !== undefined) removeUpState(dir);
    this.#lock.close();
  }
}

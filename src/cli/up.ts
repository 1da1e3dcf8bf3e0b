/**
 * `hd up [-d] [SERVICE…]`: build the environment (ingest, hash, uncached build steps), start its
 * services in dependency order, and watch the project: each edit re-ingests only the changed
 * files, re-runs the steps whose hash changed and restarts the services that watch the change.
 * In the foreground every service's output is multiplexed with a coloured name prefix; Ctrl-C
 * stops the services in reverse order. With `-d` a detached supervisor does the same, logs to
 * `.hd/logs/`, and answers the control socket `.hd/control.sock` (`hd status`, `hd restart`,
 * `hd logs`, `hd down`).
 *
 * The lifecycle (lock, state file, control socket, signals, reloads) is the session of
 * src/services/session.ts; this file is the command: its flags, how the session's lines and events
 * are printed (a coloured name prefix, or one JSON object per line with `--json`), starting the
 * detached supervisor and waiting for it, and exit codes.
 *
 * @example
 * ```sh
 * hd up            # foreground, Ctrl-C to stop
 * hd up -d web     # detached, only web and what it depends on
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { specFilePath } from "../config/find.ts";
import type { SpecBinding } from "../env/quick_status.ts";
import { loadBoundSpec } from "../env/bound_spec.ts";
import type { EnvSpec } from "../config/types.ts";
import { openPrivateAppend, privateDir } from "../sys/fs.ts";
import { readUpState, upLockHolder } from "../services/control.ts";
import {
  cleanupIfStale,
  formatCleanup,
  formatServices,
  gatherServices,
  servicesSettled,
  type UpStatus,
  type WaitVerdict,
  waitVerdict,
} from "../services/report.ts";
import { callControl, controlSocketPath } from "../services/control.ts";
import { parseDuration } from "../config/duration.ts";
import { parseLogLine } from "../services/logs.ts";
import type { UpSession } from "../services/session.ts";
import type { LoopStatus } from "../services/loop.ts";
import { profilesFrom, replicaTargets, selectServices } from "../services/profiles.ts";
import type { Command, Context } from "./command.ts";
import { trace, tracing } from "../sys/trace.ts";
import { lazyImport } from "../sys/lazy.ts";
import {
  type EarlySupervisor,
  entryArgs,
  spawnSpare,
  spawnSupervisor,
  supervisorArgs,
  type SupervisorProcess,
  takeEarlySupervisor,
} from "./up_early.ts";

/**
 * Exit code of `hd up` when another `hd up` of the project holds `.hd/up.lock`: the detached
 * supervisor exits with it, and `hd up -d` turns it into the "already running" message.
 *
 * @example
 * ```ts
 * import { EXIT_ALREADY_RUNNING } from "./up.ts";
 * declare const status: Deno.CommandStatus;
 * if (status.code === EXIT_ALREADY_RUNNING) console.log("another hd up won");
 * ```
 */
export const EXIT_ALREADY_RUNNING = 3;

/** How long `hd up -d` waits for the services to be ready once the build is done. */
const READY_WAIT_MS = 30_000;
const COLORS = [36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94];
const enc = new TextEncoder();

/** Writes to stdout; a closed stdout (`hd up | head`) must not bring the supervisor down. */
function out(text: string): void {
  try {
    Deno.stdout.writeSync(enc.encode(text));
  } catch { /* nobody reads: the logs in .hd/logs/ still have it */ }
}

/** The active profiles: `--profile` (repeatable) and `HD_PROFILES` (a comma list). */
function activeProfiles(ctx: Context): string[] {
  const flags = (ctx.values.profile as string[] | undefined) ?? [];
  return profilesFrom(flags, Deno.env.get("HD_PROFILES"));
}

/** Command line that starts the detached supervisor for the same project. */
function supervisorCommand(ctx: Context): string[] {
  const args = supervisorArgs({
    file: typeof ctx.values.file === "string" ? ctx.values.file : undefined,
    profiles: (ctx.values.profile as string[] | undefined) ?? [],
    cache: typeof ctx.values.cache === "string" ? ctx.values.cache : undefined,
    pushCache: !!ctx.values["push-cache"],
    positionals: ctx.positionals,
  });
  return [Deno.execPath(), ...entryArgs(), ...args];
}

/** Follows a growing file from its current end: each call returns the complete new lines. */
function tailer(path: string, from?: number): () => string[] {
  let off = from ?? 0;
  if (from === undefined) {
    try {
      off = Deno.statSync(path).size;
    } catch { /* not yet */ }
  }
  let rest = "";
  return () => {
    let data: Uint8Array;
    try {
      data = Deno.readFileSync(path);
    } catch {
      return [];
    }
    if (data.length <= off) return [];
    const text = rest + new TextDecoder().decode(data.subarray(off));
    off = data.length;
    const lines = text.split("\n");
    rest = lines.pop() ?? "";
    return lines;
  };
}

/** `--wait-timeout` in ms (default 60 s), or a usage error. */
function waitTimeout(ctx: Context): number {
  const v = ctx.values["wait-timeout"];
  if (v === undefined) return 60_000;
  const ms = typeof v === "string" ? parseDuration(v) : null;
  if (ms === null || ms > 3_600_000) {
    throw new HdError(
      `Cannot parse --wait-timeout: "${v}" is not a duration of at most 1h`,
      "e.g. --wait-timeout 90s or --wait-timeout 2m",
      2,
    );
  }
  return ms;
}

/** The last `n` lines of service `name`'s log, or none. */
function lastLogLines(dir: string, name: string, n = 12): string[] {
  try {
    const lines = Deno.readTextFileSync(`${dir}/.hd/logs/${name}.log`).split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return lines.slice(-n).map((l) => parseLogLine(l).line);
  } catch {
    return [];
  }
}

/** Fails `hd up -d --wait`: names each failed (or late) service with its last log lines. */
function waitFailure(ctx: Context, dir: string, env: string, v: WaitVerdict, ms: number): never {
  const bad = v.failed.length ? v.failed : v.pending.map((p) => ({
    name: p.name,
    why: `not healthy after ${ms / 1000} s (${p.state})`,
  }));
  for (const b of bad) {
    const tail = lastLogLines(dir, b.name);
    ctx.out.note(`${b.name}: ${b.why}`);
    for (const l of tail) ctx.out.note(`  ${b.name} | ${l}`);
  }
  throw new HdError(
    `Cannot bring ${env} up: ${bad.map((b) => `${b.name} ${b.why}`).join("; ")}`,
    `its last log lines are above (\`hd logs ${bad[0].name}\`); \`hd status\` shows the services`,
  );
}

/**
 * Polls the running supervisor until the services are up ({@link waitVerdict}), one failed, or
 * `ms` passed; the last status and verdict.
 */
async function waitServices(dir: string, ms: number): Promise<[UpStatus, WaitVerdict]> {
  const end = performance.now() + ms;
  while (true) {
    const st = await gatherServices(dir);
    if (!st.running) return [st, { ok: false, failed: [], pending: [] }];
    const v = waitVerdict(st.services);
    if (st.phase === "running" && (v.ok || v.failed.length)) return [st, v];
    if (performance.now() > end) return [st, v];
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The services `hd up -d [--profile P] [SERVICE…]` asks a running environment to start: the named
 * ones (a scaled service's replicas for its name) and, with profiles, every service they enable.
 */
function reconcileNames(ctx: Context, spec: EnvSpec): string[] {
  const named = replicaTargets(spec.services, ctx.positionals);
  const profiles = activeProfiles(ctx);
  if (!profiles.length) return named;
  const sel = selectServices(spec.services, profiles, named);
  return [...new Set([...named, ...(sel.start ?? Object.keys(spec.services))])];
}

/** `hd up -d` while the environment is up: apply hd.toml and start the named services. */
async function reconcile(ctx: Context, spec: EnvSpec): Promise<number> {
  // the socket opens just after the state file is written: retry a refused connection a little
  let res: Record<string, unknown> | null = null;
  for (let i = 0; res === null; i++) {
    try {
      res = await callControl(
        controlSocketPath(spec.dir),
        { op: "reconcile", services: reconcileNames(ctx, spec) },
        660_000,
      );
    } catch (e) {
      if (i >= 50) {
        throw new HdError(
          `Cannot reach the running ${spec.environment.name}: ${(e as Error).message}`,
          "`hd status` shows its state; `hd down` stops it",
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (typeof res.error === "string") {
    throw new HdError(
      `Cannot apply hd.toml to the running ${spec.environment.name}: ${res.error}`,
      "fix hd.toml and run `hd up -d` again; the services keep running as they were",
    );
  }
  const started = res.started as string[];
  const what = res.upToDate
    ? `${spec.environment.name} is up to date`
    : `${spec.environment.name}: applied the changed hd.toml` +
      (res.applied === "reload" ? " (reloaded)" : "");
  let status: UpStatus = await gatherServices(spec.dir);
  if (ctx.values.wait) {
    const ms = waitTimeout(ctx);
    const [st, v] = await waitServices(spec.dir, ms);
    status = st;
    if (!v.ok) {
      ctx.out.note(what);
      waitFailure(ctx, spec.dir, spec.environment.name, v, ms);
    }
  }
  ctx.out.result({ ...res, status }, () =>
    [
      what + (started.length ? `; started ${started.join(", ")}` : ""),
      ...(status.running ? [formatServices(status.services)] : []),
    ].join("\n"));
  return 0;
}

/**
 * The status of the supervisor `pid` of the project at `dir` once its version is no longer
 * `after` (at once when `after` is null), or null when its socket does not answer.
 */
async function statusAfter(
  dir: string,
  pid: number,
  after: number | null,
): Promise<Extract<UpStatus, { running: true }> | null> {
  try {
    const req = after === null ? { op: "status" as const } : { op: "status" as const, after };
    const res = await callControl(controlSocketPath(dir), req, 10_000);
    if (typeof res.error === "string") return null;
    return {
      running: true,
      pid,
      detached: true,
      ...(res as unknown as LoopStatus & { phase: string }),
    };
  } catch {
    return null;
  }
}

/**
 * Starts the detached supervisor (or takes the one cli.ts started early) and waits until its
 * services are settled, or it stopped.
 */
async function detach(ctx: Context, spec: EnvSpec, early: EarlySupervisor | null): Promise<number> {
  const [dir, env] = [spec.dir, spec.environment.name];
  const log = `${dir}/.hd/logs/hd.log`;
  if (!early) {
    privateDir(`${dir}/.hd`);
    openPrivateAppend(log).close(); // the shell's >> would create it 0644
  }
  // the supervisor's own output (root, steps, build output) is shown while it starts; what it
  // wrote that was not shown (its error) is shown if it stops
  const follow = tailer(log, early?.logOffset);
  const unshown: string[] = [];
  const showNew = () => {
    for (const l of follow()) {
      if (/^(hd|build) +\| /.test(l)) ctx.out.note(l);
      else if (l.trim()) unshown.push(l);
    }
  };
  const child: SupervisorProcess = early?.child ??
    spawnSupervisor(supervisorCommand(ctx), log, { HD_HOME: ctx.storeRoot });
  trace(`up -d: supervisor ${early ? "taken" : "spawned"}`);
  let exited: { code: number } | null = null;
  child.status.then((s) => exited = s);
  const t0 = performance.now();
  let status: UpStatus = { running: false };
  // builds may take long; once running, services get READY_WAIT_MS (--wait: --wait-timeout) to
  // become ready
  const wait = !!ctx.values.wait;
  const readyMs = wait ? waitTimeout(ctx) : READY_WAIT_MS;
  let verdict: WaitVerdict = { ok: false, failed: [], pending: [] };
  let runningSince = 0;
  // the supervisor's lines are shown while it starts, whatever this waits for
  const shower = setInterval(showNew, 50);
  // the status's version: the supervisor answers once it changed (no polling); null until a
  // first answer, or always from a supervisor that gives none (then every 20 ms)
  let version: number | null = null;
  try {
    while (performance.now() - t0 < 3_600_000) {
      if (version === null) await new Promise((r) => setTimeout(r, 10));
      showNew();
      if (exited) break;
      const st = readUpState(dir);
      if (st?.state?.pid !== child.pid) continue;
      const next = await statusAfter(dir, child.pid, version);
      if (next === null) continue; // its socket is not open yet (or it just stopped)
      status = next;
      const v = (next as { version?: unknown }).version;
      version = typeof v === "number" ? v : null;
      if (version === null) await new Promise((r) => setTimeout(r, 10));
      if (tracing()) trace(`up -d: status ${next.phase} settled=${servicesSettled(next.services)}`);
      if (next.phase === "failed") break;
      if (next.phase !== "running") continue;
      runningSince ||= performance.now();
      verdict = waitVerdict(next.services);
      const settled = wait
        ? verdict.ok || verdict.failed.length > 0
        : servicesSettled(next.services);
      if (settled || performance.now() - runningSince > readyMs) break;
    }
  } finally {
    clearInterval(shower);
  }
  showNew();
  trace("up -d: done waiting");
  const ended = exited as { code: number } | null; // set by the callback above
  if (ended?.code === EXIT_ALREADY_RUNNING) {
    // another `hd up` took the project first (two `hd up -d` at once): reconcile with it
    const until = performance.now() + 10_000;
    while (performance.now() < until && !readUpState(dir)?.alive) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!readUpState(dir)?.alive) {
      const { AlreadyRunning } = await loadSession();
      throw new AlreadyRunning(env, upLockHolder(dir));
    }
    return await reconcile(ctx, spec);
  }
  if (exited || !status.running || status.phase === "failed") {
    // its own error lines (others may write to the same log: only lines since it started)
    const tail = unshown.slice(-15);
    if (tail.length) ctx.out.note(tail.join("\n"));
    throw new HdError(
      "Cannot start the environment in the background: the supervisor stopped" +
        (ended ? ` (exit code ${ended.code})` : ""),
      `its output is in ${log}${tail.length ? " (its last lines are above)" : ""}`,
    );
  }
  if (wait && !verdict.ok) waitFailure(ctx, dir, env, verdict, readyMs);
  trace("up -d: reporting");
  const notReady = status.services.filter((s) => s.state === "starting" || s.state === "waiting");
  ctx.out.result(status, () =>
    [
      `${status.env}: root ${status.root}`,
      `supervisor pid ${status.pid} (logs in .hd/logs/, \`hd down\` to stop)`,
      formatServices(status.services),
      ...(notReady.length
        ? [
          `not ready after ${READY_WAIT_MS / 1000} s: ${
            notReady.map((s) => s.name).join(", ")
          } (still trying; \`hd status\`, \`hd logs\`)`,
        ]
        : []),
    ].join("\n"));
  trace("up -d: reported");
  return 0;
}

/**
 * True when the supervisor cli.ts started early is the one this command line asks for (same
 * project, arguments and store); otherwise it is stopped (SIGTERM to our own child, which has
 * not started anything that its signal handling would not stop) and false.
 */
async function usableEarly(ctx: Context, spec: EnvSpec, e: EarlySupervisor): Promise<boolean> {
  const want = supervisorCommand(ctx);
  const same = ctx.values.detach && !ctx.values.supervise && e.dir === spec.dir &&
    e.argv.length === want.length && e.argv.every((a, i) => a === want[i]) &&
    (e.store ?? Deno.env.get("HD_HOME") ?? ctx.storeRoot) === ctx.storeRoot;
  if (same) return true;
  try {
    e.child.kill("SIGTERM");
  } catch { /* exited */ }
  await e.child.status;
  return false;
}

/**
 * The session's modules (watcher, supervisor, build runtime: ~110 files). Through lazyImport, so
 * that they stay out of the module graph of the CLI's `hd up -d`, which never runs a session: a
 * literal `import()` here made that process read and analyse all of them.
 */
function loadSession(): Promise<typeof import("../services/session.ts")> {
  return lazyImport<typeof import("../services/session.ts")>(
    new URL("../services/session.ts", import.meta.url),
  );
}

/**
 * Runs the session in this process (the foreground, or the detached supervisor `--supervise`):
 * prints its lines with a coloured name prefix (text) or its events (`--json`) until it stops.
 */
async function serve(
  ctx: Context,
  spec: EnvSpec,
  detached: boolean,
  bind: SpecBinding,
): Promise<number> {
  const json = ctx.out.json;
  let names: string[] = [];
  let width = 0;
  const color = (n: string) => COLORS[Math.max(0, names.indexOf(n)) % COLORS.length];
  const print = (src: string, line: string) => {
    if (json) return;
    // detached, stdout is .hd/logs/hd.log: service output already has its own log file
    if (detached && src !== "hd" && src !== "build") return;
    const tag = src.padEnd(width);
    const pre = ctx.out.color ? `\x1b[${color(src)}m${tag} |\x1b[0m ` : `${tag} | `;
    out(pre + line + "\n");
  };
  // The session (watcher, supervisor, build runtime) loads only here: `hd up -d` starts the
  // detached supervisor without compiling it, so the supervisor starts that much sooner.
  const [{ AlreadyRunning, UpSession }, store] = await Promise.all([
    loadSession(),
    ctx.openStore(),
  ]);
  trace("serve: session module loaded");
  let session: UpSession;
  try {
    session = await UpSession.open({
      spec,
      store,
      only: ctx.positionals,
      profiles: activeProfiles(ctx),
      detached,
      print,
      onEvent: (ev) => {
        if (json) out(JSON.stringify({ t: Date.now(), ...ev }) + "\n");
      },
      onSpec: (sp) => {
        names = ["hd", "build", ...Object.keys(sp.services)];
        width = Math.max(...names.map((n) => n.length));
      },
      onNote: (line) => ctx.out.note(line),
      remote: {
        flag: typeof ctx.values.cache === "string" ? ctx.values.cache : undefined,
        push: !!ctx.values["push-cache"],
      },
      bind,
    });
  } catch (e) {
    // the detached supervisor tells the `hd up -d` that started it by its exit code
    if (e instanceof AlreadyRunning && e.byLock && detached) {
      throw new AlreadyRunning(spec.environment.name, e.holder, EXIT_ALREADY_RUNNING);
    }
    throw e;
  }
  trace("serve: session open");
  await session.start();
  trace("serve: session started");
  await session.done();
  // stopped by `hd down`: leave a spare for the next `hd up -d` (src/services/spare.ts)
  if (detached && session.stopReason === "hd down") spawnSpare(spec.dir);
  return 0;
}

/**
 * `hd up`.
 *
 * @example
 * ```ts
 * import { up } from "./up.ts";
 * console.log(up.usage); // hd up [-d] [SERVICE…] [--file hd.toml] [--cache REF] [--push-cache]
 * ```
 */
export const up: Command = {
  name: "up",
  summary: "build the environment, start its services, and watch for changes",
  usage:
    "hd up [-d [--wait [--wait-timeout 60s]]] [--profile NAME…] [SERVICE…] [--file hd.toml] [--cache REF] [--push-cache]",
  options: {
    detach: { type: "boolean", short: "d", help: "run in the background (a supervisor)" },
    wait: {
      type: "boolean",
      help: "with -d: return once every service is healthy (or completed); exit 1 naming the " +
        "service and its last log lines when one crashes or is not healthy in time",
    },
    "wait-timeout": {
      type: "string",
      help: "how long --wait waits for the services (default 60s)",
    },
    profile: {
      type: "string",
      multiple: true,
      help: "start the services of this profile too (repeatable; HD_PROFILES=a,b does the same)",
    },
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    supervise: { type: "boolean", help: "(internal) be the detached supervisor", hidden: true },
    cache: {
      type: "string",
      help: "remote build cache REGISTRY/REPO or s3://BUCKET/PREFIX (over HD_REMOTE_CACHE, " +
        "hd.toml's [remote] cache; off: none)",
    },
    "push-cache": {
      type: "boolean",
      help: "push each step that ran to the remote cache (for CI)",
    },
  },
  // the store (BLAKE3's native module among its modules) loads only where a session runs (the
  // foreground and the supervisor): `hd up -d` itself never opens it
  lazyStore: true,
  async run(ctx) {
    // parsed for a proof that binds hd.toml: the session's start saves one, from which the next
    // no-change `hd up` starts early (src/services/prespawn.ts)
    const { spec, bind } = loadBoundSpec(
      specFilePath(typeof ctx.values.file === "string" ? ctx.values.file : undefined),
    );
    trace("up: spec loaded");
    if ((ctx.values.wait || ctx.values["wait-timeout"] !== undefined) && !ctx.values.detach) {
      throw new HdError(
        "Cannot wait: --wait and --wait-timeout go with -d",
        "run `hd up -d --wait` (in the foreground, hd up shows the services as they start)",
        2,
      );
    }
    waitTimeout(ctx); // a bad --wait-timeout is refused before anything starts
    // profiles: an inactive dependency is refused before anything starts; a typo is said
    const profiles = activeProfiles(ctx);
    const targets = replicaTargets(spec.services, ctx.positionals);
    const sel = targets.every((n) => spec.services[n])
      ? selectServices(spec.services, profiles, targets)
      : null;
    if (sel?.unknownProfiles.length && !ctx.values.supervise) {
      ctx.out.note(
        `hd: no service has profile ${sel.unknownProfiles.map((p) => `"${p}"`).join(", ")}`,
      );
    }
    const early = await takeEarlySupervisor();
    if (early && await usableEarly(ctx, spec, early)) return await detach(ctx, spec, early);
    if (ctx.values.detach && !ctx.values.supervise) {
      // the supervisor takes the lock; this only spares starting one when one is running, and
      // reports here what a stale state was (the supervisor's own notes go to its log)
      const stale = cleanupIfStale(spec.dir);
      if (stale) ctx.out.note(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(spec.dir);
      // up already: apply the hd.toml on disk to it (or say it is up to date)
      if (cur?.alive) return await reconcile(ctx, spec);
      return await detach(ctx, spec, null);
    }
    // one `hd up` per project: the lock is taken before anything is built, and held until exit
    return await serve(ctx, spec, !!ctx.values.supervise, bind);
  },
};

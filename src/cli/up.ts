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
import { loadProjectSpec } from "../config/parse.ts";
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
import { profilesFrom, replicaTargets, selectServices } from "../services/profiles.ts";
import type { Command, Context } from "./command.ts";
import { trace } from "../sys/trace.ts";

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

function entryArgs(): string[] {
  const exe = Deno.execPath();
  const base = exe.slice(exe.lastIndexOf("/") + 1);
  return base.startsWith("deno") ? ["run", "-A", "--quiet", Deno.mainModule] : [];
}

/** The active profiles: `--profile` (repeatable) and `HD_PROFILES` (a comma list). */
function activeProfiles(ctx: Context): string[] {
  const flags = (ctx.values.profile as string[] | undefined) ?? [];
  return profilesFrom(flags, Deno.env.get("HD_PROFILES"));
}

/** Command line that starts the detached supervisor for the same project. */
function supervisorCommand(ctx: Context): string[] {
  const args = [...entryArgs(), "up", "--supervise"];
  if (typeof ctx.values.file === "string") args.push("--file", ctx.values.file);
  for (const p of (ctx.values.profile as string[] | undefined) ?? []) args.push("--profile", p);
  if (typeof ctx.values.cache === "string") args.push("--cache", ctx.values.cache);
  if (ctx.values["push-cache"]) args.push("--push-cache");
  return [Deno.execPath(), ...args, ...ctx.positionals];
}

/** Follows a growing file from its current end: each call returns the complete new lines. */
function tailer(path: string): () => string[] {
  let off = 0;
  try {
    off = Deno.statSync(path).size;
  } catch { /* not yet */ }
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

async function detach(ctx: Context, spec: EnvSpec): Promise<number> {
  const [dir, env] = [spec.dir, spec.environment.name];
  const log = `${dir}/.hd/logs/hd.log`;
  privateDir(`${dir}/.hd`);
  openPrivateAppend(log).close(); // the shell's >> would create it 0644
  // the supervisor's own output (root, steps, build output) is shown while it starts; what it
  // wrote that was not shown (its error) is shown if it stops
  const follow = tailer(log);
  const unshown: string[] = [];
  const showNew = () => {
    for (const l of follow()) {
      if (/^(hd|build) +\| /.test(l)) ctx.out.note(l);
      else if (l.trim()) unshown.push(l);
    }
  };
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'log="$1"; shift; exec setsid "$@" >>"$log" 2>&1 </dev/null',
      "sh",
      log,
      ...supervisorCommand(ctx),
    ],
    cwd: Deno.cwd(),
    env: { HD_HOME: ctx.storeRoot, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  trace("up -d: supervisor spawned");
  let exited: Deno.CommandStatus | null = null;
  child.status.then((s) => exited = s);
  const t0 = performance.now();
  let status: UpStatus = { running: false };
  // builds may take long; once running, services get READY_WAIT_MS (--wait: --wait-timeout) to
  // become ready
  const wait = !!ctx.values.wait;
  const readyMs = wait ? waitTimeout(ctx) : READY_WAIT_MS;
  let verdict: WaitVerdict = { ok: false, failed: [], pending: [] };
  let runningSince = 0;
  while (performance.now() - t0 < 3_600_000) {
    // a no-change start is done in a few hundred ms: look often then, then every 50 ms
    await new Promise((r) => setTimeout(r, performance.now() - t0 < 3_000 ? 20 : 50));
    showNew();
    if (exited) break;
    const st = readUpState(dir);
    if (st?.state?.pid !== child.pid) continue;
    status = await gatherServices(dir);
    trace(
      `up -d: poll ${status.running ? `${status.phase} ${servicesSettled(status.services)}` : "-"}`,
    );
    if (!status.running) continue;
    if (status.phase === "failed") break;
    if (status.phase !== "running") continue;
    runningSince ||= performance.now();
    verdict = waitVerdict(status.services);
    const settled = wait
      ? verdict.ok || verdict.failed.length > 0
      : servicesSettled(status.services);
    if (settled || performance.now() - runningSince > readyMs) break;
  }
  showNew();
  trace("up -d: done waiting");
  const ended = exited as Deno.CommandStatus | null; // set by the callback above
  if (ended?.code === EXIT_ALREADY_RUNNING) {
    // another `hd up` took the project first (two `hd up -d` at once): reconcile with it
    const until = performance.now() + 10_000;
    while (performance.now() < until && !readUpState(dir)?.alive) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!readUpState(dir)?.alive) {
      const { AlreadyRunning } = await import("../services/session.ts");
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
  return 0;
}

/**
 * Runs the session in this process (the foreground, or the detached supervisor `--supervise`):
 * prints its lines with a coloured name prefix (text) or its events (`--json`) until it stops.
 */
async function serve(ctx: Context, spec: EnvSpec, detached: boolean): Promise<number> {
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
  const { AlreadyRunning, UpSession } = await import("../services/session.ts");
  trace("serve: session module loaded");
  let session: UpSession;
  try {
    session = UpSession.open({
      spec,
      store: ctx.store(),
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
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
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
    if (ctx.values.detach && !ctx.values.supervise) {
      // the supervisor takes the lock; this only spares starting one when one is running, and
      // reports here what a stale state was (the supervisor's own notes go to its log)
      const stale = cleanupIfStale(spec.dir);
      if (stale) ctx.out.note(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(spec.dir);
      // up already: apply the hd.toml on disk to it (or say it is up to date)
      if (cur?.alive) return await reconcile(ctx, spec);
      return await detach(ctx, spec);
    }
    // one `hd up` per project: the lock is taken before anything is built, and held until exit
    return await serve(ctx, spec, !!ctx.values.supervise);
  },
};

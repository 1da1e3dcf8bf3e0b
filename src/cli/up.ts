/**
 * `hd up [-d] [SERVICE…]`: build the environment (ingest, hash, uncached build steps), start its
 * services in dependency order, and watch the project: each edit re-ingests only the changed
 * files, re-runs the steps whose hash changed and restarts the services that watch the change.
 * In the foreground every service's output is multiplexed with a coloured name prefix; Ctrl-C
 * stops the services in reverse order. With `-d` a detached supervisor does the same, logs to
 * `.hd/logs/`, and answers the control socket `.hd/control.sock` (`hd status`, `hd restart`,
 * `hd logs`, `hd down`).
 *
 * @example
 * ```sh
 * hd up            # foreground, Ctrl-C to stop
 * hd up -d web     # detached, only web and what it depends on
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadProjectSpec, loadSpec } from "../config/parse.ts";
import { trackedFilter } from "../env/compile.ts";
import type { EnvSpec } from "../config/types.ts";
import { ProjectWatcher } from "../watch/watcher.ts";
import { openPrivateAppend, privateDir } from "../sys/fs.ts";
import {
  acquireUpLock,
  type ControlRequest,
  controlSocketPath,
  readUpState,
  removeUpState,
  selfState,
  serveControl,
  upLockHolder,
  writeUpState,
} from "../services/control.ts";
import { DevLoop } from "../services/loop.ts";
import {
  cleanupIfStale,
  formatCleanup,
  formatServices,
  gatherServices,
  type UpStatus,
} from "../services/report.ts";
import { signalGroup } from "../sandbox/process.ts";
import type { Command, Context } from "./command.ts";

/**
 * Exit code of `hd up` when another `hd up` of the project holds `.hd/up.lock`: the detached
 * supervisor exits with it, and `hd up -d` turns it into the "already running" message.
 */
export const EXIT_ALREADY_RUNNING = 3;

/**
 * The error of a second `hd up` of a project (the lock is held by pid `holder`): exit code 1, or
 * {@link EXIT_ALREADY_RUNNING} from a detached supervisor (for the `hd up -d` that started it).
 */
function alreadyRunning(env: string, holder: number | null, code = 1): HdError {
  return new HdError(
    `Cannot start ${env}: \`hd up\` is already running (pid ${holder ?? "unknown"})`,
    "see `hd status`; `hd restart SERVICE` restarts one, `hd down` stops everything",
    code,
  );
}

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

/** Command line that starts the detached supervisor for the same project. */
function supervisorCommand(ctx: Context): string[] {
  const args = [...entryArgs(), "up", "--supervise"];
  if (typeof ctx.values.file === "string") args.push("--file", ctx.values.file);
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

async function detach(ctx: Context, dir: string, env: string): Promise<number> {
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
  let exited: Deno.CommandStatus | null = null;
  child.status.then((s) => exited = s);
  const t0 = performance.now();
  let status: UpStatus = { running: false };
  // builds may take long; once running, services get READY_WAIT_MS to become ready
  let runningSince = 0;
  while (performance.now() - t0 < 3_600_000) {
    await new Promise((r) => setTimeout(r, 50));
    showNew();
    if (exited) break;
    const st = readUpState(dir);
    if (st?.state?.pid !== child.pid) continue;
    status = await gatherServices(dir);
    if (!status.running) continue;
    if (status.phase === "failed") break;
    if (status.phase !== "running") continue;
    runningSince ||= performance.now();
    if (settled(status) || performance.now() - runningSince > READY_WAIT_MS) break;
  }
  showNew();
  const ended = exited as Deno.CommandStatus | null; // set by the callback above
  if (ended?.code === EXIT_ALREADY_RUNNING) throw alreadyRunning(env, upLockHolder(dir));
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

function settled(s: UpStatus): boolean {
  if (!s.running) return false;
  const by = new Map(s.services.map((x) => [x.name, x]));
  const blockedForGood = (name: string, seen = new Set<string>()): boolean => {
    const x = by.get(name);
    if (!x || seen.has(name)) return true;
    seen.add(name);
    if (x.state === "crashed" || x.state === "exited" || x.state === "stopped") return true;
    if (x.state === "waiting") return x.waitingFor.some((d) => blockedForGood(d, seen));
    return false;
  };
  return s.services.every((x) =>
    (x.state === "running" && x.ready !== false) || x.state === "crashed" ||
    x.state === "exited" || x.state === "stopped" ||
    (x.state === "waiting" && x.waitingFor.some((d) => blockedForGood(d)))
  );
}

async function runLoop(ctx: Context, detached: boolean, lock: Deno.FsFile): Promise<number> {
  let spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
  const dir = spec.dir;
  const store = ctx.store();
  const json = ctx.out.json;
  let names: string[] = [];
  let width = 0;
  const setNames = (sp: EnvSpec) => {
    names = ["hd", "build", ...Object.keys(sp.services)];
    width = Math.max(...names.map((n) => n.length));
  };
  setNames(spec);
  const color = (n: string) => COLORS[Math.max(0, names.indexOf(n)) % COLORS.length];
  const print = (src: string, line: string) => {
    if (json) return;
    // detached, stdout is .hd/logs/hd.log: service output already has its own log file
    if (detached && src !== "hd" && src !== "build") return;
    const tag = src.padEnd(width);
    const pre = ctx.out.color ? `\x1b[${color(src)}m${tag} |\x1b[0m ` : `${tag} | `;
    out(pre + line + "\n");
  };
  const emit = (ev: Record<string, unknown>) => {
    if (json) out(JSON.stringify({ t: Date.now(), ...ev }) + "\n");
  };
  let phase = "starting";
  let stateTimer: ReturnType<typeof setTimeout> | null = null;
  const state = selfState(dir, spec.environment.name, detached);
  // what the main loop waits for: a stop (signal, `hd down`) or a reload (hd.toml changed)
  let stopReason: string | null = null;
  let reloadWanted = false;
  let poke: () => void = () => {};
  const wake = () => poke();
  const next = () =>
    stopReason !== null || reloadWanted
      ? Promise.resolve()
      : new Promise<void>((r) => poke = () => (poke = () => {}, r()));
  const stop = (why: string) => {
    stopReason ??= why;
    // still building: end the running step now rather than after it
    if (phase === "starting") loop.stop().catch(() => {});
    wake();
  };
  const makeLoop = (sp: EnvSpec): DevLoop => {
    const l: DevLoop = new DevLoop({
      spec: sp,
      store,
      only: ctx.positionals,
      print,
      onEvent: emit,
      onChange: () => {
        stateTimer ??= setTimeout(() => {
          stateTimer = null;
          saveState();
        }, 0);
      },
      onSpecChange: () => {
        reloadWanted = true;
        wake();
      },
    });
    return l;
  };
  // the state records each service's group with its leader's executable, which may change just
  // after a spawn (setsid, sh, then the command): it is compared again every second
  let saved = "";
  const saveState = () => {
    if (phase === "stopped") return;
    state.groups = loop.supervisor.groups();
    const text = JSON.stringify(state);
    if (text === saved) return;
    saved = text;
    try {
      writeUpState(dir, state);
    } catch (e) {
      print("hd", `cannot write .hd/up.json: ${(e as Error).message}`);
    }
  };
  const refresh = setInterval(saveState, 1000);
  let loop = makeLoop(spec);
  const handler = (req: ControlRequest): Promise<unknown> => {
    switch (req.op) {
      case "ping":
        return Promise.resolve({ ok: true });
      case "status":
        return Promise.resolve({ phase, ...loop.status() });
      case "restart": {
        for (const n of req.services) {
          if (!spec.services[n]) return Promise.resolve({ error: `no service "${n}"` });
        }
        return loop.supervisor.restart(req.services).then((restarted) => ({ restarted }));
      }
      case "down":
        stop("hd down");
        return Promise.resolve({ ok: true });
      default:
        return Promise.resolve({ error: "unknown op" });
    }
  };
  // this process holds .hd/up.lock: whatever state file is there is not a live one's
  saveState();
  const server = serveControl(controlSocketPath(dir), handler);
  const onSignal = (sig: string) => () => stop(sig);
  const sigs: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ];
  for (const [s, f] of sigs) Deno.addSignalListener(s, f);
  // after a failed reload, any edit of the project (hd.toml or a step's input) retries it
  let retryWatch: ProjectWatcher | null = null;
  const closeRetry = async () => {
    await retryWatch?.close();
    retryWatch = null;
  };
  try {
    try {
      await loop.start();
      phase = "running";
      emit({ event: "started", root: loop.root });
    } catch (e) {
      phase = "failed";
      if (detached) await new Promise((r) => setTimeout(r, 300)); // let `hd up -d` see it
      throw e;
    }
    while (true) {
      await next();
      if (stopReason !== null) break;
      reloadWanted = false;
      let fresh: EnvSpec;
      try {
        fresh = loadSpec(spec.file);
        if (fresh.environment.name !== spec.environment.name) {
          throw new Error(
            `the environment name changed (${spec.environment.name} → ${fresh.environment.name}); stop and start hd up`,
          );
        }
      } catch (e) {
        print("hd", `cannot reload: ${(e as Error).message} — still running the previous one`);
        emit({ event: "reload", ok: false, error: (e as Error).message });
        continue;
      }
      print("hd", "reloading: stopping the services of the previous configuration");
      await closeRetry();
      await loop.stop();
      spec = fresh;
      setNames(spec);
      phase = "starting";
      try {
        loop = makeLoop(spec);
        await loop.start();
        phase = "running";
        emit({ event: "reload", ok: true, root: loop.root });
      } catch (e) {
        phase = "failed";
        const hint = e instanceof HdError && e.hint ? ` (${e.hint})` : "";
        print("hd", `reload failed: ${(e as Error).message}${hint}; waiting for a change`);
        emit({ event: "reload", ok: false, error: (e as Error).message });
        retryWatch = new ProjectWatcher(dir, {
          debounceMs: spec.options.debounceMs,
          filter: trackedFilter(spec),
          onBatch: () => {
            reloadWanted = true;
            wake();
          },
        });
        retryWatch.start();
      }
    }
    await closeRetry();
    print("hd", `stopping (${stopReason}): ${[...loop.supervisor.order].reverse().join(", ")}`);
    emit({ event: "stopping", reason: stopReason });
    // a second Ctrl-C during the stop kills at once
    const force = () => {
      for (const g of loop.supervisor.groups()) signalGroup(g.pgid, "SIGKILL");
    };
    for (const [s, f] of sigs) Deno.removeSignalListener(s, f);
    Deno.addSignalListener("SIGINT", force);
    await loop.stop();
    Deno.removeSignalListener("SIGINT", force);
    print("hd", "stopped");
    emit({ event: "stopped" });
  } catch (e) {
    await closeRetry().catch(() => {});
    await loop.stop().catch(() => {});
    throw e;
  } finally {
    for (const [s, f] of sigs) {
      try {
        Deno.removeSignalListener(s, f);
      } catch { /* removed */ }
    }
    phase = "stopped";
    clearInterval(refresh);
    if (stateTimer !== null) clearTimeout(stateTimer);
    server.close();
    const cur = readUpState(dir);
    if (cur?.state?.pid === Deno.pid || cur?.invalid !== undefined) removeUpState(dir);
    lock.close();
  }
  return 0;
}

/** `hd up`. */
export const up: Command = {
  name: "up",
  summary: "build the environment, start its services, and watch for changes",
  usage: "hd up [-d] [SERVICE…] [--file hd.toml]",
  options: {
    detach: { type: "boolean", short: "d", help: "run in the background (a supervisor)" },
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    supervise: { type: "boolean", help: "(internal) be the detached supervisor" },
  },
  async run(ctx) {
    const spec = loadProjectSpec(typeof ctx.values.file === "string" ? ctx.values.file : undefined);
    const env = spec.environment.name;
    if (ctx.values.detach && !ctx.values.supervise) {
      // the supervisor takes the lock; this only spares starting one when one is running, and
      // reports here what a stale state was (the supervisor's own notes go to its log)
      const stale = cleanupIfStale(spec.dir);
      if (stale) ctx.out.note(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(spec.dir);
      if (cur?.alive) throw alreadyRunning(env, cur.state.pid);
      return await detach(ctx, spec.dir, env);
    }
    // one `hd up` per project: the lock is taken before anything is built, and held until exit
    const lock = acquireUpLock(spec.dir);
    if (!("file" in lock)) {
      throw alreadyRunning(env, lock.holder, ctx.values.supervise ? EXIT_ALREADY_RUNNING : 1);
    }
    try {
      const stale = cleanupIfStale(spec.dir);
      if (stale) ctx.out.note(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(spec.dir);
      if (cur?.alive) throw alreadyRunning(env, cur.state.pid); // an hd without the lock
    } catch (e) {
      lock.file.close();
      throw e;
    }
    return await runLoop(ctx, !!ctx.values.supervise, lock.file);
  },
};

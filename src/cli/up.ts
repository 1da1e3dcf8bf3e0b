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
} from "../services/report.ts";
import { AlreadyRunning, UpSession } from "../services/session.ts";
import type { Command, Context } from "./command.ts";

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

/** Command line that starts the detached supervisor for the same project. */
function supervisorCommand(ctx: Context): string[] {
  const args = [...entryArgs(), "up", "--supervise"];
  if (typeof ctx.values.file === "string") args.push("--file", ctx.values.file);
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
    if (servicesSettled(status.services) || performance.now() - runningSince > READY_WAIT_MS) break;
  }
  showNew();
  const ended = exited as Deno.CommandStatus | null; // set by the callback above
  if (ended?.code === EXIT_ALREADY_RUNNING) throw new AlreadyRunning(env, upLockHolder(dir));
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
  let session: UpSession;
  try {
    session = UpSession.open({
      spec,
      store: ctx.store(),
      only: ctx.positionals,
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
  await session.start();
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
  usage: "hd up [-d] [SERVICE…] [--file hd.toml] [--cache REF] [--push-cache]",
  options: {
    detach: { type: "boolean", short: "d", help: "run in the background (a supervisor)" },
    file: { type: "string", help: "the hd.toml to use (default: found from the cwd)" },
    supervise: { type: "boolean", help: "(internal) be the detached supervisor" },
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
    if (ctx.values.detach && !ctx.values.supervise) {
      // the supervisor takes the lock; this only spares starting one when one is running, and
      // reports here what a stale state was (the supervisor's own notes go to its log)
      const stale = cleanupIfStale(spec.dir);
      if (stale) ctx.out.note(`hd: ${formatCleanup(stale)}`);
      const cur = readUpState(spec.dir);
      if (cur?.alive) throw new AlreadyRunning(spec.environment.name, cur.state.pid);
      return await detach(ctx, spec.dir, spec.environment.name);
    }
    // one `hd up` per project: the lock is taken before anything is built, and held until exit
    return await serve(ctx, spec, !!ctx.values.supervise);
  },
};

/**
 * The first moments of `hd up -d`: its detached supervisor is a second Deno process whose start
 * (~100 ms) was on the critical path after the CLI's own (~80 ms). cli.ts calls
 * {@link startEarlySupervisor} before it loads anything else, so that both start side by side;
 * src/cli/up.ts then takes the child ({@link takeEarlySupervisor}) instead of spawning one. The
 * early start happens only for a command line it fully understands ({@link earlyPlan}: the
 * options of `hd up -d` that parseArgs would take the same way, a valid --wait-timeout) in a
 * project with no `.hd/up.json` (nothing running and nothing stale to clean up first); anything
 * else takes the ordinary path.
 *
 * @example
 * ```ts
 * import { earlyPlan } from "./up_early.ts";
 * earlyPlan(["up", "-d", "web"]); // { args: ["up", "--supervise", "web"], file: null, store: null }
 * earlyPlan(["up", "web"]); // null: in the foreground there is no supervisor to start
 * ```
 * @module
 */
import { parseDuration } from "../config/duration.ts";
import { findSpecFile } from "../config/find.ts";
import { openPrivateAppend } from "../sys/fs.ts";
import { trace } from "../sys/trace.ts";
import { v8FlagsArg } from "../sys/v8_flags.ts";
import { askSpare, parseSpareLinger, SPARE_ENV, trustedSpareSocket } from "../services/spare.ts";

/** What the detached supervisor is started with (the same for the early and the ordinary path). */
export interface SupervisorOptions {
  file?: string;
  profiles: string[];
  cache?: string;
  pushCache: boolean;
  positionals: string[];
}

/** The supervisor's arguments after the entry (`deno run … cli.ts`, or none for a compiled hd). */
export function supervisorArgs(o: SupervisorOptions): string[] {
  const args = ["up", "--supervise"];
  if (o.file !== undefined) args.push("--file", o.file);
  for (const p of o.profiles) args.push("--profile", p);
  if (o.cache !== undefined) args.push("--cache", o.cache);
  if (o.pushCache) args.push("--push-cache");
  return [...args, ...o.positionals];
}

/** An early start's plan: the supervisor's arguments, and `--file` / `--store` as given. */
export interface EarlyPlan {
  args: string[];
  file: string | null;
  store: string | null;
}

const FLAGS = new Set(["--wait", "--json", "--debug", "--push-cache"]);
const VALUES = new Set(["--file", "--profile", "--cache", "--store", "--wait-timeout"]);

/**
 * For a foreground `hd up` (`argv` without the program: `up`, or `up --file PATH`), the
 * supervisor's arguments that src/services/prespawn.ts reads to start the first services early
 * (pure); null for any other command line (those start as usual).
 */
export function foregroundArgs(argv: readonly string[]): string[] | null {
  if (argv.length === 1 && argv[0] === "up") return ["up", "--supervise"];
  if (argv.length === 3 && argv[0] === "up" && argv[1] === "--file" && !argv[2].startsWith("-")) {
    return ["up", "--supervise", "--file", argv[2]];
  }
  return null;
}

/**
 * The plan of an early supervisor start for the command line `argv` (without the program), or
 * null when it is not `hd up -d` or holds anything this does not read exactly as parseArgs does
 * (`--opt=value`, combined short flags, `--`, `--help`, a repeated single-valued option, a value
 * that looks like an option, an invalid --wait-timeout): those take the ordinary path.
 */
export function earlyPlan(argv: readonly string[]): EarlyPlan | null {
  if (argv[0] !== "up") return null;
  let detach = false;
  const seen = new Set<string>();
  const o: SupervisorOptions = { profiles: [], pushCache: false, positionals: [] };
  let store: string | null = null;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-d" || a === "--detach") detach = true;
    else if (FLAGS.has(a)) {
      if (a === "--push-cache") o.pushCache = true;
    } else if (VALUES.has(a)) {
      const v = argv[++i];
      if (v === undefined || v.startsWith("-")) return null;
      if (a !== "--profile" && seen.has(a)) return null;
      seen.add(a);
      if (a === "--file") o.file = v;
      else if (a === "--profile") o.profiles.push(v);
      else if (a === "--cache") o.cache = v;
      else if (a === "--store") store = v;
      else {
        const ms = parseDuration(v);
        if (ms === null || ms > 3_600_000) return null;
      }
    } else if (a.startsWith("-")) return null;
    else o.positionals.push(a);
  }
  if (!detach) return null;
  return { args: supervisorArgs(o), file: o.file ?? null, store };
}

/**
 * The supervisor process as `hd up -d` sees it: its own child, or the project's spare gone on as
 * the supervisor (src/services/spare.ts).
 */
export type SupervisorProcess = Pick<Deno.ChildProcess, "pid"> & {
  status: Promise<{ code: number }>;
  kill(signal: Deno.Signal): void;
};

/** A supervisor started early, for `hd up -d` to take. */
export interface EarlySupervisor {
  child: SupervisorProcess;
  /** Its full command line (executable first). */
  argv: string[];
  /** The project directory (where hd.toml is). */
  dir: string;
  /** `HD_HOME` it was given, or null (it inherited this process's). */
  store: string | null;
  /** Size of `.hd/logs/hd.log` before it started: its output begins there. */
  logOffset: number;
  /** True when it is the project's spare (src/services/spare.ts), not a process started now. */
  spare: boolean;
}

let early: Promise<EarlySupervisor | null> | null = null;

/** The entry arguments that run this hd again: `run -A --quiet <main module>` under deno. */
export function entryArgs(): string[] {
  const exe = Deno.execPath();
  const base = exe.slice(exe.lastIndexOf("/") + 1);
  // the V8 flags too: a compiled hd has them built in, `deno run` must be told (v8_flags.ts)
  return base.startsWith("deno") ? ["run", "-A", "--quiet", v8FlagsArg(), Deno.mainModule] : [];
}

/**
 * Spawns the detached supervisor: `setsid` (its own session, so that the terminal's signals do
 * not reach it), its output appended to `log`, stdin from /dev/null.
 */
export function spawnSupervisor(
  argv: string[],
  log: string,
  env: Record<string, string>,
): Deno.ChildProcess {
  const child = new Deno.Command("sh", {
    args: ["-c", 'log="$1"; shift; exec setsid "$@" >>"$log" 2>&1 </dev/null', "sh", log, ...argv],
    cwd: Deno.cwd(),
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  return child;
}

/**
 * Starts the supervisor of `hd up -d` now, when {@link earlyPlan} has a plan for `argv` and the
 * project has no `.hd/up.json`; otherwise (or on any error) does nothing. When the project has a
 * spare supervisor (`.hd/spare.sock`), asks it first, with the command line, directory and
 * variables it would start the supervisor with; a spare that declines or does not answer means a
 * supervisor started as usual, at once. Resolves once a supervisor runs (cli.ts waits for it
 * before loading anything else: the few ms of asking the spare would otherwise wait behind the
 * CLI's module loading). Never throws.
 */
export async function startEarlySupervisor(argv: readonly string[]): Promise<void> {
  const plan = earlyPlan(argv);
  if (plan === null) return;
  try {
    const file = plan.file === null
      ? findSpecFile()
      : plan.file.startsWith("/")
      ? plan.file
      : `${Deno.cwd()}/${plan.file}`.replace(/\/\.\//g, "/");
    const dir = file.slice(0, file.lastIndexOf("/")) || "/";
    try {
      Deno.lstatSync(`${dir}/.hd/up.json`);
      return; // running, or stale: the ordinary path decides
    } catch { /* none: nothing runs */ }
    Deno.statSync(file); // a missing --file is the CLI's error to give
    const log = `${dir}/.hd/logs/hd.log`;
    const f = openPrivateAppend(log);
    const logOffset = f.statSync().size;
    f.close();
    const full = [Deno.execPath(), ...entryArgs(), ...plan.args];
    const extra: Record<string, string> = plan.store === null ? {} : { HD_HOME: plan.store };
    const base = { argv: full, dir, store: plan.store, logOffset };
    const spawnNow = (): EarlySupervisor => {
      const child = spawnSupervisor(full, log, extra);
      trace("early: supervisor spawned");
      return { ...base, child, spare: false };
    };
    if (!trustedSpareSocket(dir)) {
      early = Promise.resolve(spawnNow());
      return;
    }
    // the variables spawnSupervisor gives the child (the shell it runs sets PWD, not compared)
    const env = { ...Deno.env.toObject(), ...extra, NO_COLOR: "1" };
    early = askSpare(dir, { argv: full, cwd: Deno.cwd(), env }).then((child) => {
      if (child === null) return spawnNow();
      trace("early: the spare goes on as the supervisor");
      return { ...base, child, spare: true };
    }).catch(() => null);
    await early;
  } catch { /* the ordinary path reports what is wrong */ }
}

/** The supervisor {@link startEarlySupervisor} started, once (null when it did not). */
export async function takeEarlySupervisor(): Promise<EarlySupervisor | null> {
  const e = early;
  early = null;
  return e === null ? null : await e;
}

/**
 * In the detached supervisor, stopped by `hd down`: starts its spare (src/services/spare.ts), a
 * process started as this one was (the same command line, directory, variables and log) that
 * waits for the project's next `hd up -d`. Nothing when `HD_SPARE_LINGER` is 0 (or invalid: said
 * in the log). Never throws.
 */
export function spawnSpare(dir: string): void {
  const linger = parseSpareLinger(Deno.env.get("HD_SPARE_LINGER"));
  if (linger.error) console.error(`hd: ${linger.error}`);
  if (linger.ms === 0) return;
  try {
    const argv = [Deno.execPath(), ...entryArgs(), ...Deno.args];
    spawnSupervisor(argv, `${dir}/.hd/logs/hd.log`, { [SPARE_ENV]: dir });
    trace("down: spare spawned");
  } catch { /* no spare: the next hd up -d starts its supervisor */ }
}

/**
 * The spare supervisor: after `hd down`, the detached supervisor leaves a successor behind — a
 * process started exactly as the next `hd up -d` would start its supervisor (the same command
 * line, directory and variables), with its modules already loaded, waiting on
 * `.hd/spare.sock`. The next `hd up -d` of the project asks it first: when everything that the
 * supervisor's start depends on is as the spare was started with ({@link spareDecision}: the
 * command line, the working directory, every variable but PWD, and hd's own code on disk), the
 * spare goes on as that supervisor; otherwise it says why, exits, and `hd up -d` starts one as
 * before. On this machine kind a Deno process takes 70–100 ms to start and the supervisor's
 * modules ~100 ms more to load: both were on the critical path of every `hd up -d`.
 *
 * A spare lingers `HD_SPARE_LINGER` seconds (default {@link DEFAULT_SPARE_LINGER_S}; 0: none is
 * left) and then exits, or at once when its socket is removed (the project deleted) or replaced;
 * `hd down` with nothing running stops it (`{"op":"exit"}`). It holds no
 * lock, no store lease and no service; it has started nothing. Its socket sits in the project's
 * private `.hd/` (0700), made 0600. The wire is one JSON line each way ({@link askSpare}):
 * `{"op":"start",argv,cwd,env}` → `{"ready":true,pid,startTime}` or `{"why":…}`, then
 * `{"op":"go"}` from the client, after which the connection stays open until the supervisor
 * exits, its last line `{"exit":code}` (what `hd up -d` reads as the child's exit status).
 *
 * @example
 * ```ts
 * import { spareDecision } from "./spare.ts";
 * const self = { argv: ["deno", "up", "--supervise"], cwd: "/p", env: { A: "1" } };
 * spareDecision(self, { ...self, env: { A: "1" } }, "same"); // { go: true }
 * spareDecision(self, { ...self, env: { A: "2" } }, "same"); // { why: "other variables (A)" }
 * ```
 * @module
 */
import { jsonlRequest, LineReader } from "../sys/jsonl.ts";
import { procStartTime } from "../sys/proc.ts";
import { after, type Timer } from "../sys/timer.ts";
import { trace } from "../sys/trace.ts";
import { listenUnix, type UnixListen } from "../sys/unix_listen.ts";

/** How long a spare waits for an `hd up -d` by default, in seconds. */
export const DEFAULT_SPARE_LINGER_S = 300;

/** The variable that makes a `hd up --supervise` process a spare for the project it names. */
export const SPARE_ENV = "HD_INTERNAL_SPARE";

/** Path of the spare's socket in the project at `dir`. */
export function spareSocketPath(dir: string): string {
  return `${dir}/.hd/spare.sock`;
}

/**
 * Whether the project at `dir` has a spare's socket that hd may send a request to: `.hd` a real
 * directory (no symlink) of this user, closed to others (0700), and `.hd/spare.sock` a socket of
 * this user, no symlink. A start request carries the user's variables: a cloned project that ships
 * `.hd/spare.sock` as a link to another socket must not receive them.
 *
 * @example
 * ```ts
 * import { trustedSpareSocket } from "./spare.ts";
 * trustedSpareSocket("/nonexistent"); // false
 * ```
 */
export function trustedSpareSocket(dir: string): boolean {
  try {
    const uid = Deno.uid();
    const d = Deno.lstatSync(`${dir}/.hd`);
    if (!d.isDirectory || d.uid !== uid || ((d.mode ?? 0o777) & 0o077) !== 0) return false;
    const s = Deno.lstatSync(spareSocketPath(dir));
    return s.isSocket === true && s.uid === uid;
  } catch {
    return false;
  }
}

/**
 * How long a spare lingers, in ms, from `HD_SPARE_LINGER` (whole seconds, 0–86400; unset: the
 * default); `error` says why a value was not taken (then no spare is left).
 *
 * @example
 * ```ts
 * import { parseSpareLinger } from "./spare.ts";
 * parseSpareLinger("0"); // { ms: 0 }
 * parseSpareLinger("soon"); // { ms: 0, error: "…" }
 * ```
 */
export function parseSpareLinger(value: string | undefined): { ms: number; error?: string } {
  if (value === undefined || value === "") return { ms: DEFAULT_SPARE_LINGER_S * 1000 };
  if (!/^\d{1,5}$/.test(value) || Number(value) > 86400) {
    return {
      ms: 0,
      error: `HD_SPARE_LINGER=${JSON.stringify(value).slice(0, 40)} is not a number of seconds ` +
        "from 0 to 86400: no spare supervisor is left (set whole seconds, e.g. 300, or unset it)",
    };
  }
  return { ms: Number(value) * 1000 };
}

/** What the supervisor `hd up -d` would start looks like: its command line, directory, variables. */
export interface SpareRequest {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

/** A spare: how it was started. */
export type SpareSelf = SpareRequest;

/**
 * hd's code on disk beside what the spare loaded: the same, changed, or not known (it could not be
 * stamped or watched).
 */
export type CodeState = "same" | "changed" | "unknown";

/** Variables a spare does not compare: the shell that starts the supervisor sets PWD itself. */
const UNCOMPARED = new Set(["PWD"]);

/**
 * Whether the spare `self` may go on as the supervisor `req` asks for (pure): the same command
 * line, working directory and variables (but PWD), and hd's code unchanged since the spare loaded
 * it (`code`; not known: no). The reason names variables, never their values.
 */
export function spareDecision(
  self: SpareSelf,
  req: SpareRequest,
  code: CodeState,
): { go: true } | { why: string } {
  if (
    self.argv.length !== req.argv.length || !self.argv.every((a, i) => a === req.argv[i])
  ) return { why: "another command line" };
  if (self.cwd !== req.cwd) return { why: "another working directory" };
  const keys = new Set([...Object.keys(self.env), ...Object.keys(req.env)]);
  const differ = [...keys].filter((k) =>
    !UNCOMPARED.has(k) && (Object.hasOwn(self.env, k) !== Object.hasOwn(req.env, k) ||
      self.env[k] !== req.env[k])
  ).sort();
  if (differ.length) {
    const names = differ.slice(0, 5).join(", ") + (differ.length > 5 ? ", …" : "");
    return { why: `other variables (${names})` };
  }
  if (code === "unknown") return { why: "hd's code cannot be stamped" };
  if (code === "changed") return { why: "hd's code changed since the spare started" };
  return { go: true };
}

/**
 * The start request in `v` (a parsed wire line), or null unless every field has its shape: an
 * argv of strings, a cwd string, an env of strings (at most 4096 variables).
 */
export function parseSpareRequest(v: unknown): SpareRequest | null {
  const r = v as Partial<SpareRequest> | null;
  if (typeof r !== "object" || r === null) return null;
  if (
    !Array.isArray(r.argv) || r.argv.length > 4096 || !r.argv.every((a) => typeof a === "string")
  ) {
    return null;
  }
  if (typeof r.cwd !== "string") return null;
  const env = r.env;
  if (typeof env !== "object" || env === null || Array.isArray(env)) return null;
  const entries = Object.entries(env);
  if (entries.length > 4096 || !entries.every(([, x]) => typeof x === "string")) return null;
  return { argv: r.argv, cwd: r.cwd, env: Object.fromEntries(entries) };
}

/** The repository hd runs from (the directory of cli.ts), or null for a compiled hd. */
function sourceRoot(): string | null {
  const exe = Deno.execPath();
  if (!exe.slice(exe.lastIndexOf("/") + 1).startsWith("deno")) return null; // compiled: its files
  const u = new URL("../../", import.meta.url);
  if (u.protocol !== "file:") return null;
  const root = decodeURIComponent(u.pathname);
  try {
    Deno.statSync(`${root}cli.ts`);
    return root;
  } catch {
    return null;
  }
}

/**
 * A stamp of hd's code as it is on disk: the executable's identity (size, times, inode) and,
 * running from source, that of cli.ts, deno.json, deno.lock and every file under src/ and ffi/
 * (`root`: the repository; default where this module was loaded from; `dirs`: false leaves out
 * src/ and ffi/, which a spare watches instead). Two stamps differ when a file was edited,
 * replaced, added or removed. Null when it cannot be read.
 *
 * @example
 * ```ts
 * import { codeStamp } from "./spare.ts";
 * const before = codeStamp();
 * console.log(before === codeStamp()); // true while nothing changed
 * ```
 */
export function codeStamp(root: string | null = sourceRoot(), dirs = true): string | null {
  const parts: string[] = [];
  const id = (rel: string, path: string) => {
    let s: Deno.FileInfo;
    try {
      s = Deno.statSync(path);
    } catch {
      return parts.push(`${rel} -`);
    }
    parts.push(`${rel} ${s.size} ${s.mtime?.getTime()} ${s.ctime?.getTime()} ${s.ino}`);
  };
  const walk = (rel: string) => {
    let names: { name: string; dir: boolean }[];
    try {
      names = [...Deno.readDirSync(`${root}${rel}`)].map((e) => ({
        name: e.name,
        dir: e.isDirectory,
      }));
    } catch {
      return parts.push(`${rel}/ -`);
    }
    names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const n of names) {
      const r = `${rel}/${n.name}`;
      if (n.dir) walk(r);
      else id(r, `${root}${r}`);
    }
  };
  try {
    id("exe", Deno.execPath());
    if (root !== null) {
      for (const f of ["cli.ts", "deno.json", "deno.lock"]) id(f, `${root}${f}`);
      if (dirs) { for (const d of CODE_DIRS) walk(d); }
    }
    return parts.join("\n");
  } catch {
    return null;
  }
}

/** hd's source directories (watched by a spare rather than stamped at each request). */
const CODE_DIRS = ["src", "ffi"];

/**
 * Watches hd's source directories from now on: `state()` says whether its code is as the stamp
 * `before` (taken before the modules loaded) says — "changed" once anything under them changed,
 * or when they differ from `before` already; "unknown" when they cannot be watched. The files
 * outside them (the executable, cli.ts, deno.json, deno.lock) are stamped at each call.
 */
function watchCode(before: string | null): { state(): CodeState; close(): void } {
  const root = sourceRoot();
  const top = codeStamp(root, false);
  if (before === null || top === null) return { state: () => "unknown", close() {} };
  let changed = false;
  let watcher: Deno.FsWatcher | null = null;
  if (root !== null) {
    try {
      watcher = Deno.watchFs(CODE_DIRS.map((d) => `${root}${d}`), { recursive: true });
    } catch {
      return { state: () => "unknown", close() {} };
    }
    const w = watcher;
    (async () => {
      try {
        for await (const ev of w) if (ev.kind !== "access") changed = true;
      } catch { /* closed */ }
    })();
  }
  // what changed while the modules loaded and before the watch began
  if (codeStamp(root) !== before) changed = true;
  return {
    state: () => changed || codeStamp(root, false) !== top ? "changed" : "same",
    close: () => closeQuietly(watcher),
  };
}

const enc = new TextEncoder();

async function writeLine(conn: Deno.Conn, v: unknown): Promise<void> {
  const b = enc.encode(JSON.stringify(v) + "\n");
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

function closeQuietly(c: { close(): void } | null): void {
  try {
    c?.close();
  } catch { /* closed */ }
}

/**
 * `p`'s value, or null after `ms` (a late value is given to `late`, to release it). On
 * src/sys/timer.ts's timer: `hd up -d` asks the spare before anything else has set a timer, and
 * Node's first one costs ~14 ms of the main thread here (2026-12-02).
 */
function timed<T>(p: Promise<T>, ms: number, late: (v: T) => void = () => {}): Promise<T | null> {
  let expired = false;
  p.then((v) => expired && late(v), () => {});
  let timer: Timer | null = null;
  return Promise.race([
    p,
    new Promise<null>((r) =>
      timer = after(ms, () => {
        expired = true;
        r(null);
      })
    ),
  ]).finally(() => timer?.cancel());
}

function parseLine(line: string | null): Record<string, unknown> | null {
  if (line === null) return null;
  try {
    const v = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether this process's output (fd 1, the log it was started with) still is the project's
 * `.hd/logs/hd.log`: a supervisor's lines go there, where `hd up -d` and `hd logs` read them.
 */
function sameLog(dir: string): boolean {
  try {
    const out = Deno.statSync("/proc/self/fd/1");
    const log = Deno.lstatSync(`${dir}/.hd/logs/hd.log`);
    return out.ino === log.ino && out.dev === log.dev;
  } catch {
    return false;
  }
}

/** The connection of the `hd up -d` this spare went on for (its exit code is written to it). */
let held: Deno.Conn | null = null;

/** What {@link waitAsSpare} is given. */
export interface SpareOptions {
  /** The project (where hd.toml is): the socket is in its `.hd/`. */
  dir: string;
  /** This process's full command line (executable first), as `hd up -d` would start it. */
  argv: string[];
  /** How long to wait for an `hd up -d` before exiting, in ms. */
  lingerMs: number;
  /** Loads the supervisor's modules (awaited before the socket opens). */
  preload: () => Promise<unknown>;
}

/**
 * In a spare (a `hd up --supervise` process started with {@link SPARE_ENV}): loads the
 * supervisor's modules, then waits on the project's spare socket. Returns when an `hd up -d`
 * asked for exactly this supervisor and said go; the process then goes on as that supervisor.
 * Exits the process instead when another spare answers there already, when the socket cannot be
 * made, after `lingerMs`, on `{"op":"exit"}`, or when a request does not match (this spare is of
 * no use then).
 */
export async function waitAsSpare(o: SpareOptions): Promise<void> {
  const stamp = codeStamp();
  await o.preload().catch(() => {});
  const code = watchCode(stamp);
  const self = { argv: o.argv, cwd: Deno.cwd(), env: Deno.env.toObject(), dir: o.dir };
  const path = spareSocketPath(o.dir);
  // one spare per project: one that answers keeps its place
  const there = await jsonlRequest(path, { op: "ping" }, { replyTimeoutMs: 1000 }).catch(() =>
    null
  );
  if (there !== null) Deno.exit(0);
  let sock: UnixListen;
  try {
    // (bound beside the path and renamed there: closing it never removes another spare's socket)
    sock = listenUnix(path);
  } catch {
    return Deno.exit(0);
  }
  const listener = sock.listener;
  const unlink = () => sock.unlinkIfOwn();
  const leave = (why: string): never => {
    unlink();
    trace(`spare: leaves (${why})`);
    return Deno.exit(0);
  };
  // (Node's timers here, not src/sys/timer.ts's: their first use costs ~14 ms, paid while idle
  // rather than by the session this spare may become)
  const timer = setTimeout(() => leave("lingered"), o.lingerMs);
  // the project's .hd/ removed (a deleted project, a test's directory), or the socket replaced:
  // nothing can reach this spare any more
  let dirWatch: Deno.FsWatcher | null = null;
  try {
    dirWatch = Deno.watchFs(`${o.dir}/.hd`, { recursive: false });
    const w = dirWatch;
    (async () => {
      try {
        for await (const ev of w) {
          if (ev.kind !== "access" && !sock.owns()) leave("its socket is gone");
        }
      } catch { /* closed */ }
    })();
  } catch { /* the poll below still sees it */ }
  // and a poll, should an event be missed
  const poll = setInterval(() => {
    if (!sock.owns()) leave("its socket is gone");
  }, 2000);
  if (!sock.owns()) leave("its socket is gone");
  trace("spare: waiting");
  // connections are served side by side (one that sends nothing holds up no other); one start
  // handshake at a time, and the first that says go is the one this spare goes on for
  let won: (c: Deno.Conn) => void = () => {};
  const taken = new Promise<Deno.Conn>((r) => won = r);
  const state = { busy: false, gone: false };
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        if (state.gone) {
          closeQuietly(conn);
          break;
        }
        serveOne(conn, self, code.state, state, leave).then((go) => {
          if (go) won(conn);
        }, () => closeQuietly(conn));
      }
    } catch { /* closed */ }
  })();
  held = await Promise.race([taken, accepting.then(() => null)]);
  if (held === null) leave("its socket closed");
  closeQuietly(listener);
  clearTimeout(timer);
  clearInterval(poll);
  closeQuietly(dirWatch);
  code.close();
  unlink();
  trace("spare: goes on as the supervisor");
}

/**
 * Answers one connection; true when it is the `hd up -d` this spare goes on for (`state.gone` is
 * set then: nothing else is answered).
 */
async function serveOne(
  conn: Deno.Conn,
  self: SpareSelf & { dir: string },
  code: () => CodeState,
  state: { busy: boolean; gone: boolean },
  leave: (why: string) => never,
): Promise<boolean> {
  const lines = new LineReader(conn, 1 << 20);
  const req = parseLine(await timed(lines.next(), 2000));
  trace(`spare: request ${String(req?.op)}`);
  const me = { pid: Deno.pid, startTime: procStartTime(Deno.pid) };
  const done = (v: unknown) => writeLine(conn, v).catch(() => {}).then(() => closeQuietly(conn));
  if (state.gone) {
    await done({ why: "taken" });
    return false;
  }
  if (req?.op === "ping") {
    await done(me);
    return false;
  }
  if (req?.op === "exit") {
    await done({ ok: true });
    leave("asked to exit");
  }
  if (req?.op !== "start") {
    await done({ error: "unknown request" });
    return false;
  }
  if (state.busy) {
    await done({ why: "busy with another hd up -d" });
    return false;
  }
  state.busy = true;
  const r = parseSpareRequest(req);
  await new Promise((r) => setTimeout(r, 0)); // the watcher's pending events first
  const v = r === null
    ? { why: "a malformed request" }
    : !sameLog(self.dir)
    ? { why: "its log file was moved or removed" }
    : spareDecision(self, r, code());
  if ("why" in v) {
    await done({ why: v.why });
    leave(`not of use: ${v.why}`);
  }
  let next: Record<string, unknown> | null = null;
  try {
    await writeLine(conn, { ready: true, ...me });
    next = parseLine(await timed(lines.next(), 2000));
  } catch { /* gone: as below */ }
  if (next?.op === "go") {
    state.gone = true;
    return true;
  }
  closeQuietly(conn);
  leave("the client went its own way"); // it starts its own supervisor
}

/**
 * In a supervisor that was a spare: tells the `hd up -d` it went on for that it exits with
 * `code` (what a spawned child's exit status says). Does nothing in any other process.
 */
export async function reportExit(code: number): Promise<void> {
  if (held === null) return;
  await writeLine(held, { exit: code }).catch(() => {});
}

/** A spare gone on as the supervisor, seen from the `hd up -d` that asked: as a spawned child. */
export interface SpareProcess {
  pid: number;
  /** Resolves when it exits, with the code it reported (1 when it reported none). */
  status: Promise<{ code: number }>;
  /** Signals it, while its pid still is that process (its start time checked). */
  kill(signal: Deno.Signal): void;
}

/**
 * In `hd up -d`: asks the project's spare (at `dir`) to go on as the supervisor `req` describes.
 * Resolves to it, or null when there is none, it does not match (it exits then), or it does not
 * answer within `timeoutMs`: the caller starts a supervisor itself.
 */
export async function askSpare(
  dir: string,
  req: SpareRequest,
  timeoutMs = 1000,
): Promise<SpareProcess | null> {
  let conn: Deno.UnixConn | null = null;
  try {
    conn = await timed(
      Deno.connect({ transport: "unix", path: spareSocketPath(dir) }),
      timeoutMs,
      closeQuietly,
    );
    if (conn === null) return null;
    trace("early: spare connected");
    await writeLine(conn, { op: "start", ...req });
    const lines = new LineReader(conn, 64 * 1024);
    const reply = parseLine(await timed(lines.next(), timeoutMs));
    const pid = reply?.pid;
    const startTime = reply?.startTime;
    if (
      reply?.ready !== true || typeof pid !== "number" || !Number.isSafeInteger(pid) || pid <= 1 ||
      typeof startTime !== "number" || procStartTime(pid) !== startTime
    ) {
      if (typeof reply?.why === "string") trace(`early: the spare declined (${reply.why})`);
      closeQuietly(conn);
      return null;
    }
    trace("early: spare ready");
    await writeLine(conn, { op: "go" });
    const c = conn;
    const status = (async () => {
      let code = 1;
      try {
        for (let l = await lines.next(); l !== null; l = await lines.next()) {
          const x = parseLine(l)?.exit;
          if (typeof x === "number" && Number.isSafeInteger(x)) code = x;
        }
      } catch { /* closed */ }
      closeQuietly(c);
      return { code };
    })();
    c.unref();
    return {
      pid,
      status,
      kill(signal) {
        if (procStartTime(pid) === startTime) Deno.kill(pid, signal);
      },
    };
  } catch {
    closeQuietly(conn);
    return null;
  }
}

/** Asks the project's spare (at `dir`) to exit; true when one answered. */
export async function stopSpare(dir: string): Promise<boolean> {
  if (!trustedSpareSocket(dir)) return false;
  const r = await jsonlRequest(spareSocketPath(dir), { op: "exit" }, { replyTimeoutMs: 2000 })
    .catch(() => null) as { ok?: unknown } | null;
  return r?.ok === true;
}

/**
 * Host processes in their own process group: spawn a shell command as a session leader (via
 * util-linux `setsid`), signal the whole group, list its members, and identify a pid across reuse
 * by its start time in /proc.
 *
 * @example
 * ```ts
 * import { spawnGroup, stopGroup } from "./process.ts";
 * const p = spawnGroup("sleep 5 & sleep 5", { cwd: "/tmp", env: {} });
 * await stopGroup(p.pid, p.status, 2000);
 * ```
 * @module
 */

/** A spawned process group: its leader's pid (= pgid) and its streams. */
export interface GroupProcess {
  pid: number;
  /** Start time of the leader (clock ticks since boot, /proc/<pid>/stat field 22). */
  startTime: number | null;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  /** Resolves when the leader exits. */
  status: Promise<Deno.CommandStatus>;
  /** The leader's identity now (what `.hd/up.json` records; see {@link signalDecision}). */
  record(): ProcRecord;
}

const SHELL_WORDS = new Set(
  ("exec cd export set unset exit return eval trap wait read shift source . : alias ulimit umask " +
    "if for while until case time command builtin local readonly type hash getopts").split(" "),
);

/** Runs `sh -c command` as the leader of a new session and process group. */
export function spawnGroup(
  command: string,
  opts: { cwd: string; env: Record<string, string> },
): GroupProcess {
  // a simple command replaces the shell (one process less to start and to signal)
  const simple = /^[^;&|\n`()<>$*?{}\[\]#'"\\]+$/.test(command.trim()) &&
    !SHELL_WORDS.has(command.trim().split(/\s+/)[0]) && !/^\w+=/.test(command.trim());
  const guard = guardian(); // started before the first group: it must outlive hd
  // the command starts only once hd has registered its group with the guardian (a line on its
  // stdin, then EOF as with /dev/null): a SIGKILL of hd at any moment leaves nothing behind
  const script = simple ? `exec ${command.trim()}` : command;
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", `read -r _ || :\n${script}`],
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const startTime = procStartTime(child.pid);
  if (startTime !== null) guard.add(child.pid, startTime);
  const go = child.stdin.getWriter();
  go.write(new TextEncoder().encode("go\n")).finally(() => go.close()).catch(() => {});
  const status = child.status.then((st) => (guard.remove(child.pid), st));
  return {
    pid: child.pid,
    startTime,
    stdout: child.stdout,
    stderr: child.stderr,
    status,
    record: () => recordOf(child.pid),
  };
}

/**
 * The guardian: one `sh` per hd process that spawned groups. hd appends `+ PGID STARTTIME` and
 * `- PGID` lines to a file in a private temp directory (synchronously, right after each spawn and
 * exit), and holds the guardian's stdin open without writing. When the pipe closes — hd exited, or
 * was killed with SIGKILL and could stop nothing — the guardian SIGKILLs every group still
 * registered whose leader is still that process (same start time, still leading its group and
 * session), removes the file and exits. It ignores the terminal's signals so that a Ctrl-C or a
 * hang-up reaches hd first. The pipe is close-on-exec in hd: no service holds it open.
 */
const GUARD_SCRIPT = `trap '' INT HUP TERM QUIT PIPE
f="$1"
while read -r _; do :; done
g=""
while read -r op pg st; do
  case "$op" in
    +) g="$g $pg:$st" ;;
    -) n=""; for e in $g; do [ "\${e%%:*}" = "$pg" ] || n="$n $e"; done; g="$n" ;;
  esac
done < "$f"
for e in $g; do
  pg="\${e%%:*}"; st="\${e#*:}"
  [ "$pg" -gt 1 ] 2>/dev/null || continue
  s=""; { read -r s < "/proc/$pg/stat"; } 2>/dev/null || continue
  s="\${s##*) }"; set -- $s
  [ "$3" = "$pg" ] && [ "$4" = "$pg" ] && [ "\${20}" = "$st" ] && kill -9 -"$pg" 2>/dev/null
done
rm -f "$f"; rmdir "\${f%/*}" 2>/dev/null
exit 0`;

interface Guardian {
  add(pgid: number, startTime: number): void;
  remove(pgid: number): void;
}

let theGuardian: Guardian | null = null;
/** The guardian's stdin: held open (never written) until hd exits. */
let _guardianPipe: WritableStream<Uint8Array> | null = null;

function guardian(): Guardian {
  if (theGuardian) return theGuardian;
  let file: string | null = null;
  try {
    const dir = Deno.makeTempDirSync({ prefix: "hd-guard-" }); // 0700
    file = `${dir}/groups`;
    Deno.writeTextFileSync(file, "", { mode: 0o600 });
    const child = new Deno.Command("sh", {
      args: ["-c", GUARD_SCRIPT, "hd-guard", file],
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    _guardianPipe = child.stdin;
  } catch {
    file = null; // no sh or no /tmp: groups are only stopped by hd itself
  }
  const append = (line: string) => {
    if (file === null) return;
    try {
      Deno.writeTextFileSync(file, line + "\n", { append: true });
    } catch { /* the guardian is gone */ }
  };
  theGuardian = {
    add: (pgid, startTime) => append(`+ ${pgid} ${startTime}`),
    remove: (pgid) => append(`- ${pgid}`),
  };
  return theGuardian;
}

function statFields(pid: number): string[] | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return s.slice(s.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** Start time of `pid` in clock ticks since boot, or null when there is no such process. */
export function procStartTime(pid: number): number | null {
  const f = statFields(pid);
  return f ? Number(f[19]) : null;
}

/** True when `pid` exists, is not a zombie, and (when given) started at `startTime`. */
export function isAlive(pid: number, startTime?: number | null): boolean {
  const f = statFields(pid);
  if (!f || f[0] === "Z" || f[0] === "X") return false;
  return startTime == null || Number(f[19]) === startTime;
}

/** Pids of the live (non-zombie) processes whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const f = statFields(Number(e.name));
    if (f && Number(f[2]) === pgid && f[0] !== "Z" && f[0] !== "X") out.push(Number(e.name));
  }
  return out;
}

// ---- what hd may signal ----

/** What /proc says about a process now (the observed side of {@link signalDecision}). */
export interface ProcInfo {
  pid: number;
  /** State letter of /proc/PID/stat ("R", "S", "Z", …). */
  state: string;
  pgid: number;
  sid: number;
  /** Clock ticks since boot (field 22). */
  startTime: number;
  /** Target of /proc/PID/exe, or null when it cannot be read (another user's process). */
  exe: string | null;
  /** /proc/PID/comm. */
  comm: string;
}

/**
 * The identity hd records of a process it started (in `.hd/up.json`, or in memory): its pid, its
 * start time, its executable, and the boot it was started in.
 */
export interface ProcRecord {
  pid: number;
  startTime: number | null;
  /** /proc/PID/exe (or comm when exe was unreadable) when hd recorded it. */
  exe: string | null;
  /** /proc/sys/kernel/random/boot_id when hd recorded it. */
  bootId: string | null;
}

/** hd itself, which it never signals. */
export interface SelfInfo {
  pid: number;
  pgid: number;
  bootId: string | null;
}

/** The answer of {@link signalDecision}: whether to signal, and why (for messages and tests). */
export interface SignalVerdict {
  signal: boolean;
  why: string;
}

/**
 * Decides whether hd may signal the process (`target` "pid") or the process group led by it
 * (`target` "group") that `rec` describes, given what /proc shows now (`seen`, null when there is
 * no such process) and hd itself. Pure: every signal hd sends to a process named in a file goes
 * through it. The rules, in order:
 * - never pid or group <= 1 (kill(-1) is every process; 0 is hd's own group), nor hd's own pid or
 *   group;
 * - only what hd recorded itself in this boot: a start time and an executable, and the boot id of
 *   this boot (a state file shipped in a repository or left from before a reboot has none of it);
 * - only the same process: alive, same start time (pid not reused), same executable;
 * - for a group, only when the process still leads it (pgid = pid) and its session (hd starts
 *   every group with setsid).
 */
export function signalDecision(
  target: "pid" | "group",
  rec: ProcRecord,
  seen: ProcInfo | null,
  self: SelfInfo,
): SignalVerdict {
  const no = (why: string) => ({ signal: false, why });
  if (!Number.isSafeInteger(rec.pid) || rec.pid <= 1) {
    return no(`pid ${rec.pid} is never signalled`);
  }
  if (rec.pid === self.pid) return no("that is hd itself");
  if (target === "group" && rec.pid === self.pgid) return no("that is hd's own process group");
  const same = identity(rec, seen, self.bootId);
  if (same !== null || seen === null) return no(same ?? "it is gone");
  if (target === "group" && (seen.pgid !== rec.pid || seen.sid !== rec.pid)) {
    return no(`it no longer leads its process group and session`);
  }
  return { signal: true, why: "the process hd started" };
}

/** Why `seen` is not the process `rec` describes, or null when it is (see signalDecision). */
function identity(rec: ProcRecord, seen: ProcInfo | null, boot: string | null): string | null {
  if (rec.startTime === null) return "no start time was recorded";
  if (rec.exe === null || rec.exe === "") return "no executable was recorded";
  if (rec.bootId === null || boot === null || rec.bootId !== boot) {
    return "it was not recorded in this boot of this machine";
  }
  if (seen === null || seen.state === "Z" || seen.state === "X") return "it is gone";
  if (seen.pid !== rec.pid) return "/proc describes another pid";
  if (seen.startTime !== rec.startTime) {
    return `its pid was reused (started at ${seen.startTime}, not ${rec.startTime})`;
  }
  if (rec.exe !== seen.exe && rec.exe !== seen.comm) {
    return `it runs ${seen.exe ?? seen.comm}, not ${rec.exe}`;
  }
  return null;
}

/**
 * True when `seen` (from /proc) is the live process `rec` describes, recorded in this boot
 * (`boot`): same pid, start time and executable. Pure.
 */
export function sameProcess(rec: ProcRecord, seen: ProcInfo | null, boot: string | null): boolean {
  return identity(rec, seen, boot) === null;
}

/** What /proc says about `pid` now, or null when there is no such process. */
export function procInfo(pid: number): ProcInfo | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  let stat: string;
  let comm = "";
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  let exe: string | null = null;
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch { /* kernel thread, zombie, or not ours */ }
  return {
    pid,
    state: f[0],
    pgid: Number(f[2]),
    sid: Number(f[3]),
    startTime: Number(f[19]),
    exe,
    comm,
  };
}

let bootIdCache: string | null | undefined;

/** The id of this boot (/proc/sys/kernel/random/boot_id), or null when unavailable. */
export function bootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim() || null;
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

/** hd itself, for {@link signalDecision}. */
export function selfInfo(): SelfInfo {
  const f = statFields(Deno.pid);
  return { pid: Deno.pid, pgid: f ? Number(f[2]) : Deno.pid, bootId: bootId() };
}

/** The record of `pid` as it is now (what hd writes down about a process it started). */
export function recordOf(pid: number): ProcRecord {
  const p = procInfo(pid);
  return {
    pid,
    startTime: p?.startTime ?? null,
    exe: p ? p.exe ?? p.comm : null,
    bootId: bootId(),
  };
}

/**
 * Sends `signal` to the process or group that `rec` (read from a file: untrusted) describes, only
 * when {@link signalDecision} allows it. Returns the verdict; `signal` is false when refused or
 * when the process was gone by the time of the kill.
 */
export function signalRecorded(
  target: "pid" | "group",
  rec: ProcRecord,
  signal: Deno.Signal,
): SignalVerdict {
  const v = signalDecision(target, rec, procInfo(rec.pid), selfInfo());
  if (!v.signal) return v;
  const sent = rawKill(target === "group" ? -rec.pid : rec.pid, signal);
  return sent ? v : { signal: false, why: "it is gone" };
}

/**
 * The only call of `Deno.kill` for processes hd spawned (children it holds): refuses pid or group
 * <= 1 and hd's own pid and group whatever the caller passes.
 */
function rawKill(pidOrNegGroup: number, signal: Deno.Signal | 0): boolean {
  const n = Math.abs(pidOrNegGroup);
  if (!Number.isSafeInteger(pidOrNegGroup) || n <= 1 || n === Deno.pid) return false;
  if (pidOrNegGroup < 0 && n === selfInfo().pgid) return false;
  try {
    Deno.kill(pidOrNegGroup, signal as Deno.Signal);
    return true;
  } catch {
    return false;
  }
}

/** True when some process (possibly a zombie) is in group `pgid` (kill(-pgid, 0)). */
export function groupExists(pgid: number): boolean {
  return rawKill(-pgid, 0);
}

/**
 * Sends `signal` to every process of group `pgid`, a group hd spawned and holds (see
 * {@link spawnGroup}); false when the group is gone. Never signals pid or group <= 1 or hd's own.
 */
export function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  return rawKill(-pgid, signal);
}

/** Sends `signal` to `pid`, a child hd spawned and holds; same floor as {@link signalGroup}. */
export function signalChild(pid: number, signal: Deno.Signal): boolean {
  return rawKill(pid, signal);
}

function signalPid(pid: number, signal: Deno.Signal): boolean {
  return rawKill(pid, signal);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stops group `pgid`: SIGTERM to the group, waits up to `graceMs` for the leader to exit and the
 * group to empty, then SIGKILLs what is left. Resolves to "term" or "kill" (how it ended).
 */
export async function stopGroup(
  pgid: number,
  leaderExit: Promise<unknown> | null,
  graceMs: number,
): Promise<"term" | "kill" | "gone"> {
  // right after spawn the leader may not have called setsid() yet: then signal it alone
  if (!signalGroup(pgid, "SIGTERM") && !signalPid(pgid, "SIGTERM")) {
    if (leaderExit) await leaderExit;
    return "gone";
  }
  const deadline = performance.now() + graceMs;
  if (leaderExit) {
    // wait for the leader's exit itself (no polling), then for the rest of its group
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      leaderExit,
      new Promise((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
  }
  while (performance.now() < deadline) {
    // kill(0) is the fast check; the /proc scan tells zombies (never reaped here) from the living
    if (!groupExists(pgid) || groupMembers(pgid).length === 0) return "term";
    await sleep(5);
  }
  if (!signalGroup(pgid, "SIGKILL")) signalPid(pgid, "SIGKILL");
  if (leaderExit) await leaderExit;
  for (let i = 0; i < 100 && groupMembers(pgid).length > 0; i++) await sleep(10);
  return "kill";
}

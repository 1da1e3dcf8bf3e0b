/**
 * Process identity, liveness and the one guarded `kill`. hd names processes in files (`.hd/up.json`,
 * mount records, leases, container state) and must tell, from /proc, whether such a pid is still
 * the process it wrote down before signalling it or deleting what it owns. These answers once lived
 * in four modules with different meanings (one counted zombies as alive, one did not, one checked
 * the start time); here there is one reader of /proc/PID/stat, one liveness function whose zombie
 * rule is a required option, one pure signal decision with a table test, and the only call of
 * `Deno.kill` in hd ({@link guardedKill}), which refuses pid or group <= 1 and hd's own.
 *
 * @example
 * ```ts
 * import { isAlive, recordOf, signalRecorded } from "./proc.ts";
 * const rec = recordOf(Deno.pid); // what hd would write down about a process it started
 * console.log(isAlive(rec.pid, { zombies: "dead", startTime: rec.startTime })); // true
 * console.log(signalRecorded("pid", rec, "SIGTERM").why); // "that is hd itself": refused
 * ```
 * @module
 */

// ---- reading /proc ----

/**
 * The fields hd reads from /proc/PID/stat.
 *
 * @example
 * ```ts
 * import { type ProcStat, readStat } from "./proc.ts";
 * const s = readStat(Deno.pid);
 * const me: ProcStat | null = s === "gone" ? null : s;
 * ```
 */
export interface ProcStat {
  pid: number;
  /** Field 2 without its parentheses (the first 15 bytes of the executable's name). */
  comm: string;
  /** Field 3: "R", "S", "D", "Z" (zombie: exited, not yet reaped), "X" (dead), … */
  state: string;
  ppid: number;
  pgid: number;
  /** Session id. */
  sid: number;
  /** Field 22: clock ticks since boot. With the pid, it names a process across pid reuse. */
  startTime: number;
}

/**
 * Parses the text of /proc/PID/stat; null when it is not one. Pure. The comm field may hold
 * spaces and parentheses: the fields resume after its last ")".
 *
 * @example
 * ```ts
 * import { parseStat } from "./proc.ts";
 * const s = parseStat("42 (a) b) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0");
 * console.log(s?.comm, s?.state, s?.startTime); // "a) b" "S" 777
 * ```
 */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const f = text.slice(close + 2).trim().split(" ");
  const pid = Number(text.slice(0, open).trim());
  const nums = [pid, Number(f[1]), Number(f[2]), Number(f[3]), Number(f[19])];
  if (f.length < 20 || !/^[A-Za-z]$/.test(f[0]) || !nums.every(Number.isSafeInteger)) return null;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: f[0],
    ppid: nums[1],
    pgid: nums[2],
    sid: nums[3],
    startTime: nums[4],
  };
}

/** /proc/PID/stat of `pid`, or null when there is none (or it cannot be read). */
function statOf(pid: number): ProcStat | null {
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    return parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return null;
  }
}

/**
 * What /proc says about `pid` now: its stat; `"gone"` when /proc is there and has no such
 * process (an invalid pid is gone too); null when it cannot be told (no /proc, unreadable). A
 * zombie is still there: its state says so.
 *
 * @example
 * ```ts
 * import { readStat } from "./proc.ts";
 * const me = readStat(Deno.pid);
 * if (me !== null && me !== "gone") console.log(me.state, me.startTime);
 * console.log(readStat(-5)); // "gone"
 * ```
 */
export function readStat(pid: number): ProcStat | "gone" | null {
  const s = statOf(pid);
  if (s !== null) return s;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return null; // no /proc here: cannot tell
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return "gone";
  try {
    Deno.statSync(`/proc/${pid}`);
    return null; // there, but its stat did not parse
  } catch {
    return "gone";
  }
}

/**
 * Start time of `pid` in clock ticks since boot (/proc/PID/stat field 22), or null when there is
 * no such process.
 *
 * @example
 * ```ts
 * import { procStartTime } from "./proc.ts";
 * const t = procStartTime(Deno.pid); // a number; null for a pid that does not exist
 * ```
 */
export function procStartTime(pid: number): number | null {
  return statOf(pid)?.startTime ?? null;
}

/**
 * How {@link isAlive} counts a process; the zombie rule has no default, each caller says it.
 *
 * @example
 * ```ts
 * import type { AliveOptions } from "./proc.ts";
 * const serving: AliveOptions = { zombies: "dead" }; // does it still answer?
 * const owning: AliveOptions = { zombies: "alive" }; // may its leftovers be deleted? not yet
 * ```
 */
export interface AliveOptions {
  /**
   * How to count a zombie (exited, not yet reaped by its parent) and a process being torn down:
   * `"dead"` — it runs no more code (whether a server or a group member still works);
   * `"alive"` — its pid is still taken (whether what it owns may be deleted: the cautious answer).
   */
  zombies: "dead" | "alive";
  /** When given (not null), the process must also have started at this time: the pid not reused. */
  startTime?: number | null;
}

/**
 * True when process `pid` exists, counted as `opts` says (see {@link AliveOptions}). False for
 * pid <= 0, a fraction, and when /proc cannot be read.
 *
 * @example
 * ```ts
 * import { isAlive, procStartTime } from "./proc.ts";
 * console.log(isAlive(Deno.pid, { zombies: "dead", startTime: procStartTime(Deno.pid) })); // true
 * console.log(isAlive(0, { zombies: "alive" })); // false
 * ```
 */
export function isAlive(pid: number, opts: AliveOptions): boolean {
  const s = statOf(pid);
  if (s === null) return false;
  if (opts.zombies === "dead" && (s.state === "Z" || s.state === "X")) return false;
  return opts.startTime == null || s.startTime === opts.startTime;
}

/**
 * Pids of the live (non-zombie) processes whose process group is `pgid`.
 *
 * @example
 * ```ts
 * import { groupMembers } from "./proc.ts";
 * const pids = groupMembers(4242); // [] once the group is gone
 * ```
 */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const s = statOf(Number(e.name));
    if (s && s.pgid === pgid && s.state !== "Z" && s.state !== "X") out.push(s.pid);
  }
  return out;
}

/**
 * True when process group `pgid` has a process, counted as `opts.zombies` says: `"alive"` asks the
 * kernel (kill(-pgid, 0): a zombie member counts), `"dead"` also needs a live member in /proc.
 * False for a group {@link guardedKill} refuses (<= 1, hd's own).
 *
 * @example
 * ```ts
 * import { groupAlive } from "./proc.ts";
 * console.log(groupAlive(1, { zombies: "alive" })); // false: group 1 is never probed
 * ```
 */
export function groupAlive(pgid: number, opts: { zombies: "dead" | "alive" }): boolean {
  if (!guardedKill(-pgid, 0)) return false; // the fast check first
  return opts.zombies === "alive" || groupMembers(pgid).length > 0;
}

/**
 * The pids of the children of `pid` (its main thread's, /proc/PID/task/PID/children); empty when
 * it has none or is gone.
 *
 * @example
 * ```ts
 * import { procChildren } from "./proc.ts";
 * const kids = procChildren(Deno.pid);
 * ```
 */
export function procChildren(pid: number): number[] {
  if (!Number.isSafeInteger(pid) || pid <= 0) return [];
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
    return text ? text.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

// ---- identity ----

/**
 * What /proc says about a process now (the observed side of {@link signalDecision}).
 *
 * @example
 * ```ts
 * import { type ProcInfo, procInfo } from "./proc.ts";
 * const seen: ProcInfo | null = procInfo(Deno.pid);
 * ```
 */
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
 *
 * @example
 * ```ts
 * import type { ProcRecord } from "./proc.ts";
 * const rec: ProcRecord = { pid: 4242, startTime: 777, exe: "/usr/bin/sleep", bootId: "b" };
 * ```
 */
export interface ProcRecord {
  pid: number;
  startTime: number | null;
  /** /proc/PID/exe (or comm when exe was unreadable) when hd recorded it. */
  exe: string | null;
  /** /proc/sys/kernel/random/boot_id when hd recorded it. */
  bootId: string | null;
}

/**
 * hd itself, which it never signals.
 *
 * @example
 * ```ts
 * import { type SelfInfo, selfInfo } from "./proc.ts";
 * const self: SelfInfo = selfInfo();
 * ```
 */
export interface SelfInfo {
  pid: number;
  pgid: number;
  bootId: string | null;
}

/**
 * What /proc says about `pid` now, or null when there is no such process.
 *
 * @example
 * ```ts
 * import { procInfo } from "./proc.ts";
 * console.log(procInfo(Deno.pid)?.exe === Deno.execPath()); // true
 * ```
 */
export function procInfo(pid: number): ProcInfo | null {
  const s = statOf(pid);
  if (s === null) return null;
  let exe: string | null = null;
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch { /* kernel thread, zombie, or not ours */ }
  return {
    pid,
    state: s.state,
    pgid: s.pgid,
    sid: s.sid,
    startTime: s.startTime,
    exe,
    comm: s.comm,
  };
}

let bootIdCache: string | null | undefined;

/**
 * The id of this boot (/proc/sys/kernel/random/boot_id), or null when unavailable. A pid and a
 * start time name a process only within one boot.
 *
 * @example
 * ```ts
 * import { bootId } from "./proc.ts";
 * const boot = bootId(); // "0f3c…" (the same for the whole life of this process)
 * ```
 */
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

/**
 * hd itself, for {@link signalDecision}.
 *
 * @example
 * ```ts
 * import { selfInfo } from "./proc.ts";
 * console.log(selfInfo().pid === Deno.pid); // true
 * ```
 */
export function selfInfo(): SelfInfo {
  return { pid: Deno.pid, pgid: statOf(Deno.pid)?.pgid ?? Deno.pid, bootId: bootId() };
}

/**
 * The record of `pid` as it is now (what hd writes down about a process it started).
 *
 * @example
 * ```ts
 * import { recordOf } from "./proc.ts";
 * const rec = recordOf(Deno.pid); // { pid, startTime, exe, bootId }
 * ```
 */
export function recordOf(pid: number): ProcRecord {
  const p = procInfo(pid);
  return {
    pid,
    startTime: p?.startTime ?? null,
    exe: p ? p.exe ?? p.comm : null,
    bootId: bootId(),
  };
}

// ---- what hd may signal ----

/**
 * The answer of {@link signalDecision}: whether to signal, and why (for messages and tests).
 *
 * @example
 * ```ts
 * import type { SignalVerdict } from "./proc.ts";
 * const refused: SignalVerdict = { signal: false, why: "its pid was reused" };
 * ```
 */
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
 *
 * @example
 * ```ts
 * import { signalDecision } from "./proc.ts";
 * const rec = { pid: 1, startTime: 5, exe: "/sbin/init", bootId: "b" };
 * const v = signalDecision("group", rec, null, { pid: 500, pgid: 500, bootId: "b" });
 * console.log(v); // { signal: false, why: "pid 1 is never signalled" }
 * ```
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
 *
 * @example
 * ```ts
 * import { bootId, procInfo, recordOf, sameProcess } from "./proc.ts";
 * console.log(sameProcess(recordOf(Deno.pid), procInfo(Deno.pid), bootId())); // true
 * ```
 */
export function sameProcess(rec: ProcRecord, seen: ProcInfo | null, boot: string | null): boolean {
  return identity(rec, seen, boot) === null;
}

/**
 * Sends `signal` to the process or group that `rec` (read from a file: untrusted) describes, only
 * when {@link signalDecision} allows it. Returns the verdict; `signal` is false when refused or
 * when the process was gone by the time of the kill.
 *
 * @example
 * ```ts
 * import { signalRecorded } from "./proc.ts";
 * const rec = { pid: 4242, startTime: null, exe: null, bootId: null }; // from a shipped file
 * console.log(signalRecorded("group", rec, "SIGKILL").signal); // false: nothing proves it is ours
 * ```
 */
export function signalRecorded(
  target: "pid" | "group",
  rec: ProcRecord,
  signal: Deno.Signal,
): SignalVerdict {
  const v = signalDecision(target, rec, procInfo(rec.pid), selfInfo());
  if (!v.signal) return v;
  const sent = guardedKill(target === "group" ? -rec.pid : rec.pid, signal);
  return sent ? v : { signal: false, why: "it is gone" };
}

/**
 * The only call of `Deno.kill` in hd: sends `signal` (0 only probes) to pid `pidOrNegGroup`, or to
 * the process group `-pidOrNegGroup` when negative. Refuses pid or group <= 1 (kill(-1) is every
 * process, kill(0) hd's own group), a fraction, hd's own pid and hd's own group, whatever the
 * caller passes. Returns true when the kernel accepted the signal; false when refused here, when
 * there is no such process, or when it is not ours to signal. It does not check who the process
 * is: for a pid read from a file, {@link signalRecorded} does.
 *
 * @example
 * ```ts
 * import { guardedKill } from "./proc.ts";
 * console.log(guardedKill(-1, "SIGKILL"), guardedKill(Deno.pid, "SIGTERM")); // false false
 * ```
 */
export function guardedKill(pidOrNegGroup: number, signal: Deno.Signal | 0): boolean {
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

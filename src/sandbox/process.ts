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
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", simple ? `exec ${command.trim()}` : command],
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return {
    pid: child.pid,
    startTime: procStartTime(child.pid),
    stdout: child.stdout,
    stderr: child.stderr,
    status: child.status,
  };
}

function statFields(pid: number): string[] | null {
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

/** True when some process (possibly a zombie) is in group `pgid` (kill(-pgid, 0)). */
export function groupExists(pgid: number): boolean {
  try {
    Deno.kill(-pgid, 0 as unknown as Deno.Signal);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to every process of group `pgid`; false when the group is gone. */
export function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function signalPid(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
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

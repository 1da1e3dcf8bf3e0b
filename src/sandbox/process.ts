/**
 * Host processes in their own process group: spawn a shell command as a session leader (via
 * util-linux `setsid`), signal the whole group and stop it. Reading /proc, identifying a pid across
 * reuse and the guarded kill itself live in src/sys/proc.ts.
 *
 * @example
 * ```ts
 * import { spawnGroup, stopGroup } from "./process.ts";
 * const p = spawnGroup("sleep 5 & sleep 5", { cwd: "/tmp", env: {} });
 * await stopGroup(p.pid, p.status, 2000);
 * ```
 * @module
 */
import {
  groupAlive,
  groupMembers,
  guardedKill,
  type ProcRecord,
  procStartTime,
  recordOf,
} from "../sys/proc.ts";

/** A spawned process group: its leader's pid (= pgid) and its streams. */
export interface GroupProcess {
  pid: number;
  /** Start time of the leader (clock ticks since boot, /proc/<pid>/stat field 22). */
  startTime: number | null;
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  /** Resolves when the leader exits. */
  status: Promise<Deno.CommandStatus>;
  /** The leader's identity now (what `.hd/up.json` records; see `signalDecision` in src/sys/proc.ts). */
  record(): ProcRecord;
  /**
   * Spawned with `hold`: writes the second line (`go`) on the group's stdin, then closes it — what
   * a warm standby waits for (src/services/warm.ts). Absent otherwise.
   */
  go?: () => void;
  /** Spawned with `hold`: closes its stdin without a go (a standby then exits). Absent otherwise. */
  release?: () => void;
}

const SHELL_WORDS = new Set(
  ("exec cd export set unset exit return eval trap wait read shift source . : alias ulimit umask " +
    "if for while until case time command builtin local readonly type hash getopts").split(" "),
);

/**
 * Runs `sh -c command` as the leader of a new session and process group. With `hold`, stdin stays
 * open after the first line until {@link GroupProcess.go} (a warm standby reads its go from it).
 */
export function spawnGroup(
  command: string,
  opts: { cwd: string; env: Record<string, string>; hold?: boolean },
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
  const line = new TextEncoder().encode("go\n");
  // registered: the first line now, not at the event loop's next turn (see writeStdinNow)
  const first = writeStdinNow(child.pid, line) ? Promise.resolve() : go.write(line);
  if (!opts.hold) first.finally(() => go.close()).catch(() => {});
  else first.catch(() => {});
  const status = child.status.then((st) => (guard.remove(child.pid), st));
  let held = opts.hold === true;
  const finish = (say: boolean) => {
    if (!held) return;
    held = false;
    (say ? go.write(line) : Promise.resolve()).finally(() => go.close()).catch(() => {});
  };
  return {
    pid: child.pid,
    startTime,
    stdout: child.stdout,
    stderr: child.stderr,
    status,
    record: () => recordOf(child.pid),
    ...(opts.hold ? { go: () => finish(true), release: () => finish(false) } : {}),
  };
}

/**
 * Writes `bytes` on the stdin pipe of hd's child `pid` at once, through `/proc/<pid>/fd/0` (opening
 * it opens the same pipe), instead of the child's stdin stream, whose first write waits for the
 * event loop's next turn: after a spawn hd goes on synchronously (the watcher, the next service,
 * the status it answers) and a service's command started only then — 10–45 ms after its spawn,
 * measured on `hd up -d` of examples/loop. False when it cannot (not a pipe there, /proc not
 * readable, the child gone): the caller writes through the stream then. Only for a child whose
 * stdin hd holds and which reads it before anything else (spawnGroup's script).
 */
export function writeStdinNow(pid: number, bytes: Uint8Array): boolean {
  const path = `/proc/${pid}/fd/0`;
  try {
    if (!Deno.statSync(path).isFifo) return false;
    using f = Deno.openSync(path, { write: true });
    return f.writeSync(bytes) === bytes.length;
  } catch {
    return false;
  }
}

/**
 * The guardian: one `sh` per hd process that spawned groups. hd appends `+ PGID STARTTIME` and
 * `- PGID` lines to a file in a private temp directory (synchronously, right after each spawn and
 * exit), and holds the guardian's stdin open without writing. When the pipe closes — hd exited, or
 * was killed with SIGKILL and could stop nothing — the guardian SIGKILLs every group still
 * registered whose leader is still that process (same start time, still leading its group and
 * session), removes the file and exits. It ignores the terminal's signals so that a Ctrl-C or a
 * hang-up reaches hd first. The pipe is close-on-exec in hd: no service holds it open. On its way
 * out it also removes the empty `hd-guard-*` directories of this user older than a minute: those
 * of hd processes killed between creating theirs and starting their guardian (an early supervisor
 * stopped at once by `hd up -d`, say); rmdir removes only empty directories.
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
rm -f "$f"; d="\${f%/*}"; rmdir "$d" 2>/dev/null
find "\${d%/*}" -maxdepth 1 -name 'hd-guard-*' -type d -uid "$(id -u)" -empty -mmin +1 \\
  -exec rmdir {} + 2>/dev/null
exit 0`;

interface Guardian {
  add(pgid: number, startTime: number): void;
  remove(pgid: number): void;
}

let theGuardian: Guardian | null = null;
/** The guardian's stdin: held open (never written) until hd exits. */
let _guardianPipe: WritableStream<Uint8Array> | null = null;

/**
 * Starts this process's guardian now rather than at the first {@link spawnGroup}: the first child
 * process of a Deno process also loads Deno's process module (~5 ms of the main thread, and ~3 ms
 * more for the first spawn), which the `hd up` supervisor pays while its modules load instead of
 * just before its first service starts (cli.ts). Idempotent. Where it cannot start (no sh, no
 * /tmp), groups are stopped by hd itself, as before.
 */
export function startGuardian(): void {
  guardian();
}

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

/**
 * Sends `signal` to every process of group `pgid`, a group hd spawned and holds (see
 * {@link spawnGroup}); false when the group is gone. Never signals pid or group <= 1 or hd's own.
 */
export function signalGroup(pgid: number, signal: Deno.Signal): boolean {
  return guardedKill(-pgid, signal);
}

/** Sends `signal` to `pid`, a child hd spawned and holds; same floor as {@link signalGroup}. */
export function signalChild(pid: number, signal: Deno.Signal): boolean {
  return guardedKill(pid, signal);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Stops group `pgid`: `signal` (SIGTERM unless the service names its own `stop_signal`) to the
 * group, waits up to `graceMs` for the leader to exit and the group to empty, then SIGKILLs what
 * is left. Resolves to "term" or "kill" (how it ended).
 */
export async function stopGroup(
  pgid: number,
  leaderExit: Promise<unknown> | null,
  graceMs: number,
  signal: Deno.Signal = "SIGTERM",
): Promise<"term" | "kill" | "gone"> {
  // right after spawn the leader may not have called setsid() yet: then signal it alone
  if (!signalGroup(pgid, signal) && !signalChild(pgid, signal)) {
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
    // zombies (never reaped here) do not count: the group is empty once only they are left
    if (!groupAlive(pgid, { zombies: "dead" })) return "term";
    await sleep(5);
  }
  if (!signalGroup(pgid, "SIGKILL")) signalChild(pgid, "SIGKILL");
  if (leaderExit) await leaderExit;
  for (let i = 0; i < 100 && groupMembers(pgid).length > 0; i++) await sleep(10);
  return "kill";
}

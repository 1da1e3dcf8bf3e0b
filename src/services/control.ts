/**
 * The control socket of a running `hd up`: a unix socket `.hd/control.sock` speaking JSON lines
 * (one request object per line, one response object per line), and the state file `.hd/up.json`
 * that names the supervisor's pid and start time so that a stale state (killed supervisor, pid
 * gone or reused) is detected and cleaned up.
 *
 * @example
 * ```ts
 * import { callControl, controlSocketPath, readUpState } from "./control.ts";
 * const st = readUpState("/proj");
 * if (st?.alive) console.log(await callControl(controlSocketPath("/proj"), { op: "status" }));
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import {
  lockHeld,
  lockPid,
  privateDir,
  readStateFile,
  refuseStateLink,
  writePrivateAtomic,
} from "../sys/fs.ts";
import { jsonlRequest, serveJsonl } from "../sys/jsonl.ts";
import {
  bootId,
  procInfo,
  type ProcRecord,
  recordOf,
  sameProcess,
  signalRecorded,
} from "../sys/proc.ts";

import type { GroupRecord } from "./supervisor.ts";

/**
 * Contents of `.hd/up.json`. Everything in it is untrusted when read back ({@link parseUpState}):
 * a repository can ship a `.hd/` of its own. The control socket's path is not in it: it is always
 * `.hd/control.sock` of the project.
 */
export interface UpState {
  pid: number;
  /** /proc start time of the supervisor, to detect pid reuse. */
  startTime: number;
  /** Its executable (deno or the compiled hd). */
  exe: string;
  /** The boot the state was written in (/proc/sys/kernel/random/boot_id). */
  bootId: string;
  dir: string;
  env: string;
  startedAt: number;
  detached: boolean;
  /** Process groups of running services (for cleanup after a killed supervisor). */
  groups: GroupRecord[];
}

/** Path of the state file of the project at `dir`. */
export function upStatePath(dir: string): string {
  return `${dir}/.hd/up.json`;
}

/** Path of the control socket of the project at `dir`. */
export function controlSocketPath(dir: string): string {
  return `${dir}/.hd/control.sock`;
}

/** Path of the lock held by a running `hd up` for its whole life. */
export function upLockPath(dir: string): string {
  return `${dir}/.hd/up.lock`;
}

/** Writes the state file atomically (0600 in a 0700 `.hd/`). */
export function writeUpState(dir: string, state: UpState): void {
  writePrivateAtomic(upStatePath(dir), JSON.stringify(state, null, 2));
}

/**
 * Writes the state file only if there is none (atomically, via a hard link): of two `hd up`
 * started at once, one wins. False when another state file is there.
 */
export function claimUpState(dir: string, state: UpState): boolean {
  privateDir(`${dir}/.hd`);
  const tmp = `${upStatePath(dir)}.${Deno.pid}.claim`;
  Deno.writeTextFileSync(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
  try {
    Deno.linkSync(tmp, upStatePath(dir));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* gone */ }
  }
}

const isInt = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min;

/**
 * Checks the JSON of a state file against the shape hd writes; throws an HdError naming `file`
 * and the first bad key. Extra keys are ignored; nothing of a failing file is used.
 */
export function parseUpState(text: string, file: string): UpState {
  const bad = (key: string, want: string, v?: unknown) =>
    new HdError(
      `Cannot read ${file}: ${key} must be ${want}${
        v === undefined ? " (missing)" : ` (found ${JSON.stringify(v)?.slice(0, 40)})`
      }`,
      "it is not a state hd wrote: it is ignored (`hd down` removes it)",
    );
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new HdError(
      `Cannot read ${file}: not valid JSON (${(e as Error).message})`,
      "it is ignored (`hd down` removes it)",
    );
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) {
    throw bad("the file", "an object", j);
  }
  const o = j as Record<string, unknown>;
  const int = (k: string, min: number) => {
    if (!isInt(o[k], min)) throw bad(k, `an integer >= ${min}`, o[k]);
    return o[k] as number;
  };
  const str = (k: string, obj = o, key = k) => {
    if (typeof obj[k] !== "string" || obj[k] === "") throw bad(key, "a non-empty string", obj[k]);
    return obj[k] as string;
  };
  if (typeof o.detached !== "boolean") throw bad("detached", "true or false", o.detached);
  if (!Array.isArray(o.groups)) throw bad("groups", "an array", o.groups);
  const state: UpState = {
    pid: int("pid", 2),
    startTime: int("startTime", 0),
    exe: str("exe"),
    bootId: str("bootId"),
    dir: str("dir"),
    env: str("env"),
    startedAt: int("startedAt", 0),
    detached: o.detached,
    groups: o.groups.map((g, i) => {
      const at = `groups[${i}]`;
      if (typeof g !== "object" || g === null) throw bad(at, "an object", g);
      const r = g as Record<string, unknown>;
      if (!isInt(r.pgid, 2)) throw bad(`${at}.pgid`, "an integer >= 2", r.pgid);
      if (!isInt(r.startTime, 0)) throw bad(`${at}.startTime`, "an integer >= 0", r.startTime);
      return {
        service: str("service", r, `${at}.service`),
        pgid: r.pgid,
        startTime: r.startTime,
        exe: str("exe", r, `${at}.exe`),
      };
    }),
  };
  return state;
}

/** The supervisor of a state as a {@link ProcRecord}. */
function supervisorRecord(state: UpState): ProcRecord {
  return { pid: state.pid, startTime: state.startTime, exe: state.exe, bootId: state.bootId };
}

/** What reading `.hd/up.json` found. */
export type UpRead =
  /** A valid state; `alive` when its supervisor is still that very process. */
  | { state: UpState; alive: boolean; invalid?: undefined }
  /** A file that is not a state hd wrote (the message names the file and key). */
  | { invalid: string; state?: undefined; alive?: undefined };

/** Reads and checks the state file; null when there is none. Never throws for its content. */
export function readUpState(dir: string): UpRead | null {
  let text: string;
  try {
    // untrusted (a cloned project may ship one): no symlink, FIFO or device, no more than 1 MiB
    const bytes = readStateFile(upStatePath(dir), 1 << 20);
    if (bytes === null) return null;
    text = new TextDecoder().decode(bytes);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    const m = (e as Error).message;
    return { invalid: m.startsWith("Cannot read") ? m : `Cannot read .hd/up.json: ${m}` };
  }
  try {
    const state = parseUpState(text, ".hd/up.json");
    return { state, alive: sameProcess(supervisorRecord(state), procInfo(state.pid), bootId()) };
  } catch (e) {
    return { invalid: (e as Error).message };
  }
}

/** The state of this process, ready to be written. */
export function selfState(dir: string, env: string, detached: boolean): UpState {
  const me = recordOf(Deno.pid);
  return {
    pid: Deno.pid,
    startTime: me.startTime ?? 0,
    exe: me.exe ?? "",
    bootId: me.bootId ?? "",
    dir,
    env,
    startedAt: Date.now(),
    detached,
    groups: [],
  };
}

/** What {@link cleanupStale} did with the groups of a state. */
export interface Cleanup {
  /** Services whose group was killed. */
  killed: string[];
  /** Services whose group was left alone, and why (not proven to be what hd started). */
  left: { service: string; why: string }[];
}

/**
 * Cleans up after a supervisor that is gone: kills the process groups of its services that are
 * provably still the ones it started ({@link signalRecorded}), removes the state file and socket.
 */
export function cleanupStale(dir: string, state: UpState): Cleanup {
  const out: Cleanup = { killed: [], left: [] };
  for (const g of state.groups) {
    const v = signalRecorded(
      "group",
      { pid: g.pgid, startTime: g.startTime, exe: g.exe, bootId: state.bootId },
      "SIGKILL",
    );
    if (v.signal) out.killed.push(g.service);
    else if (v.why !== "it is gone") out.left.push({ service: g.service, why: v.why });
  }
  removeUpState(dir);
  return out;
}

/** Removes the state file and the control socket. */
export function removeUpState(dir: string): void {
  for (const p of [upStatePath(dir), controlSocketPath(dir)]) {
    try {
      Deno.removeSync(p);
    } catch { /* gone */ }
  }
}

/**
 * Takes the lock of `hd up` for this project (`.hd/up.lock`, flock, exclusive, non-blocking) and
 * writes this pid in it. Held until the process exits (the kernel drops it even after SIGKILL).
 * Returns the open file (keep it), or the pid written by the holder (null when unreadable).
 */
export function acquireUpLock(dir: string): { file: Deno.FsFile } | { holder: number | null } {
  privateDir(`${dir}/.hd`);
  const path = upLockPath(dir);
  refuseStateLink(path); // a shipped .hd/up.lock → /etc/… would be truncated
  const f = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  if (!f.tryLockSync(true)) {
    f.close();
    return { holder: upLockHolder(dir) };
  }
  f.truncateSync(0);
  f.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
  return { file: f };
}

/** The pid written in `.hd/up.lock` (for messages only: never signalled), or null. */
export function upLockHolder(dir: string): number | null {
  return lockPid(upLockPath(dir));
}

/** True when some process holds the lock of `hd up` for this project (probe: taken and dropped). */
export function upLockHeld(dir: string): boolean {
  return lockHeld(upLockPath(dir));
}

/** A control request. */
export type ControlRequest =
  // with `after`: answered once the status's version differs from it (or after `waitMs`, at most
  // 1 s), so that `hd up -d` waits for its services without polling
  | { op: "status"; after?: number; waitMs?: number }
  | { op: "restart"; services: string[] }
  | { op: "down" }
  | { op: "ping" }
  | { op: "reconcile"; services: string[] } // `hd up -d` again: apply hd.toml, start these
  | { op: "start"; services: string[] }
  | { op: "stop"; services: string[] };

/**
 * Serves the control socket at `path` until the returned closer is called. Each request line is
 * answered by `handler`'s result (or `{error}` when it throws); the wire is src/sys/jsonl.ts's.
 */
export function serveControl(
  path: string,
  handler: (req: ControlRequest) => Promise<unknown>,
): { close(): void } {
  const server = serveJsonl(path, (req) => handler(req as ControlRequest));
  return { close: () => server.close() };
}

/**
 * Sends one request to the control socket at `path`; resolves to the response object. Throws an
 * HdError when the supervisor does not answer within `timeoutMs` (or at all).
 */
export async function callControl(
  path: string,
  req: ControlRequest,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  return await jsonlRequest(path, req, {
    replyTimeoutMs: timeoutMs,
    hint: "see .hd/logs/hd.log; `hd status` tells whether the supervisor still runs",
  }) as Record<string, unknown>;
}

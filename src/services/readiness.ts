/**
 * Port readiness that is the service's own: a service with a `port` is ready once one of ITS
 * processes holds a listening TCP socket on that port — a port held by another process never makes
 * it ready. The check opens no connection (a server never logs an aborted connection from it): the
 * LISTEN sockets of the service's network namespace — from the kernel's sock_diag netlink in hd's
 * own namespace (ffi/sockdiag.ts: tens of µs), else /proc/<pid>/net/tcp and tcp6 of a process of
 * the service (that process's namespace, so a service in its own namespace is seen in it) —
 * matched by socket inode against the descriptors in /proc/<pid>/fd of the service's processes.
 *
 * Which processes are the service's is a parameter ({@link WaitOptions.pids}); by default
 * {@link servicePids}: the group leader hd started, the members of its process group, and every
 * descendant (which covers a container's processes in their own pid namespace under runc).
 *
 * @example
 * ```ts
 * import { servicePids, waitForListener } from "./readiness.ts";
 * const leader = 1234;
 * const l = await waitForListener(8080, { pids: () => servicePids(leader), until: () => false });
 * ```
 * @module
 */

import { addressOf, listeningSockets } from "../../ffi/sockdiag.ts";
import { readStat } from "../sys/proc.ts";

/** A listening TCP socket from /proc/net/tcp or tcp6. */
export interface TcpListener {
  /** Local address as text ("127.0.0.1", "0.0.0.0", "::", "::1", …). */
  address: string;
  port: number;
  /** The socket's inode (what /proc/<pid>/fd/N links to as `socket:[INODE]`). */
  inode: number;
}

const LISTEN = "0A";

function v4(hex: string): string {
  // one 32-bit word in host (little-endian) order
  const b = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16)).reverse();
  return b.join(".");
}

function v6(hex: string): string {
  // four 32-bit words, each in host (little-endian) order
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 6; i >= 0; i -= 2) bytes.push(parseInt(word.slice(i, i + 2), 16));
  }
  return addressOf(10, new Uint8Array(bytes)); // AF_INET6: the one formatter (ffi/sockdiag.ts)
}

/**
 * The LISTEN sockets of a /proc/net/tcp or /proc/net/tcp6 text (header line and malformed lines
 * are skipped; sockets without an inode are not listed).
 */
export function parseProcNetTcp(text: string): TcpListener[] {
  const out: TcpListener[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]) || f[3] !== LISTEN) continue;
    const m = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(f[1]);
    const inode = Number(f[9]);
    if (!m || !Number.isSafeInteger(inode) || inode <= 0) continue;
    out.push({
      address: m[1].length === 8 ? v4(m[1]) : v6(m[1]),
      port: parseInt(m[2], 16),
      inode,
    });
  }
  return out;
}

/** The inode of a `/proc/<pid>/fd/N` link target `socket:[INODE]`, or null for anything else. */
export function socketInode(link: string): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}

/**
 * The listener on `port` that belongs to the service — one of `listeners` whose inode is among
 * the socket inodes its processes hold — or null. A listener on the port whose socket no process
 * of the service holds is another process's: it never counts.
 */
export function ownListener(
  listeners: readonly TcpListener[],
  port: number,
  inodes: ReadonlySet<number>,
): TcpListener | null {
  return listeners.find((l) => l.port === port && inodes.has(l.inode)) ?? null;
}

/** One process as {@link serviceTree} sees it (from /proc/<pid>/stat). */
export interface ProcLink {
  pid: number;
  ppid: number;
  pgid: number;
}

/**
 * The processes of the service whose group leader is `leader`: the leader, the members of its
 * process group, and the descendants of any of them (children that made their own group, a
 * container's processes under runc). Sorted. Nothing when the leader is not among `procs`.
 */
export function serviceTree(procs: readonly ProcLink[], leader: number): number[] {
  if (!procs.some((p) => p.pid === leader)) return [];
  const mine = new Set<number>([leader]);
  for (const p of procs) if (p.pgid === leader) mine.add(p.pid);
  const kids = new Map<number, number[]>();
  for (const p of procs) {
    if (p.pid === p.ppid) continue;
    kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), p.pid]);
  }
  const todo = [...mine];
  while (todo.length) {
    for (const c of kids.get(todo.pop()!) ?? []) {
      if (!mine.has(c)) (mine.add(c), todo.push(c));
    }
  }
  return [...mine].sort((a, b) => a - b);
}

/** Every live process's pid, parent and group, read from /proc/<pid>/stat. */
export function procLinks(): ProcLink[] {
  const out: ProcLink[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const st = readStat(Number(e.name)); // src/sys/proc.ts: the one /proc/<pid>/stat reader
    if (st === null || st === "gone" || st.state === "Z" || st.state === "X") continue;
    out.push({ pid: st.pid, ppid: st.ppid, pgid: st.pgid });
  }
  return out;
}

/** The processes of the service led by `leader` now ({@link serviceTree} over /proc). */
export function servicePids(leader: number): number[] {
  return serviceTree(procLinks(), leader);
}

/**
 * `leader` and its descendants, followed through `/proc/<pid>/task/<tid>/children` (a few reads,
 * where {@link procLinks} reads every process on the machine); sorted. Not the members of its
 * group that are no descendants (reparented): {@link servicePids} has those. Null when the
 * children files cannot be read (a kernel without CONFIG_PROC_CHILDREN); [] when the leader is
 * gone.
 */
export function descendantPids(leader: number): number[] | null {
  const seen = new Set<number>();
  const todo = [leader];
  while (todo.length) {
    const pid = todo.pop()!;
    if (seen.has(pid)) continue;
    let tasks: Deno.DirEntry[];
    try {
      tasks = [...Deno.readDirSync(`/proc/${pid}/task`)];
    } catch {
      if (pid === leader) return [];
      continue; // gone meanwhile
    }
    seen.add(pid);
    for (const t of tasks) {
      let text: string;
      try {
        text = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`);
      } catch {
        // a thread that ended meanwhile, or a kernel without the file (its main thread is there)
        if (t.name === String(pid) && exists(`/proc/${pid}/task/${t.name}`)) return null;
        continue;
      }
      for (const c of text.split(" ")) if (c.trim()) todo.push(Number(c));
    }
  }
  return [...seen].sort((a, b) => a - b);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readLink(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return null;
  }
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/**
 * The LISTEN socket on `port` that one of `pids` holds, or null. Reads each pid's descriptors and,
 * once per network namespace among them, that namespace's tcp and tcp6 tables.
 */
export function listenerOf(port: number, pids: readonly number[]): TcpListener | null {
  const inodes = new Set<number>();
  const netns = new Map<string, number>(); // namespace → a pid in it
  for (const pid of pids) {
    let fds: Iterable<Deno.DirEntry>;
    try {
      fds = [...Deno.readDirSync(`/proc/${pid}/fd`)];
    } catch {
      continue; // gone
    }
    let held = false;
    for (const fd of fds) {
      const ino = socketInode(readLink(`/proc/${pid}/fd/${fd.name}`) ?? "");
      if (ino !== null) (inodes.add(ino), held = true);
    }
    const ns = held ? readLink(`/proc/${pid}/ns/net`) : null;
    if (ns !== null && !netns.has(ns)) netns.set(ns, pid);
  }
  if (inodes.size === 0) return null;
  const own = readLink("/proc/self/ns/net");
  for (const [ns, pid] of netns) {
    // hd's own namespace: ask the kernel for its listening sockets only (sock_diag, µs); another
    // namespace (a sandboxed service's): that namespace's tables in /proc
    const fast = ns === own ? listeningSockets() : null;
    if (fast) {
      const l = ownListener(fast, port, inodes);
      if (l) return l;
      continue;
    }
    for (const table of ["tcp", "tcp6"]) {
      const own = ownListener(parseProcNetTcp(readText(`/proc/${pid}/net/${table}`)), port, inodes);
      if (own) return own;
    }
  }
  return null;
}

/**
 * The LISTEN sockets on `port` in hd's own network namespace, whoever holds them (no connection
 * is made). Used to warn that another process holds a service's port.
 */
export function listenersOnPort(port: number): TcpListener[] {
  // sock_diag answers in µs; the /proc tables cost ms each (`hd up` asks once per service)
  const fast = listeningSockets();
  if (fast) return fast.filter((l) => l.port === port);
  return ["tcp", "tcp6"].flatMap((t) =>
    parseProcNetTcp(readText(`/proc/self/net/${t}`)).filter((l) => l.port === port)
  );
}

/** Options of {@link waitForListener}. */
export interface WaitOptions {
  /** The service's processes now (e.g. `() => servicePids(leader)`). */
  pids: () => readonly number[];
  /** Give up (false) once this says so, e.g. the process exited or was stopped. */
  until: () => boolean;
  /** Poll interval (default {@link pollInterval}). */
  intervalMs?: number;
  /**
   * The service's group leader, when `pids` is `servicePids(leader)`: most polls then look at
   * the leader and its descendants only ({@link descendantPids}, a few reads), and the whole tree
   * (`pids`, a read of every process on the machine: ~2 ms with 130 processes) every
   * {@link TREE_EVERY_MS}, for a reparented member of its group.
   */
  leader?: number;
}

/** How often {@link waitForListener} reads the whole process tree when it knows the leader. */
export const TREE_EVERY_MS = 50;

/**
 * Time between readiness polls `elapsedMs` after the start: 10 ms for the first 300 ms, 25 ms
 * until 2 s, 50 ms until 10 s, then 250 ms. A poll reads the service's descriptors and, once it
 * holds sockets, its namespace's listening sockets (≈ 0.1 ms by sock_diag; 2–5 ms through /proc
 * tables with a few hundred sockets on the machine, the kernel printing every one), so a service
 * that never listens costs little.
 */
export function pollInterval(elapsedMs: number): number {
  return elapsedMs < 300 ? 10 : elapsedMs < 2000 ? 25 : elapsedMs < 10_000 ? 50 : 250;
}

/** Time between the quick polls of the first {@link QUICK_UNTIL_MS} (see {@link pollPlan}). */
export const QUICK_POLL_MS = 2;
/** How long after the start {@link waitForListener} polls every {@link QUICK_POLL_MS}. */
export const QUICK_UNTIL_MS = 300;

/**
 * One step of {@link waitForListener}'s schedule (pure): whether to run the full check now (read
 * the service's descriptors and match them against the listening sockets), and how long to sleep
 * after. `anyListener` is whether anything at all listens on the port in hd's own namespace (one
 * sock_diag query, tens of µs), or null where that cannot be asked. The full check keeps
 * {@link pollInterval}'s schedule; in the first {@link QUICK_UNTIL_MS}, the cheap query runs every
 * {@link QUICK_POLL_MS} in between and brings the full check forward once a socket listens on the
 * port, so a service is seen ready within ~2 ms of its listen() rather than up to 10 ms. It only
 * adds full checks: a service whose socket is in another namespace is seen as before.
 */
export function pollPlan(
  elapsedMs: number,
  sinceFullMs: number,
  anyListener: boolean | null,
): { full: boolean; sleepMs: number } {
  const interval = pollInterval(elapsedMs);
  if (anyListener === null) return { full: true, sleepMs: interval };
  const full = anyListener || sinceFullMs >= interval;
  return { full, sleepMs: elapsedMs < QUICK_UNTIL_MS ? QUICK_POLL_MS : interval };
}

/** Whether a socket listens on `port` in hd's own namespace; null when sock_diag cannot say. */
function anyListenerOn(port: number): boolean | null {
  const all = listeningSockets();
  return all === null ? null : all.some((l) => l.port === port);
}

/**
 * Polls until one of the service's processes listens on `port` (the listener) or `until()` says
 * to give up (null), on {@link pollPlan}'s schedule (`intervalMs`: a fixed one instead).
 */
export async function waitForListener(
  port: number,
  opts: WaitOptions,
): Promise<TcpListener | null> {
  const t0 = performance.now();
  let lastTree = -Infinity;
  let lastFull = -Infinity;
  while (!opts.until()) {
    const now = performance.now();
    const plan = opts.intervalMs !== undefined
      ? { full: true, sleepMs: opts.intervalMs }
      : pollPlan(now - t0, now - lastFull, now - t0 < QUICK_UNTIL_MS ? anyListenerOn(port) : null);
    if (plan.full) {
      lastFull = now;
      const near = opts.leader !== undefined && now - lastTree < TREE_EVERY_MS
        ? descendantPids(opts.leader)
        : null;
      if (near === null) lastTree = now;
      const l = listenerOf(port, near ?? opts.pids());
      if (l) return l;
    }
    await new Promise((r) => setTimeout(r, plan.sleepMs));
  }
  return null;
}

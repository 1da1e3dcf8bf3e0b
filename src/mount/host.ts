/**
 * The store's mount server, seen from its clients: where its socket and lock are, what a mount
 * request says, whether a server may take one ({@link admits}), how long an idle server lingers
 * ({@link parseLinger}), and the client ({@link askMountServer}). Kept free of heavy imports:
 * `hd mount` asks the server before its own modules have loaded.
 *
 * A background mount server (the process `hd mount` spawns) takes the store's lock
 * `<store>/mounts/server.lock` and listens on `<store>/mounts/server.sock`; later `hd mount`s of
 * the same store, and the layers of lazy environments, ask it over that socket instead of
 * starting a Deno process each. It serves every mount it is given in one process, each with its
 * own FUSE session, registry record and control socket, and exits when it has served none for
 * `HD_MOUNT_LINGER` seconds (default {@link DEFAULT_LINGER_S}; 0: at once). A server that finds
 * the lock taken serves only the mount it was started for. src/mount/host_server.ts is the
 * server side.
 *
 * @example
 * ```ts
 * import { askMountServer, mountServerSocket } from "./host.ts";
 * const store = "/tmp/store";
 * console.log(mountServerSocket(store)); // "/tmp/store/mounts/server.sock"
 * const r = await askMountServer(store, {
 *   op: "mount", ref: "trees/demo", dir: "/mnt/demo", rw: false, layers: false, log: null,
 *   mntns: null, uid: null,
 * });
 * if (r === null) console.log("no server: start one");
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { jsonlRequest } from "../sys/jsonl.ts";
import { lockHeld, lockPid } from "../sys/fs.ts";

/** Seconds an idle mount server waits for another mount before it exits, unless told otherwise. */
export const DEFAULT_LINGER_S = 120;

/** A request to mount (the server resolves `ref` in its store). */
export interface MountRequest {
  op: "mount";
  /** A Dir node id, a unique prefix, or a ref. */
  ref: string;
  /** The absolute mount directory. */
  dir: string;
  rw: boolean;
  /** Serve whiteouts as overlayfs reads them (`--layers`). */
  layers: boolean;
  /** An absolute log file, or null for the registry's `<key>.log`. */
  log: string | null;
  /** The client's mount namespace (`readlink /proc/self/ns/mnt`), or null when unknown. */
  mntns: string | null;
  /** The client's uid, or null when unknown. */
  uid: number | null;
}

/** What a server answers a {@link MountRequest}. */
export type MountReply =
  /** Mounted and serving, by process `pid`. */
  | { served: { pid: number; root: string; dir: string; log: string | null } }
  /** The server cannot take it (exiting, another namespace): the client starts its own. */
  | { retry: string }
  /** The request fails (a bad ref, a busy directory): said as hd says any error. */
  | { error: string; hint?: string };

/** The socket of `storeRoot`'s mount server (under /tmp when the store's path is too long). */
export function mountServerSocket(storeRoot: string, uid = Deno.uid() ?? 0): string {
  const p = `${storeRoot}/mounts/server.sock`;
  if (p.length < 100) return p;
  // FNV-1a 64 of the store's path: short, and no hashing module on the early path
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(storeRoot)) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `/tmp/hd-${uid}-mounts-${h.toString(16).padStart(16, "0")}.sock`;
}

/** The lock a mount server holds while it serves `storeRoot`'s socket. */
export function mountServerLock(storeRoot: string): string {
  return `${storeRoot}/mounts/server.lock`;
}

/** How to set `HD_MOUNT_LINGER` (the hint of `hd mount`'s refusal of a value parseLinger rejects). */
export const LINGER_HINT =
  "set HD_MOUNT_LINGER to whole seconds (e.g. 120; 0: the mount server exits with its last mount), or unset it";

/**
 * How long an idle server lingers, in ms, from `HD_MOUNT_LINGER` (whole seconds, 0–86400): the
 * default when unset; `error` says why a value was not taken (the default is used then). `hd mount`
 * refuses such a value before it starts or asks a server ({@link LINGER_HINT}); a server started
 * some other way (a lazy environment's layers) logs the reason and lingers the default.
 *
 * @example
 * ```ts
 * import { parseLinger } from "./host.ts";
 * parseLinger("0"); // { ms: 0 }
 * parseLinger("soon"); // { ms: 120000, error: "…" }
 * ```
 */
export function parseLinger(value: string | undefined): { ms: number; error?: string } {
  const def = DEFAULT_LINGER_S * 1000;
  if (value === undefined || value === "") return { ms: def };
  if (!/^\d{1,5}$/.test(value) || Number(value) > 86400) {
    return {
      ms: def,
      error: `HD_MOUNT_LINGER=${JSON.stringify(value).slice(0, 40)} is not a number of seconds ` +
        `from 0 to 86400`,
    };
  }
  return { ms: Number(value) * 1000 };
}

/** What a server knows about itself when a request comes. */
export interface ServerState {
  /** It has begun to exit (its last mount ended and its linger ran out, or it was told to stop). */
  exiting: boolean;
  /** Its mount namespace, or null when unknown. */
  mntns: string | null;
  /** Its uid. */
  uid: number;
}

/**
 * Whether a server takes a mount request, or why the client must start a server of its own: a
 * mount made in another mount namespace would not be seen by the client, and a server of another
 * user must not mount for it (the socket is 0600, this is a second guard), and a writable mount
 * keeps its writes in memory and holds the thread while it snapshots: it is served alone.
 *
 * @example
 * ```ts
 * import { admits } from "./host.ts";
 * admits({ exiting: false, mntns: "mnt:[1]", uid: 0 }, { mntns: "mnt:[2]", uid: 0, rw: false });
 * // { retry: "the client is in another mount namespace" }
 * ```
 */
export function admits(
  server: ServerState,
  req: Pick<MountRequest, "mntns" | "uid" | "rw">,
): { ok: true } | { retry: string } {
  if (server.exiting) return { retry: "the mount server is exiting" };
  // its writes live in its process's memory until `hd snapshot`, and a snapshot holds the JS
  // thread for as long as it ingests: neither is shared with other mounts
  if (req.rw) return { retry: "a writable mount gets a process of its own" };
  if (req.uid !== server.uid) return { retry: "the client runs as another user" };
  if (req.mntns === null || server.mntns === null) {
    return { retry: "the mount namespace is unknown" };
  }
  if (req.mntns !== server.mntns) return { retry: "the client is in another mount namespace" };
  return { ok: true };
}

/**
 * The mount of `mounts` (absolute directories) that `path` (absolute, symlinks resolved) is or
 * lies inside, or null. A server must not touch such a path with a blocking call: the kernel
 * would ask the server itself, whose thread is the one waiting (a deadlock), so it sends the
 * client to start a server of its own.
 *
 * @example
 * ```ts
 * import { insideMount } from "./host.ts";
 * insideMount("/mnt/a/sub", ["/mnt/a"]); // "/mnt/a"
 * insideMount("/mnt/ab", ["/mnt/a"]); // null
 * ```
 */
export function insideMount(path: string, mounts: Iterable<string>): string | null {
  for (const m of mounts) {
    if (path === m || path.startsWith(m === "/" ? "/" : `${m}/`)) return m;
  }
  return null;
}

/** This process's mount namespace (`mnt:[4026531841]`), or null where /proc does not say. */
export function ownMountNamespace(): string | null {
  try {
    return Deno.readLinkSync("/proc/self/ns/mnt");
  } catch {
    return null;
  }
}

/**
 * The checks of a mount request read off the wire (another hd process of this user sent it, but
 * a line is a line): the request, or what is wrong with it.
 */
export function parseMountRequest(v: unknown): MountRequest | { invalid: string } {
  const r = v as Record<string, unknown>;
  if (typeof r !== "object" || r === null || r.op !== "mount") return { invalid: "not a mount" };
  if (typeof r.ref !== "string" || !r.ref || r.ref.length > 4096) return { invalid: "ref" };
  const abs = (p: unknown) => typeof p === "string" && p.startsWith("/") && p.length < 4096;
  if (!abs(r.dir)) return { invalid: "dir must be an absolute path" };
  if (r.log !== null && !abs(r.log)) return { invalid: "log must be null or an absolute path" };
  if (typeof r.rw !== "boolean" || typeof r.layers !== "boolean") return { invalid: "flags" };
  if (r.mntns !== null && typeof r.mntns !== "string") return { invalid: "mntns" };
  if (r.uid !== null && !Number.isInteger(r.uid)) return { invalid: "uid" };
  return {
    op: "mount",
    ref: r.ref,
    dir: r.dir as string,
    rw: r.rw,
    layers: r.layers,
    log: r.log as string | null,
    mntns: r.mntns as string | null,
    uid: r.uid as number | null,
  };
}

/** A request with this process's uid and mount namespace filled in. */
export function mountRequest(
  ref: string,
  dir: string,
  opts: { rw?: boolean; layers?: boolean; log?: string | null } = {},
): MountRequest {
  return {
    op: "mount",
    ref,
    dir,
    rw: !!opts.rw,
    layers: !!opts.layers,
    log: opts.log ?? null,
    mntns: ownMountNamespace(),
    uid: Deno.uid(),
  };
}

/** The pid a mount server wrote in the store's lock (for messages only: never signalled). */
function lockHolder(storeRoot: string): number | null {
  return lockPid(mountServerLock(storeRoot));
}

/**
 * True when no process holds `storeRoot`'s mount-server lock, or none does within `waitMs` (a
 * server on its way out releases it as it ends).
 */
export async function lockFreed(storeRoot: string, waitMs = 500): Promise<boolean> {
  const until = performance.now() + waitMs;
  for (;;) {
    try {
      if (!lockHeld(mountServerLock(storeRoot))) return true;
    } catch {
      return false; // cannot tell: say nothing was freed
    }
    if (performance.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True when `path` is a socket owned by this user (a server of this user may listen there). */
function ownSocket(path: string): boolean {
  try {
    const st = Deno.lstatSync(path);
    return st.isSocket === true && st.uid === Deno.uid();
  } catch {
    return false;
  }
}

/**
 * Asks `storeRoot`'s mount server to mount: what it served, or null when there is no server to
 * ask (no socket of this user, nobody listening) or it cannot take the request (then the caller
 * starts a server of its own). Throws an {@link HdError} when the request fails there (a bad ref,
 * a busy directory) or the server does not answer in time.
 */
export async function askMountServer(
  storeRoot: string,
  req: MountRequest,
  opts: { replyTimeoutMs?: number } = {},
): Promise<{ pid: number; root: string; dir: string; log: string | null } | null> {
  const path = mountServerSocket(storeRoot);
  if (!ownSocket(path)) return null;
  let reply: MountReply;
  try {
    reply = await jsonlRequest(path, req, {
      connectTimeoutMs: 2000,
      replyTimeoutMs: opts.replyTimeoutMs ?? 20_000,
    }) as MountReply;
  } catch (e) {
    const why = (e as Error).message;
    // nobody listens (a server that was killed left its socket): start one
    if (/^Cannot connect/.test(why)) return null;
    // the server went without answering (killed, or it ended as the request came): once its lock
    // is free nothing serves there, so start one (a server exiting answers "retry" instead)
    if (/closed without a reply/.test(why) && await lockFreed(storeRoot)) return null;
    const pid = lockHolder(storeRoot);
    throw new HdError(
      `Cannot mount ${req.ref} on ${req.dir}: the store's mount server did not answer ` +
        `(${(e as Error).message})`,
      `\`hd unmount --all\` asks it to stop${
        pid
          ? `; if it does not, end its process (pid ${pid}, in ${mountServerLock(storeRoot)})`
          : ""
      }; then mount again`,
    );
  }
  if (reply && typeof reply === "object") {
    if ("served" in reply && reply.served && Number.isInteger(reply.served.pid)) {
      return reply.served;
    }
    if ("retry" in reply) return null;
    if ("error" in reply && typeof reply.error === "string") {
      throw new HdError(reply.error, typeof reply.hint === "string" ? reply.hint : "");
    }
  }
  throw new HdError(
    `Cannot mount ${req.ref} on ${req.dir}: the store's mount server answered what hd cannot read`,
    "`hd unmount --all` stops it; then mount again",
  );
}

/**
 * `storeRoot`'s running mount server: its pid and the directories it serves, or null when none
 * answers (for `hd mount`'s listing: an idle server lingering after its last mount shows here).
 */
export async function mountServerInfo(
  storeRoot: string,
): Promise<{ pid: number; mounts: string[] } | null> {
  const path = mountServerSocket(storeRoot);
  if (!ownSocket(path)) return null;
  try {
    const r = await jsonlRequest(path, { op: "list" }, {
      connectTimeoutMs: 1000,
      replyTimeoutMs: 2000,
    }) as { pid?: unknown; mounts?: unknown };
    if (!Number.isInteger(r?.pid) || !Array.isArray(r.mounts)) return null;
    return { pid: r.pid as number, mounts: r.mounts.filter((m) => typeof m === "string") };
  } catch {
    return null;
  }
}

/** Asks `storeRoot`'s mount server to unmount everything and exit: its pid, or null (none). */
export async function stopMountServer(storeRoot: string): Promise<number | null> {
  const path = mountServerSocket(storeRoot);
  if (!ownSocket(path)) return null;
  try {
    const r = await jsonlRequest(path, { op: "stop" }, { connectTimeoutMs: 2000 }) as {
      pid?: unknown;
    };
    return Number.isInteger(r?.pid) ? r.pid as number : null;
  } catch {
    return null;
  }
}

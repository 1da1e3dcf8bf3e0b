/**
 * Mount lifecycle: serving a tree on a directory, the registry of live mounts in the store,
 * stale-mount detection and recovery, clean unmount on signals, and the control socket through
 * which `hd snapshot` and tests talk to a running mount.
 *
 * Registry: `<store>/mounts/<key>.json` ({@link MountRecord}; key = first 16 hex of BLAKE3 of the
 * mount directory), a log `<key>.log`, and a unix socket `<key>.sock` speaking one JSON line per
 * request (`{"op":"stats"}`, `{"op":"snapshot","ref":…}`). While mounted, the tree is a gc root
 * (`refs/mounts/<key>`).
 *
 * @example
 * ```ts
 * import { listMounts, serveMount } from "./manager.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const rootId: string;
 * await serveMount(store, rootId, "/mnt/env", { rw: false }); // until unmounted or signalled
 * listMounts(store); // [{ dir, root, pid, state: "live", … }]
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { trace } from "../sys/trace.ts";
import { after } from "../sys/timer.ts";
import { lazyImport } from "../sys/lazy.ts";
import { guardedKill, isAlive } from "../sys/proc.ts";
import { jsonlRequest, serveJsonl } from "../sys/jsonl.ts";
import {
  autoLoadNativeBlake3,
  blake3Hex,
  loadNativeBlake3,
  nativeBlake3Loading,
} from "../cas/hash.ts";
import type { Store } from "../cas/store.ts";
import type { FuseServer } from "./fuse.ts";
import type { Overlay } from "./overlay.ts";
import type { Projection } from "./projected.ts";
import { failureOf, startMountServer, waitMountServer } from "./spawn.ts";
import { askMountServer, mountRequest as hostMountRequest } from "./host.ts";

export { hdArgv, mountServerV8Flags, READY_LINE, readyLine } from "./spawn.ts";

/** What the registry records about a mount. */
export interface MountRecord {
  /** Absolute mount directory. */
  dir: string;
  /** Id of the mounted tree. */
  root: string;
  /** Pid of the hd process serving it. */
  pid: number;
  /** Writable overlay on. */
  rw: boolean;
  /** Control socket path. */
  socket: string;
  /** Log file (detached mounts). */
  log: string | null;
  /** ISO time it was mounted. */
  started: string;
  /** The process may serve other mounts too (the store's mount server, src/mount/host.ts). */
  shared?: boolean;
}

/** A registry entry with its checked state. */
export interface MountStatus extends MountRecord {
  /** live: served; stale: mounted but its process is gone; gone: neither (a leftover record). */
  state: "live" | "stale" | "gone";
}

/** Options of {@link serveMount}. */
export interface ServeOptions {
  rw?: boolean;
  /** Log file; lines go to stderr when absent. */
  log?: string;
  /** Called once the mount is live. */
  onReady?: (rec: MountRecord) => void;
  /**
   * Serve image layers as overlayfs lowerdirs: whiteouts as 0:0 character devices, opaque
   * directories with `trusted.overlay.opaque=y`, and the stored xattrs (see Projection).
   */
  layerView?: boolean;
  /** This process may serve other mounts too (recorded: `hd unmount` then never signals it). */
  shared?: boolean;
  /** Wait for the first request after INIT off the JS thread (FuseOptions.quietStart). */
  quietStart?: boolean;
  /** Stops this mount when aborted (as `hd unmount` does). */
  abort?: AbortSignal;
}

/** Absolute form of `dir` without stat-ing it (a stale mount point cannot be stat-ed). */
export function absMountDir(dir: string): string {
  const trimmed = dir.replace(/\/+$/, "") || "/";
  const abs = trimmed.startsWith("/") ? trimmed : `${Deno.cwd()}/${trimmed}`;
  const cut = abs.lastIndexOf("/");
  const parent = abs.slice(0, cut) || "/";
  const base = abs.slice(cut + 1);
  let real = parent;
  try {
    real = Deno.realPathSync(parent);
  } catch { /* keep as typed */ }
  return base ? (real === "/" ? `/${base}` : `${real}/${base}`) : real;
}

/** Registry key of a mount directory. */
export function mountKey(absDir: string): string {
  return blake3Hex(new TextEncoder().encode(absDir)).slice(0, 16);
}

function registry(store: Store): string {
  return `${store.root}/mounts`;
}

function socketPath(store: Store, key: string): string {
  const p = `${registry(store)}/${key}.sock`;
  return p.length < 100 ? p : `/tmp/hd-mount-${Deno.uid() ?? 0}-${key}.sock`;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount entries at `absDir` in this mount namespace, innermost last (`dev` is "major:minor"). */
export function mountsAt(absDir: string): { fstype: string; source: string; dev: string }[] {
  let text = "";
  try {
    text = Deno.readTextFileSync("/proc/self/mountinfo");
  } catch {
    return [];
  }
  const out: { fstype: string; source: string; dev: string }[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0 || unescapeMount(f[4]) !== absDir) continue;
    out.push({ fstype: f[sep + 1], source: unescapeMount(f[sep + 2]), dev: f[2] });
  }
  return out;
}

/** True when stat-ing `absDir` fails with ENOTCONN or ECONNABORTED (its server is gone). */
export function isDisconnected(absDir: string): boolean {
  try {
    Deno.statSync(absDir);
    return false;
  } catch (e) {
    return /os error 10[37]|not connected|connection abort/i.test((e as Error).message);
  }
}

function readRecord(path: string): MountRecord | null {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as MountRecord;
  } catch {
    return null;
  }
}

function recordPath(store: Store, key: string): string {
  return `${registry(store)}/${key}.json`;
}

function stateOf(rec: MountRecord): MountStatus["state"] {
  const mounted = mountsAt(rec.dir).some((m) => m.fstype.startsWith("fuse"));
  if (isAlive(rec.pid, { zombies: "dead" }) && mounted && !isDisconnected(rec.dir)) return "live";
  return mounted ? "stale" : "gone";
}

/** Every mount in the store's registry, with its state checked (for `hd status`). */
export function listMounts(store: Store): MountStatus[] {
  const out: MountStatus[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(registry(store))];
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.name.endsWith(".json")) continue;
    const rec = readRecord(`${registry(store)}/${e.name}`);
    if (rec) out.push({ ...rec, state: stateOf(rec) });
  }
  return out.sort((a, b) => (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0));
}

/** The registry record of the mount at `dir`, if any. */
export function findMount(store: Store, dir: string): MountStatus | null {
  const abs = absMountDir(dir);
  const rec = readRecord(recordPath(store, mountKey(abs)));
  return rec ? { ...rec, state: stateOf(rec) } : null;
}

function run(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Detaches every FUSE mount stacked on `absDir` (fusermount3 -u, else umount -l). */
export function forceUnmount(absDir: string): number {
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const ms = mountsAt(absDir);
    if (!ms.length || !ms[ms.length - 1].fstype.startsWith("fuse")) break;
    if (!run("fusermount3", ["-u", "-q", absDir]) && !run("umount", ["-l", absDir])) {
      if (!run("fusermount3", ["-u", "-z", "-q", absDir])) break;
    }
    n++;
  }
  return n;
}

/**
 * Makes `absDir` ready to mount on: recovers a stale hd mount (its server is gone), and refuses a
 * live one or a foreign mount. Returns how many stale mounts it removed.
 */
export function recoverStale(store: Store, absDir: string): number {
  const ms = mountsAt(absDir);
  const rec = readRecord(recordPath(store, mountKey(absDir)));
  if (!ms.length) return 0;
  const top = ms[ms.length - 1];
  if (!top.fstype.startsWith("fuse")) {
    throw new HdError(
      `Cannot mount on ${absDir}: it is already a mount point (${top.fstype})`,
      "pick an empty directory, or unmount what is there",
    );
  }
  const live = rec && isAlive(rec.pid, { zombies: "dead" }) && !isDisconnected(absDir);
  if (live) {
    throw new HdError(
      `Cannot mount on ${absDir}: hd (pid ${rec!.pid}) already serves ${
        rec!.root.slice(0, 12)
      } there`,
      `run \`hd unmount ${absDir}\` first`,
    );
  }
  if (!isDisconnected(absDir) && top.fstype !== "fuse.hd") {
    throw new HdError(
      `Cannot mount on ${absDir}: another FUSE filesystem (${top.fstype}) is mounted there`,
      "pick another directory, or unmount it",
    );
  }
  const n = forceUnmount(absDir);
  if (mountsAt(absDir).some((m) => m.fstype.startsWith("fuse"))) {
    throw new HdError(
      `Cannot recover the stale mount on ${absDir}`,
      `unmount it by hand: umount -l ${absDir}`,
    );
  }
  return n;
}

/** Sends one request to a running mount's control socket and returns its reply. */
export async function requestMount(
  store: Store,
  dir: string,
  msg: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const m = findMount(store, dir);
  if (!m || m.state !== "live") {
    throw new HdError(
      `Cannot reach the mount at ${absMountDir(dir)}: ${m ? `it is ${m.state}` : "not mounted"}`,
      "mount it with `hd mount HASH DIR` (add --rw to capture writes)",
    );
  }
  const reply = await jsonlRequest(m.socket, msg, {
    // a snapshot ingests the overlay's writes (and may wait for a gc's lock): give it time
    replyTimeoutMs: msg.op === "snapshot" ? 600_000 : 30_000,
    hint: `see the mount log; \`hd unmount ${m.dir}\` stops a wedged mount`,
  }) as Record<string, unknown>;
  if (typeof reply.error === "string") {
    throw new HdError(`Cannot ${String(msg.op)} ${m.dir}: ${reply.error}`, "see the mount log");
  }
  return reply;
}

/**
 * Mounts `root` on `dir` and serves it until it is unmounted or the process gets SIGINT, SIGTERM
 * or SIGHUP (then it unmounts, drops its registry entry and returns). Recovers a stale mount on
 * `dir` first.
 */
export async function serveMount(
  store: Store,
  root: string,
  dir: string,
  opts: ServeOptions = {},
): Promise<void> {
  trace("serve: store open");
  const absDir = absMountDir(dir);
  const key = mountKey(absDir);
  trace("serve: mount key (first hash)");
  const logFile = opts.log ? Deno.openSync(opts.log, { append: true, create: true }) : null;
  const enc = new TextEncoder();
  const log = (line: string) => {
    const l = `${new Date().toISOString()} ${line}\n`;
    if (logFile) logFile.writeSync(enc.encode(l));
    else Deno.stderr.writeSync(enc.encode(l));
  };
  const recovered = recoverStale(store, absDir);
  if (recovered) log(`recovered ${recovered} stale mount(s) on ${absDir}`);
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(absDir);
  } catch (e) {
    throw new HdError(`Cannot mount on ${absDir}: ${(e as Error).message}`, "create the directory");
  }
  if (!st.isDirectory) throw new HdError(`Cannot mount on ${absDir}: not a directory`, "");

  // the server's modules load here, not with this module: `hd mount` (background) and
  // `hd status` use the registry functions without them
  const [{ FuseServer }, { Projection }] = await Promise.all([
    import("./fuse.ts"),
    import("./projected.ts"),
  ]);
  trace("serve: server modules loaded");
  // The native BLAKE3 loads once the loop is idle (~50 ms without a request) or at the first file
  // read: its ~40 ms load does not hold the first requests (node ids are checked with the JS
  // BLAKE3 meanwhile); once file contents are read, requests wait for what is left of it.
  autoLoadNativeBlake3(false);
  // a writable mount keeps every inode (its changes live on them); a read-only one unloads
  // directories the kernel has forgotten beyond the cap
  const fs = new Projection(store, root, {
    log,
    layerView: opts.layerView,
    ...(opts.rw ? { inodeCap: 0 } : {}),
  });
  // the overlay (and the ingest code its snapshots use) loads only for a writable mount
  // (through lazyImport: a literal import() would make Deno read the overlay's module graph,
  // the ingest code and all, with this module's, for every mount)
  const overlay = opts.rw
    ? new (await lazyImport<typeof import("./overlay.ts")>(
      new URL("./overlay.ts", import.meta.url),
    ))
      .Overlay(fs)
    : null;
  trace("serve: projection (root node read)");
  const server = new FuseServer(fs, overlay, {
    mountpoint: absDir,
    fsname: `hd:${root.slice(0, 12)}`,
    log,
    ...(opts.layerView ? { xattrs: true } : {}),
    onIdle: () => void loadNativeBlake3(),
    // the native BLAKE3's import advances in idle time, and at every request once file reads
    // wait for it
    needsLoop: () => nativeBlake3Loading() ? (fs.chunksRead ? "always" : "idle") : null,
    // once file contents are read, the next requests wait for the rest of its load
    waitFor: () => fs.chunksRead && nativeBlake3Loading() ? loadNativeBlake3() : null,
    // a process serving other mounts too must not hold its JS thread for this one's first
    // request (it still has to answer the `hd mount` that asked for it)
    quietStart: !!opts.quietStart,
    // per-op times in the stats control request (bench/fuse_ab.ts prints them)
    profile: Deno.env.get("HD_FUSE_PROFILE") === "1",
  });
  Deno.mkdirSync(registry(store), { recursive: true });
  store.setRef(`mounts/${key}`, root);
  server.mount();
  trace("serve: mounted");
  // A larger read-ahead window: fewer, bigger read requests for sequential readers. The device
  // comes from mountinfo: a stat of the mount point would wait for the server's reply.
  const bdi = mountsAt(absDir).findLast((m) => m.fstype.startsWith("fuse"))?.dev;
  try {
    if (bdi) Deno.writeTextFileSync(`/sys/class/bdi/${bdi}/read_ahead_kb`, "1024");
  } catch { /* not root, or no such bdi: keep the default */ }
  const sock = socketPath(store, key);
  let stopping: Promise<void> | null = null;
  let signalled!: () => void;
  const signalledP = new Promise<void>((r) => signalled = r);
  const stop = (why: string) => {
    stopping ??= (async () => {
      log(`stopping (${why})`);
      const clean = await server.stop();
      if (!clean) log("a client still holds the mount busy; detached it lazily");
    })();
    signalled();
    return stopping;
  };
  const control = serveJsonl(
    sock,
    (req) => mountRequest(req, store, fs, overlay, server, log, () => void stop("unmount")),
  );
  const rec: MountRecord = {
    dir: absDir,
    root,
    pid: Deno.pid,
    rw: !!opts.rw,
    socket: sock,
    log: opts.log ?? null,
    started: new Date().toISOString(),
    ...(opts.shared ? { shared: true } : {}),
  };
  store.writeAtomic(recordPath(store, key), enc.encode(JSON.stringify(rec, null, 2) + "\n"));
  log(`mounted ${root} on ${absDir}${opts.rw ? " (rw)" : ""}`);
  const served = server.serve();
  const onAbort = () => void stop("stop requested");
  opts.abort?.addEventListener("abort", onAbort, { once: true });
  if (opts.abort?.aborted) onAbort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  const handlers = signals.map((s) => {
    const h = () => void stop(s);
    Deno.addSignalListener(s, h);
    return [s, h] as const;
  });
  opts.onReady?.(rec);
  trace("serve: ready");
  try {
    await Promise.race([served, signalledP]);
    await stop("unmounted");
  } finally {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    opts.abort?.removeEventListener("abort", onAbort);
    control.close();
    await control.done;
    for (const p of [sock, recordPath(store, key)]) {
      try {
        Deno.removeSync(p);
      } catch { /* gone */ }
    }
    store.deleteRef(`mounts/${key}`);
    forceUnmount(absDir);
    // (a process serving other mounts lives on: the session's fd and handlers are freed here)
    if (!await server.close()) log("the serve loop did not end: its session is left open");
    log(`stats ${JSON.stringify(fs.stats)}`);
    logFile?.close();
  }
}

/**
 * The answer of a mount to one control request (`stats`, `snapshot`, `unmount`); throws for
 * anything else.
 */
async function mountRequest(
  request: unknown,
  store: Store,
  fs: Projection,
  overlay: Overlay | null,
  server: FuseServer,
  log: (l: string) => void,
  unmount: () => void,
): Promise<Record<string, unknown>> {
  const req = request as { op: string; ref?: string };
  if (req.op === "unmount") {
    // answered first (the stop closes this socket, and a process serving nothing else exits)
    after(5, unmount);
    return { stopping: true, pid: Deno.pid };
  }
  if (req.op === "stats") {
    return {
      root: fs.rootId,
      stats: fs.stats,
      dirNodeCache: fs.dirNodeCache(),
      // true: proven to hold no extended attribute (xattr requests get ENOSYS); null: not yet
      xattrFree: fs.xattrFree(),
      ops: server.ops,
      ...(server.times ? { opMs: server.times } : {}),
      memory: Deno.memoryUsage(),
      overlay: overlay ? overlay.summary() : null,
    };
  }
  if (req.op === "snapshot") {
    if (!overlay) throw new Error("the mount is read-only: its view is its root");
    const ref = req.ref;
    using _lease = store.lease("hd snapshot");
    const reply = await store.withLock("shared", () => {
      const root = overlay.snapshot();
      if (ref) store.setRef(ref, root);
      return { root, ref: ref ?? null, ...overlay.summary() };
    });
    log(`snapshot ${reply.root}${ref ? ` → refs/${ref}` : ""}`);
    return reply;
  }
  throw new Error(`unknown op ${req.op}`);
}

/**
 * Unmounts `dir`: asks its hd process to stop (SIGTERM) and waits for it, then detaches whatever
 * is left (a stale mount). Returns what it did.
 */
export async function unmountDir(
  store: Store,
  dir: string,
  timeoutMs = 5000,
): Promise<{ dir: string; stopped: number | null; detached: number }> {
  const absDir = absMountDir(dir);
  const key = mountKey(absDir);
  const rec = readRecord(recordPath(store, key));
  let stopped: number | null = null;
  const gone = (pid: number) =>
    !isAlive(pid, { zombies: "dead" }) ||
    (!mountsAt(absDir).some((m) => m.fstype.startsWith("fuse")) &&
      readRecord(recordPath(store, key)) === null);
  const waitGone = async (pid: number) => {
    const t0 = Date.now();
    while (!gone(pid) && Date.now() - t0 < timeoutMs) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  if (rec && isAlive(rec.pid, { zombies: "dead" })) {
    // Asked over the mount's control socket first: a process serving several mounts (the
    // store's mount server) stops this one only. A process that does not answer is signalled
    // only when it serves this mount alone; a shared one is left to the detach below.
    let asked = false;
    try {
      await jsonlRequest(rec.socket, { op: "unmount" }, {
        connectTimeoutMs: 1000,
        replyTimeoutMs: 3000,
      });
      asked = true;
    } catch (e) {
      asked = /closed without a reply/.test((e as Error).message);
    }
    // the record is a file: guardedKill never signals pid <= 1 or hd itself whatever it says
    if (asked || (!rec.shared && guardedKill(rec.pid, "SIGTERM"))) {
      await waitGone(rec.pid);
      stopped = rec.pid;
    }
  }
  const detached = forceUnmount(absDir);
  if (!rec && detached === 0) {
    throw new HdError(
      `Cannot unmount ${absDir}: nothing hd mounted is there`,
      "`hd status` lists the mounts of this store (or pass the --store it was mounted with)",
    );
  }
  for (const p of [recordPath(store, key), rec?.socket ?? ""]) {
    try {
      if (p) Deno.removeSync(p);
    } catch { /* gone */ }
  }
  store.deleteRef(`mounts/${key}`);
  return { dir: absDir, stopped, detached };
}

/**
 * Starts `hd mount ROOT DIR --foreground --ready` (plus `flags`) as a detached server logging to
 * `log`, and waits until it serves (see spawn.ts): its pid, or why it did not come up
 * (`exited (CODE)` / `did not become ready`, with the last lines of its log). A server that never
 * became ready within 20 s is sent SIGTERM (it is hd's own child).
 *
 * @example
 * ```ts
 * import type { Store } from "../cas/store.ts";
 * import { spawnMountServer } from "./manager.ts";
 * declare const store: Store;
 * const r = await spawnMountServer(store, "ab".repeat(32), "/mnt/x", "/tmp/x.log", ["--rw"]);
 * if ("failed" in r) console.log(r.failed);
 * ```
 */
export async function spawnMountServer(
  store: Store,
  root: string,
  dir: string,
  log: string,
  flags: string[],
): Promise<{ pid: number } | { failed: string }> {
  Deno.mkdirSync(`${store.root}/mounts`, { recursive: true });
  // the store's mount server, when one runs, serves it without a process start (host.ts); a
  // writable mount gets a process of its own
  if (!flags.includes("--rw")) {
    try {
      const served = await askMountServer(
        store.root,
        hostMountRequest(root, absMountDir(dir), {
          rw: flags.includes("--rw"),
          layers: flags.includes("--layers"),
          log: log.startsWith("/") ? log : `${Deno.cwd()}/${log}`,
        }),
      );
      if (served) return { pid: served.pid };
    } catch (e) {
      return { failed: (e as Error).message };
    }
  }
  const child = startMountServer(root, dir, { store: store.root, log, flags });
  const r = await waitMountServer(child);
  return "pid" in r ? { pid: r.pid } : { failed: failureOf(r, log) };
}

/**
 * The FUSE session: mounting a libfuse3 low-level session from Deno, the serve loop, shutdown,
 * and registering the handlers of `ops.ts` as FFI callbacks.
 *
 * The server is split in three so each part can be read and tested on its own: `wire.ts` encodes
 * the bytes (struct layouts, checked against the C headers), `ops.ts` says what each request does
 * (typed handlers), and this module owns the session and its loop. `fuse_session_receive_buf`
 * runs on the JS thread when requests keep coming and on a worker thread when idle (a nonblocking
 * FFI call, so the event loop stays free); each request is handed to `fuse_session_process_buf`,
 * which calls the handlers synchronously, and every handler replies before returning. Reads come
 * from a {@link Projection} (lazy, verified); with `rw` the write ops go to an {@link Overlay},
 * otherwise the mount is read-only (the kernel answers EROFS).
 *
 * Immutable trees are mounted with long attribute/entry timeouts, keep_cache and cached readdir,
 * so repeated stats and reads are served by the kernel's caches.
 *
 * @example
 * ```ts
 * import { FuseServer } from "./fuse.ts";
 * import type { Projection } from "./projected.ts";
 * declare const projection: Projection;
 * const srv = new FuseServer(projection, null, { mountpoint: "/mnt/x" });
 * srv.mount();
 * await srv.serve(); // until unmounted or srv.stop()
 * ```
 * @module
 */
import { CALLBACKS, LAYOUT, type Libfuse3, openLibfuse3 } from "../../ffi/libfuse3.ts";
import {
  EAGAIN,
  F_GETFL,
  F_SETFL,
  type LibcPoll,
  O_NONBLOCK,
  openLibcPoll,
  POLLFD_SIZE,
  POLLIN,
} from "../../ffi/libc.ts";
import { HdError } from "../sys/errors.ts";
import { trace, tracing } from "../sys/trace.ts";
import { type FfiOps, FuseOps, type OpName } from "./ops.ts";
import type { Overlay } from "./overlay.ts";
import type { Projection } from "./projected.ts";
import { cstr } from "./wire.ts";

const EINTR = 4;
/** After this long (ms) without requests the loop sleeps in poll() on a worker thread. */
const ACTIVE_MS = 1000;
/** While idle, the loop's poll() on a worker thread returns after this long (ms) to check for a stop. */
const IDLE_POLL_MS = 1000;
/** While active, the loop waits for the next request on its own thread in slices of this (ms). */
const POLL_SLICE_MS = 10;

/**
 * Poll slices in a row without a request (~50 ms) before {@link FuseOptions.onIdle} runs: a gap
 * inside a walk (a client busy with its own work) is shorter; a mount waiting for its user is not.
 */
const IDLE_SLICES = 5;

/**
 * The FUSE fds of the sessions this process serves on its JS thread (the store's mount server
 * serves several): a loop waiting on its own thread polls them all, so that a request to another
 * mount wakes it and it yields, instead of that request waiting out the slice.
 */
const sessionFds = new Set<number>();

/** pollfd entries for every fd in {@link sessionFds}, `own` first; the count. */
function pollAll(own: number, into: { buf: Uint8Array }): number {
  const n = sessionFds.size;
  if (into.buf.length < n * POLLFD_SIZE) into.buf = new Uint8Array(n * POLLFD_SIZE * 2);
  const v = new DataView(into.buf.buffer);
  let i = 0;
  for (const fd of [own, ...[...sessionFds].filter((f) => f !== own)]) {
    v.setInt32(i * POLLFD_SIZE, fd, true);
    v.setInt16(i * POLLFD_SIZE + 4, POLLIN, true);
    v.setInt16(i * POLLFD_SIZE + 6, 0, true);
    i++;
  }
  return n;
}

/** How many of the first requests HD_TRACE follows (the start-up's timeline). */
const TRACED_REQUESTS = 6;

/**
 * A yield to the event loop (a macrotask: signals, the control socket and timers get their turn),
 * through a MessageChannel: about 15 µs, where `setTimeout(0)` waits ~2 ms and node:timers'
 * setImmediate costs every server start ~10 ms of loading. `close()` releases the channel (an
 * open port keeps the process alive).
 */
export function eventLoopYield(): { next(): Promise<void>; close(): void } {
  const ch = new MessageChannel();
  const waiting: (() => void)[] = [];
  ch.port1.onmessage = () => waiting.shift()?.();
  return {
    next: () =>
      new Promise<void>((res) => {
        waiting.push(res);
        ch.port2.postMessage(0);
      }),
    close() {
      ch.port1.close();
      ch.port2.close();
      for (const w of waiting.splice(0)) w();
    },
  };
}

/** Options of a {@link FuseServer}. */
export interface FuseOptions {
  /** Absolute path of the directory to mount on. */
  mountpoint: string;
  /** Name shown in /proc/mounts (default `hd`). */
  fsname?: string;
  /** Let other users (and user namespaces) see the mount; default: when running as root. */
  allowOther?: boolean;
  /** Seconds the kernel may cache attributes and entries (default 86400 read-only, 1 rw). */
  timeout?: number;
  /** Where the server logs. */
  log?: (line: string) => void;
  /**
   * Answer getxattr/listxattr from the stored nodes (read-only; ENODATA when absent). Off by
   * default: without handlers the kernel learns ENOSYS once and stops asking, whereas with them
   * every overlayfs lookup on a projected lower layer (trusted.overlay.* probes) and every exec
   * (security.capability) costs a round trip to this server.
   */
  xattrs?: boolean;
  /**
   * Called once, the first time the loop has gone ~50 ms without a request ({@link IDLE_SLICES}
   * poll slices): work that would otherwise stall requests (serveMount loads the native BLAKE3).
   */
  onIdle?: () => void;
  /**
   * Whether async work of this process is under way that advances only as the event loop turns
   * (the native BLAKE3's import, dozens of turns): "idle" — give it the loop whenever no request
   * waits, instead of one turn per 10 ms poll slice; "always" — also after every request (it is
   * needed now: file reads hash with the slow BLAKE3 until it is there); null — nothing.
   */
  needsLoop?: () => "idle" | "always" | null;
  /**
   * A load the next requests must wait for, or null: serveMount returns the native BLAKE3's once
   * file chunks are read — a one-time wait of what is left of its ~40–80 ms load costs less than
   * hashing file contents with the JS BLAKE3 (~30x slower) while the load crawls between requests.
   */
  waitFor?: () => Promise<unknown> | null;
  /**
   * While no request waits after the mount, read what the first listing of the root will need
   * (FuseOps.warmStep: its entries and its subdirectories' nodes, one at a time); default true.
   * `hd mount DIR && ls DIR` then finds them read in the time the CLI took to exit.
   */
  warmRoot?: boolean;
  /**
   * Wait for the first request after the kernel's INIT on a worker thread, not in poll slices on
   * the JS thread: in a process that serves other mounts (the store's mount server), the reply
   * to the `hd mount` that asked for this one must not wait behind those slices (~15 ms on this
   * machine kind). Default false: a process serving one mount has nothing else to do.
   */
  quietStart?: boolean;
  /** Time every op ({@link FuseServer.times}); serveMount sets it from HD_FUSE_PROFILE=1. */
  profile?: boolean;
}

/** Loads libfuse3 and checks /dev/fuse; throws one clear HdError naming the package. */
export function loadFuse(): Libfuse3 {
  try {
    Deno.statSync("/dev/fuse");
  } catch {
    throw new HdError(
      "Cannot mount: /dev/fuse is missing",
      "install fuse3 (`apt-get install fuse3`) and load the module (`modprobe fuse`); " +
        "in a container, pass --device /dev/fuse",
    );
  }
  try {
    return openLibfuse3();
  } catch (e) {
    throw new HdError(
      `Cannot mount: ${(e as Error).message}`,
      "install libfuse3 (`apt-get install fuse3 libfuse3-3`)",
    );
  }
}

/** A registered callback, kept alive for as long as the session may call it. */
type Callback = { readonly pointer: Deno.PointerObject; close(): void };

/** Registers handler `name` of `ops` as a C function pointer (null when the table omits it). */
function register<K extends OpName>(ops: FfiOps, name: K): Callback | null {
  const fn = ops[name];
  return fn ? new Deno.UnsafeCallback(CALLBACKS[name], fn) : null;
}

/** A mounted FUSE session serving a projection (and, with rw, its overlay). */
export class FuseServer {
  readonly fs: Projection;
  readonly overlay: Overlay | null;
  readonly mountpoint: string;
  #lib: Libfuse3;
  #ops: FuseOps | null = null;
  #se: Deno.PointerValue = null;
  #callbacks: Callback[] = [];
  #keep: unknown[] = [];
  #timeout: number;
  #stopping = false;
  #loop: Promise<void> | null = null;
  #log: (line: string) => void;
  #opts: FuseOptions;
  /** Requests served, by op name. */
  readonly ops: Record<string, number> = {};
  /** With {@link FuseOptions.profile}: milliseconds spent in each op, by op name; else null. */
  readonly times: Record<string, number> | null;

  constructor(fs: Projection, overlay: Overlay | null, opts: FuseOptions) {
    this.fs = fs;
    this.overlay = overlay;
    this.mountpoint = opts.mountpoint;
    this.#opts = opts;
    this.#timeout = opts.timeout ?? (overlay ? 1 : 86400);
    this.#log = opts.log ?? ((l) => console.error(l));
    this.times = opts.profile ? {} : null;
    this.#lib = loadFuse();
  }

  /** Creates the session and mounts it; throws HdError when the kernel refuses. */
  mount(): void {
    const L = this.#lib.symbols;
    const ops = new Uint8Array(LAYOUT.opsSize);
    const opsView = new DataView(ops.buffer);
    // The typed handlers, as Deno will call them: this assignment is where a handler whose
    // signature differs from its CALLBACKS definition would fail to compile.
    this.#ops = new FuseOps({
      lib: this.#lib,
      fs: this.fs,
      overlay: this.overlay,
      timeout: this.#timeout,
      xattrs: this.#opts.xattrs ?? false,
      log: this.#log,
      counts: this.ops,
      times: this.times,
    });
    const table: FfiOps = this.#ops.table();
    for (const name of Object.keys(CALLBACKS) as OpName[]) {
      const cb = register(table, name);
      if (!cb) continue;
      this.#callbacks.push(cb);
      opsView.setBigUint64(LAYOUT.ops[name], BigInt(Deno.UnsafePointer.value(cb.pointer)), true);
    }
    const allowOther = this.#opts.allowOther ?? Deno.uid() === 0;
    const o = [
      `fsname=${(this.#opts.fsname ?? "hd").replace(/[,\\]/g, "_")}`,
      "subtype=hd",
      "default_permissions",
      ...(allowOther ? ["allow_other"] : []),
      ...(this.overlay ? [] : ["ro"]),
    ].join(",");
    const argStrs = ["hd", "-o", o].map(cstr);
    const argv = new BigUint64Array(argStrs.length + 1);
    argStrs.forEach((s, i) => argv[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
    const args = new Uint8Array(LAYOUT.args.size);
    const av = new DataView(args.buffer);
    av.setInt32(LAYOUT.args.argc, argStrs.length, true);
    av.setBigUint64(
      LAYOUT.args.argv,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(argv))),
      true,
    );
    this.#keep.push(ops, argStrs, argv, args);
    const se = L.fuse_session_new(
      Deno.UnsafePointer.of(args),
      Deno.UnsafePointer.of(ops),
      BigInt(LAYOUT.opsSize),
      null,
    );
    if (se === null) {
      throw new HdError(
        "Cannot mount: fuse_session_new failed (see the lines above)",
        "check the mount options; run with --debug",
      );
    }
    if (L.fuse_session_mount(se, cstr(this.mountpoint)) !== 0) {
      L.fuse_session_destroy(se);
      throw new HdError(
        `Cannot mount on ${this.mountpoint}: the kernel refused (see the lines above)`,
        "check that the directory exists and that you may mount there (root, or fusermount3)",
      );
    }
    this.#se = se;
  }

  /** Serves requests until the filesystem is unmounted or {@link stop} is called. */
  serve(): Promise<void> {
    if (!this.#loop) this.#loop = this.#run();
    return this.#loop;
  }

  async #run(): Promise<void> {
    // Let the caller finish first (register the mount, say it is ready): requests that come in
    // meanwhile wait in the kernel's queue. A microtask, not a turn of the event loop: the
    // caller's synchronous rest runs first all the same, and the kernel's INIT is answered
    // without waiting for a macrotask (~3 ms at start-up, measured with HD_TRACE).
    const yielder = eventLoopYield();
    try {
      await Promise.resolve();
      await this.#loopOn(yielder);
    } finally {
      yielder.close();
    }
  }

  async #loopOn(yielder: { next(): Promise<void> }): Promise<void> {
    const L = this.#lib.symbols;
    const buf = new Uint8Array(LAYOUT.buf.size);
    const bufPtr = Deno.UnsafePointer.of(buf);
    this.#keep.push(buf);
    // Drain queued requests synchronously on this thread (the fd is made non-blocking) and, while
    // busy, wait for the next one with poll() on this thread too; only after a second idle does
    // the loop sleep in poll() on a worker thread. This saves two thread hops per request for
    // serial clients (find, stat loops, cat), which matters most on a loaded machine.
    const fd = L.fuse_session_fd(this.#se);
    let libc: LibcPoll | null = null;
    try {
      libc = openLibcPoll();
      const fl = libc.symbols.fcntl(fd, F_GETFL, 0);
      if (fl < 0 || libc.symbols.fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) libc = null;
    } catch {
      libc = null;
    }
    const pfd = new Uint8Array(POLLFD_SIZE);
    const pv = new DataView(pfd.buffer);
    pv.setInt32(0, fd, true);
    pv.setInt16(4, POLLIN, true);
    let yieldAt = performance.now() + 20;
    let busyAt = this.#opts.quietStart ? -Infinity : performance.now();
    let first = true; // the kernel's INIT
    let traced = 0;
    let onIdle = this.#opts.onIdle;
    let quiet = 0; // poll slices in a row without a request
    const needsLoop = this.#opts.needsLoop;
    const waitFor = this.#opts.waitFor;
    let warming = this.#opts.warmRoot !== false && this.#ops !== null;
    const many = { buf: new Uint8Array(0) };
    if (libc) sessionFds.add(fd);
    try {
      while (!this.#stopping) {
        const pending = waitFor?.();
        if (pending) {
          await pending.catch(() => {});
          yieldAt = performance.now() + 20;
        }
        let r: number;
        if (libc) {
          r = L.fuse_session_receive_buf_sync(this.#se, bufPtr);
          if (r === -EAGAIN) {
            // nothing waits: a step of the work the root's first listing would wait for
            if (warming && this.#ops!.warmStep()) continue;
            if (warming && tracing()) trace("warm: root listing read");
            warming = false;
            // the proof that lets xattr requests end (FuseOps.proveStep), a Dir node a step
            if (this.#ops?.proveStep()) continue;
            const now = performance.now();
            if (now - busyAt < ACTIVE_MS && needsLoop?.()) {
              // A load is under way: let it advance while no request waits.
              await yielder.next();
              yieldAt = performance.now() + 20;
            } else if (now - busyAt < ACTIVE_MS) {
              // Recently busy: wait on this thread (no thread hop when the next request comes),
              // in short slices so signals and the control socket still get their turn. With other
              // mounts in this process, wait on theirs too, and yield when one of theirs is ready.
              let none: boolean;
              if (sessionFds.size > 1) {
                const n = pollAll(fd, many);
                none = libc.symbols.poll_sync(many.buf, BigInt(n), POLL_SLICE_MS) === 0;
                const ownReady = (new DataView(many.buf.buffer).getInt16(6, true) & POLLIN) !== 0;
                if (!none && !ownReady) {
                  await yielder.next();
                  yieldAt = performance.now() + 20;
                  continue;
                }
              } else none = libc.symbols.poll_sync(pfd, 1n, POLL_SLICE_MS) === 0;
              quiet = none ? quiet + 1 : 0;
              if (quiet >= IDLE_SLICES && onIdle) (onIdle(), onIdle = undefined);
              if (none || now > yieldAt) {
                await yielder.next();
                yieldAt = performance.now() + 20;
              }
            } else {
              // Idle: sleep in poll() on a worker thread, leaving the event loop free. Bounded, so
              // that a stop is seen within a second even when the kernel keeps the connection
              // (a client holds the detached mount busy): then close() can end it.
              await libc.symbols.poll(pfd, 1n, IDLE_POLL_MS);
              yieldAt = performance.now() + 20;
            }
            continue;
          }
          if (!first || !this.#opts.quietStart) busyAt = performance.now();
          first = false;
          quiet = 0;
        } else r = await L.fuse_session_receive_buf(this.#se, bufPtr);
        if (this.#stopping) break;
        if (r === -EINTR) continue;
        if (r <= 0) break;
        // HD_TRACE: the first requests, with their opcode (fuse_in_header.opcode), in the timeline
        if (traced < TRACED_REQUESTS && tracing()) {
          const mem = new DataView(buf.buffer).getBigUint64(LAYOUT.buf.mem, true);
          const op = new Deno.UnsafePointerView(Deno.UnsafePointer.create(mem)!).getUint32(4);
          trace(`request ${traced} (opcode ${op}) received`);
        }
        L.fuse_session_process_buf(this.#se, bufPtr);
        if (traced < TRACED_REQUESTS && tracing()) trace(`request ${traced++} answered`);
        if (L.fuse_session_exited(this.#se)) break;
        // Under steady load, let signals and the control socket in now and then (after every
        // request while a module load is waiting for its turns).
        if (libc && (performance.now() > yieldAt || needsLoop?.() === "always")) {
          await yielder.next();
          yieldAt = performance.now() + 20;
        }
      }
    } finally {
      sessionFds.delete(fd);
      libc?.close();
    }
  }

  /**
   * Frees the session once its loop has ended (after {@link stop}): closes its FUSE fd (which ends
   * the kernel's connection: a client still inside a detached mount then sees ENOTCONN), and
   * releases the FFI callbacks, which otherwise keep the handlers and the whole projection
   * reachable. A process serving several mounts in turn (the store's mount server) needs this;
   * one that exits after its mount had it done by the exit. Returns false, freeing nothing, when
   * the loop has not ended within `graceMs` (it could still call into the session).
   */
  async close(graceMs = 3000): Promise<boolean> {
    if (this.#se === null) return true;
    if (this.#loop) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        this.#loop.then(() => true, () => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), graceMs)),
      ]);
      clearTimeout(timer);
      if (!ended) return false;
    }
    if (this.#se === null) return true;
    // (it answers the kernel's DESTROY through the callbacks: they are closed after it)
    this.#lib.symbols.fuse_session_destroy(this.#se);
    this.#se = null;
    for (const cb of this.#callbacks) cb.close();
    this.#callbacks = [];
    this.#keep = [];
    this.#ops = null;
    return true;
  }

  /**
   * Stops serving and unmounts (lazily, so a reader whose cwd is inside cannot block it). Waits
   * at most `graceMs` for the receive loop to notice; the caller should then exit the process,
   * which closes the connection (busy clients then see ENOTCONN, not a hang).
   */
  async stop(graceMs = 1500): Promise<boolean> {
    if (this.#se === null) return true;
    const L = this.#lib.symbols;
    const first = !this.#stopping;
    this.#stopping = true;
    if (first) {
      L.fuse_session_exit(this.#se);
      L.fuse_session_unmount(this.#se);
    }
    if (!this.#loop) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      this.#loop.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), graceMs)),
    ]);
    clearTimeout(timer);
    return ended;
  }
}

/**
 * The store's mount server, the serving side of src/mount/host.ts: one background process that
 * holds `<store>/mounts/server.lock`, listens on the store's mount-server socket and serves every
 * mount it is asked for (each with its own FUSE session, record, log and control socket, as a
 * mount of its own process would have), then exits once it has served none for its linger time.
 *
 * A mount asked of a running server costs no process start, no module load and no cold code: on
 * this machine kind `hd mount` then serves in about the time of `hd --version` plus the mount
 * itself (docs/bench.md). What it costs: the mounts of a store share one process, so a crash of
 * that process takes all of them (each is then stale, and `hd mount`/`hd unmount` recover it as
 * before), and an idle server stays up to `HD_MOUNT_LINGER` seconds after its last mount.
 *
 * @example
 * ```ts
 * import { MountHost } from "./host_server.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const host = MountHost.claim(store, { resolve: (ref) => ref });
 * if (host) {
 *   host.listen();
 *   await host.done; // once it has served nothing for its linger time
 * }
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { HdError } from "../sys/errors.ts";
import { trace } from "../sys/trace.ts";
import { type JsonlServer, serveJsonl } from "../sys/jsonl.ts";
import { after, type Timer } from "../sys/timer.ts";
import {
  admits,
  DEFAULT_LINGER_S,
  insideMount,
  type MountReply,
  mountServerLock,
  mountServerSocket,
  ownMountNamespace,
  parseLinger,
  parseMountRequest,
} from "./host.ts";
import { mountKey, type MountRecord, serveMount } from "./manager.ts";
import { fullGc, releaseFreedMemory } from "../sys/memory.ts";

/** How long after its last mount ends the server gives its memory back. */
const RELEASE_AFTER_MS = 200;

/** `path` with its parent's symlinks resolved (as absMountDir, but off the JS thread). */
async function realDir(path: string): Promise<string> {
  const trimmed = path.replace(/\/+$/, "") || "/";
  const cut = trimmed.lastIndexOf("/");
  const parent = trimmed.slice(0, cut) || "/";
  const base = trimmed.slice(cut + 1);
  let real = parent;
  try {
    real = await Deno.realPath(parent);
  } catch { /* kept as given */ }
  return base ? (real === "/" ? `/${base}` : `${real}/${base}`) : real;
}

/** How a {@link MountHost} resolves what it is asked to mount, and where it logs. */
export interface HostOptions {
  /** A ref, prefix or id → the Dir node id (throws an HdError when it names nothing). */
  resolve: (ref: string) => string;
  /** Linger time in ms (default: `HD_MOUNT_LINGER`, see host.ts). */
  lingerMs?: number;
}

/** The store's mount server in this process (see the module doc). */
export class MountHost {
  readonly #store: Store;
  readonly #lock: Deno.FsFile;
  readonly #opts: HostOptions;
  readonly #lingerMs: number;
  readonly #mntns = ownMountNamespace();
  readonly #mounts = new Map<string, AbortController>();
  #live = 0;
  #release: Timer | null = null;
  #exiting = false;
  #stopAll = false;
  #linger: Timer | null = null;
  #server: JsonlServer | null = null;
  #socket: string;
  #logFile: Deno.FsFile | null = null;
  #end!: () => void;
  readonly #signals: [Deno.Signal, () => void][] = [];
  /** Resolves once the server has stopped serving and released its socket and lock. */
  readonly done: Promise<void>;

  private constructor(store: Store, lock: Deno.FsFile, opts: HostOptions) {
    this.#store = store;
    this.#lock = lock;
    this.#opts = opts;
    const linger = parseLinger(Deno.env.get("HD_MOUNT_LINGER"));
    this.#lingerMs = opts.lingerMs ?? linger.ms;
    this.#socket = mountServerSocket(store.root);
    this.done = new Promise((r) => this.#end = r);
    if (linger.error && opts.lingerMs === undefined) {
      this.#log(`${linger.error}; using ${DEFAULT_LINGER_S}`);
    }
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as Deno.Signal[]) {
      // each mount stops itself on these (serveMount); the server then exits without lingering
      const h = () => {
        this.#stopAll = true;
        if (this.#live === 0) void this.#exit("signal");
      };
      Deno.addSignalListener(s, h);
      this.#signals.push([s, h]);
    }
  }

  /**
   * Takes the store's mount-server lock: the server, or null when another process holds it (this
   * one then serves only its own mount).
   */
  static claim(store: Store, opts: HostOptions): MountHost | null {
    let f: Deno.FsFile;
    try {
      Deno.mkdirSync(`${store.root}/mounts`, { recursive: true });
      f = Deno.openSync(mountServerLock(store.root), {
        read: true,
        write: true,
        create: true,
        mode: 0o600,
      });
    } catch {
      return null;
    }
    try {
      if (!f.tryLockSync(true)) {
        f.close();
        return null;
      }
      f.truncateSync(0);
      f.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch {
      f.close();
      return null;
    }
    return new MountHost(store, f, opts);
  }

  /** Serves the socket (once this process's first mount is live, so as not to delay it). */
  listen(): void {
    if (this.#server || this.#exiting) return;
    try {
      this.#server = serveJsonl(this.#socket, (req) => this.#request(req));
    } catch (e) {
      // (a socket path under /tmp held by another user, say): serve only what was mounted
      this.#log(`cannot serve ${this.#socket}: ${(e as Error).message}`);
    }
  }

  /** Counts a mount served by this process until `served` settles; `abort` stops it. */
  track(dir: string, served: Promise<void>, abort: AbortController): void {
    this.#live++;
    this.#mounts.set(dir, abort);
    this.#linger?.cancel();
    this.#linger = null;
    served.catch((e) => this.#log(`${dir}: ${(e as Error).message}`)).finally(() => {
      if (this.#mounts.get(dir) === abort) this.#mounts.delete(dir);
      if (--this.#live === 0) {
        this.#idle();
        this.#releaseSoon();
      }
    });
  }

  /**
   * Once the last mount served has ended, and nothing has for a moment: a full collection frees
   * the projections and sessions (and the native memory their buffers hold), then the C heap's
   * free pages go back to the system — without it the server's RSS kept what its largest mounts
   * had used (src/sys/memory.ts). Not while a mount is served (a full collection would pause its
   * requests): then at the next time none is. The server's log says what it gave back.
   */
  #releaseSoon(): void {
    this.#release?.cancel();
    this.#release = after(RELEASE_AFTER_MS, () => {
      this.#release = null;
      // a mount that started meanwhile: a full collection would pause its requests
      if (this.#exiting || this.#live > 0) return;
      const mib = (n: number) => (n / 1048576).toFixed(1);
      const before = Deno.memoryUsage().rss;
      fullGc()?.();
      const trimmed = releaseFreedMemory();
      this.#log(
        `a mount ended: memory given back (RSS ${mib(before)} → ` +
          `${mib(Deno.memoryUsage().rss)} MiB${trimmed ? "" : "; no malloc_trim here"})`,
      );
    });
  }

  /** Ends at once without serving more (the first mount failed before it served). */
  close(): Promise<void> {
    return this.#exit("closed");
  }

  #idle(): void {
    // (without its socket nobody can ask it for another mount: lingering would be for nothing)
    if (this.#stopAll || this.#lingerMs === 0 || !this.#server) {
      void this.#exit(this.#stopAll ? "stopped" : "no mounts left, and no linger");
      return;
    }
    this.#linger = after(this.#lingerMs, () => {
      if (this.#live === 0) void this.#exit(`no mounts for ${this.#lingerMs / 1000} s`);
    });
  }

  async #exit(why: string): Promise<void> {
    if (this.#exiting) return this.done;
    this.#exiting = true;
    this.#linger?.cancel();
    this.#release?.cancel();
    this.#log(`mount server exits (${why})`);
    // The socket goes first and every request already queued is answered ("retry": this server
    // is exiting), so that a client that connected in the meantime starts its own server instead
    // of seeing its connection closed without a reply; the lock is held until then.
    if (this.#server) await this.#server.drain();
    for (const [s, h] of this.#signals) Deno.removeSignalListener(s, h);
    try {
      this.#lock.close(); // drops the flock
    } catch { /* closed */ }
    this.#logFile?.close();
    this.#end();
  }

  #log(line: string): void {
    try {
      this.#logFile ??= Deno.openSync(`${this.#store.root}/mounts/server.log`, {
        append: true,
        create: true,
        mode: 0o600,
      });
      this.#logFile.writeSync(
        new TextEncoder().encode(`${new Date().toISOString()} [${Deno.pid}] ${line}\n`),
      );
    } catch { /* no log: nothing else to tell */ }
  }

  async #request(v: unknown): Promise<unknown> {
    const op = (v as { op?: unknown })?.op;
    if (op === "stop") {
      this.#stopAll = true;
      const n = this.#mounts.size;
      for (const c of this.#mounts.values()) c.abort();
      if (this.#live === 0) void this.#exit("stopped");
      return { pid: Deno.pid, stopping: n };
    }
    if (op === "list") return { pid: Deno.pid, mounts: [...this.#mounts.keys()].sort() };
    if (op !== "mount") return { error: `unknown op ${JSON.stringify(op)?.slice(0, 40)}` };
    trace("mount server: request");
    const req = parseMountRequest(v);
    if ("invalid" in req) return { error: `Cannot mount: a malformed request (${req.invalid})` };
    const ok = admits(
      { exiting: this.#exiting || this.#stopAll, mntns: this.#mntns, uid: Deno.uid() ?? 0 },
      req,
    );
    if ("retry" in ok) return ok satisfies MountReply;
    try {
      // Paths are resolved with async calls (off this thread) and refused when they lead into a
      // mount this process serves: a blocking call there would wait for this thread's own answer.
      const abs = await realDir(req.dir);
      const log = req.log ?? `${this.#store.root}/mounts/${mountKey(abs)}.log`;
      const inside = insideMount(abs, this.#mounts.keys()) ??
        insideMount(await realDir(log), this.#mounts.keys());
      if (inside === abs) {
        return {
          error: `Cannot mount on ${abs}: hd (pid ${Deno.pid}) already serves a tree there`,
          hint: `run \`hd unmount ${abs}\` first`,
        };
      }
      if (inside) return { retry: `the path lies in ${inside}, which this server serves` };
      const id = this.#opts.resolve(req.ref);
      const abort = new AbortController();
      let ready!: (r: MountRecord) => void;
      const readyP = new Promise<MountRecord>((r) => ready = r);
      const served = serveMount(this.#store, id, abs, {
        rw: req.rw,
        layerView: req.layers,
        log,
        shared: true,
        quietStart: true,
        abort: abort.signal,
        onReady: ready,
      });
      // counted from now: the linger must not end the server while this mount comes up
      this.track(abs, served, abort);
      const rec = await Promise.race([readyP, served.then(() => null)]);
      if (!rec) return { error: `Cannot mount ${req.ref} on ${abs}: it ended before it served` };
      this.#log(`mounted ${id.slice(0, 12)} on ${abs}${req.rw ? " (rw)" : ""}`);
      return { served: { pid: Deno.pid, root: id, dir: abs, log } } satisfies MountReply;
    } catch (e) {
      return {
        error: (e as Error).message,
        ...(e instanceof HdError && e.hint ? { hint: e.hint } : {}),
      } satisfies MountReply;
    }
  }
}

/**
 * Layer directories: a layer tree from the CAS materialized once into
 * `<store>/layers/<tree id>/` (written into a temp sibling and renamed into place), shared by every
 * environment that uses it as an overlayfs lowerdir. OCI whiteouts kept in the tree as files are
 * translated to overlayfs' form: `.wh.NAME` → a character device 0:0 named NAME,
 * `.wh..wh..opq` → the xattr `trusted.overlay.opaque=y` on its directory.
 *
 * The reverse, {@link captureLayer}, turns an overlay upperdir back into a layer tree (whiteouts
 * as `.wh.` entries again), for build-step outputs.
 *
 * @example
 * ```ts
 * import { materializeLayer, captureLayer } from "./layers.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const treeId: string;
 * const dir = materializeLayer(store, treeId).dir;
 * const id = captureLayer(store, "/path/upper", { exclude: ["root/.npm"] }).id;
 * ```
 * @module
 */
import { listDir } from "../sys/nofollow.ts";
import type { Store } from "../cas/store.ts";
import { fileChunks, getNode, readFileChunks } from "../dag/dag.ts";
import { hardlinkKey } from "../dag/checkout.ts";
import type { FileNode } from "../dag/node.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { ingestFile } from "../scan/ingest.ts";
import { libc } from "../sys/libc.ts";
import { HdError } from "../sys/errors.ts";
import { trace } from "../sys/trace.ts";
import { BYTES, DONE, ERROR, ERROR_AT, kib, type WriteJob, writeJob } from "./layer_writer.ts";

/** Prefix of an OCI whiteout entry. */
export const WHITEOUT_PREFIX = ".wh.";
/** Name of the OCI opaque-directory marker. */
export const OPAQUE_MARKER = ".wh..wh..opq";
/** The xattr overlayfs reads to make a directory opaque. */
export const OPAQUE_XATTR = "trusted.overlay.opaque";

/** Where the layer directory of tree `id` lives. */
export function layerDir(store: Store, id: string): string {
  return `${store.root}/layers/${id}`;
}

/** Layer directories that a mounted overlay (or anything else) uses right now, by path. */
function mountedPaths(): string {
  try {
    return Deno.readTextFileSync("/proc/self/mountinfo");
  } catch {
    return "";
  }
}

/**
 * Removes materialized layer directories whose tree no ref reaches any more (gc's reachable set),
 * leaving alone any that a mount still names (a running environment's lowerdir).
 * With `dryRun`, only counts. Returns how many were (or would be) removed.
 */
export function sweepLayerDirs(
  store: Store,
  isLive: (id: string) => boolean,
  dryRun = false,
): { removed: number; kept: number; inUse: number } {
  const r = { removed: 0, kept: 0, inUse: 0 };
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(`${store.root}/layers`)];
  } catch {
    return r;
  }
  const mounts = mountedPaths();
  for (const e of entries) {
    if (!e.isDirectory || !/^[0-9a-f]{64}$/.test(e.name)) continue;
    if (isLive(e.name)) {
      r.kept++;
      continue;
    }
    const dir = layerDir(store, e.name);
    if (mounts.includes(dir)) {
      r.inUse++;
      continue;
    }
    r.removed++;
    if (!dryRun) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* busy or gone: the next gc tries again */ }
    }
  }
  return r;
}

/** What {@link materializeLayer} did. */
export interface MaterializedLayer {
  id: string;
  dir: string;
  /** False when the directory already existed (reused). */
  created: boolean;
  files: number;
  bytes: number;
  whiteouts: number;
  /** Extended attributes set (e.g. `security.capability`). */
  xattrs: number;
  /** Extended attributes the filesystem refused (or that need root), left out. */
  xattrsSkipped: number;
  ms: number;
}

const isRoot = Deno.uid() === 0;

type Meta = { uid?: number; gid?: number; mtime?: number; xattrs?: [string, Uint8Array][] };

function meta(path: string, mode: number, n: Meta, out: MaterializedLayer) {
  if (isRoot && (n.uid || n.gid)) libc().lchown(path, n.uid ?? 0, n.gid ?? 0);
  // xattrs after lchown (which clears security.capability); one the filesystem refuses (or a
  // non-root user may not set) is counted, not fatal.
  for (const [name, value] of n.xattrs ?? []) {
    if (!isRoot && !name.startsWith("user.")) {
      out.xattrsSkipped++;
      continue;
    }
    try {
      libc().setxattr(path, name, value);
      out.xattrs++;
    } catch {
      out.xattrsSkipped++;
    }
  }
  if ((mode & S_IFMT) !== S_IFLNK) {
    Deno.chmodSync(path, mode & 0o7777);
    if (n.mtime !== undefined) Deno.utimeSync(path, n.mtime, n.mtime);
  }
}

/** How {@link materializeLayer} writes files. */
export interface MaterializeOptions {
  /**
   * Writer threads for regular files (0: all on this thread). Default `HD_LAYER_WRITERS` or
   * {@link DEFAULT_WRITERS}.
   */
  writers?: number;
  /** Regular files written on this thread before the writers start (a small layer needs none). */
  inlineFiles?: number;
}

/** Writer threads of a large layer: creating inodes is the kernel's work, on another core. */
export const DEFAULT_WRITERS = 2;

/** At most this many writer threads, whatever is asked (a mistyped 1000 starts eight). */
export const MAX_WRITERS = 8;

/**
 * The writer threads `HD_LAYER_WRITERS` asks for (`raw`: its value, undefined when unset):
 * {@link DEFAULT_WRITERS} when unset or empty, the number clamped to 0–{@link MAX_WRITERS}, and an
 * error naming the variable for anything but a whole number.
 *
 * @example
 * ```ts
 * import { layerWriters } from "./layers.ts";
 * layerWriters(undefined); // 2
 * layerWriters("1000"); // 8
 * ```
 */
export function layerWriters(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === "") return DEFAULT_WRITERS;
  const n = Number(raw.trim());
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n)) {
    throw new HdError(
      `Cannot write layers with HD_LAYER_WRITERS=${JSON.stringify(raw)}: not a whole number`,
      `set it to 0–${MAX_WRITERS} (threads that write a layer's files; 0 writes on one) or unset it`,
      2,
    );
  }
  return Math.min(n, MAX_WRITERS);
}
/** Files a layer writes itself before starting writers (starting one costs tens of ms). */
export const INLINE_FILES = 1000;
/** A batch posted to a writer closes at this many bytes (of file contents) or files. */
const BATCH_BYTES = 1 << 20, BATCH_FILES = 256;
/** File bytes posted but not yet written, at most (KiB): keeps the writers' queues short. */
const IN_FLIGHT_KIB = 32 << 10;
/** No writer progress for this long means a writer died (it cannot tell this thread otherwise). */
const STALL_MS = 120_000;

/** The error of a file that could not be written into layer `id`. */
function writeError(id: string, why: string): HdError {
  return new HdError(
    `Cannot materialize layer ${id.slice(0, 12)}: ${why}`,
    "`hd cas verify` checks the store; free space and permissions of the store's layers/ count too",
  );
}

/** The current umask (read, then set back). */
function currentUmask(): number {
  const m = Deno.umask(0o022);
  Deno.umask(m);
  return m;
}

/**
 * Writer threads fed in batches from a thread that stays synchronous: it waits on shared counters,
 * never on its event loop (which does not run inside materializeLayer).
 */
class WriterPool {
  #workers: Worker[] = [];
  #shared = new SharedArrayBuffer(16 + 4096);
  #counts = new Int32Array(this.#shared);
  #jobs: WriteJob[] = [];
  #size = 0;
  #posted = 0;
  #postedKib = 0;
  #next = 0;

  #layer: string;

  constructor(n: number, umask: number, store: string, layer: string) {
    this.#layer = layer;
    const url = new URL("./layer_writer.ts", import.meta.url);
    for (let i = 0; i < n; i++) {
      const w = new Worker(url, { type: "module" });
      w.postMessage({ init: { sab: this.#shared, umask, root: isRoot, store } });
      this.#workers.push(w);
    }
  }

  /** Queues one file for writing. */
  add(job: WriteJob): void {
    this.#jobs.push(job);
    this.#size += job.len;
    if (this.#size >= BATCH_BYTES || this.#jobs.length >= BATCH_FILES) this.flush();
  }

  /** Posts the open batch to the next writer, once few enough bytes are in flight. */
  flush(): void {
    if (!this.#jobs.length) return;
    this.#wait(() => this.#postedKib - Atomics.load(this.#counts, BYTES) <= IN_FLIGHT_KIB);
    const jobs = this.#jobs;
    this.#posted += jobs.length;
    for (const j of jobs) this.#postedKib += kib(j.len);
    this.#workers[this.#next++ % this.#workers.length].postMessage({ jobs });
    this.#jobs = [];
    this.#size = 0;
  }

  /** Waits until every posted file is written; throws the first writer's error. */
  drain(): void {
    this.flush();
    this.#wait(() => Atomics.load(this.#counts, DONE) >= this.#posted);
    const len = Atomics.load(this.#counts, ERROR);
    if (len !== 0) {
      const text = new TextDecoder().decode(
        new Uint8Array(this.#shared, ERROR_AT, Math.max(0, len)).slice(),
      );
      throw writeError(this.#layer, text);
    }
  }

  /** Ends the writer threads. */
  close(): void {
    for (const w of this.#workers) w.terminate();
  }

  #wait(ready: () => boolean): void {
    let seen = Atomics.load(this.#counts, DONE);
    let since = performance.now();
    while (!ready()) {
      if (
        Atomics.load(this.#counts, ERROR) !== 0 && this.#posted === Atomics.load(this.#counts, DONE)
      ) return;
      Atomics.wait(this.#counts, DONE, seen, 1000);
      const now = Atomics.load(this.#counts, DONE);
      if (now !== seen) (seen = now, since = performance.now());
      else if (performance.now() - since > STALL_MS) {
        throw new HdError(
          `Cannot materialize a layer: its writer threads made no progress for ${
            STALL_MS / 1000
          } s`,
          "set HD_LAYER_WRITERS=0 to write on one thread, and report this",
        );
      }
    }
  }
}

/**
 * Writes layer tree `id` into `<store>/layers/<id>/` unless it is already there. Needs root (or
 * CAP_MKNOD) for whiteouts and device nodes. A large layer's regular files are read from the
 * store, verified and written by writer threads while this thread walks the tree and makes its
 * directories (the same result).
 */
export function materializeLayer(
  store: Store,
  id: string,
  opts: MaterializeOptions = {},
): MaterializedLayer {
  const t0 = performance.now();
  const dir = layerDir(store, id);
  const out: MaterializedLayer = {
    id,
    dir,
    created: false,
    files: 0,
    bytes: 0,
    whiteouts: 0,
    xattrs: 0,
    xattrsSkipped: 0,
    ms: 0,
  };
  try {
    Deno.statSync(dir);
    out.ms = performance.now() - t0;
    return out;
  } catch { /* not yet */ }
  Deno.mkdirSync(`${store.root}/layers`, { recursive: true });
  const tmp = `${store.root}/layers/.tmp-${id.slice(0, 16)}-${Deno.pid}-${Date.now().toString(36)}`;
  const dirs: [string, number, Meta][] = [];
  const linked = new Map<string, string>();
  // hardlinks wait for the writers (their first name may not be written yet)
  const links: [string, string][] = [];
  const writers = Math.min(
    Math.max(opts.writers ?? layerWriters(Deno.env.get("HD_LAYER_WRITERS")), 0),
    MAX_WRITERS,
  );
  const inline = opts.inlineFiles ?? INLINE_FILES;
  const umask = currentUmask();
  let pool: WriterPool | null = null;
  let regular = 0;
  const writeFile = (path: string, f: FileNode) => {
    const type = f.mode & S_IFMT;
    if (type === S_IFLNK) {
      Deno.symlinkSync(f.target ?? "", path);
    } else if (type === S_IFREG) {
      // an image's hardlinked pair (the same File node) stays one inode
      const key = hardlinkKey(f);
      const first = key === null ? undefined : linked.get(key);
      if (first !== undefined) {
        links.push([first, path]);
        out.files++;
        return;
      }
      if (key !== null) linked.set(key, path);
      out.files++;
      out.bytes += f.size;
      if (!f.xattrs?.length) {
        const job: WriteJob = {
          path,
          chunks: fileChunks(store, f),
          len: f.size,
          mode: f.mode,
          uid: f.uid,
          gid: f.gid,
          mtime: f.mtime,
        };
        if (writers > 0 && ++regular > inline) {
          if (pool === null) {
            // the writers read the store themselves: objects still in a pending pack go out first
            store.flushPack();
            pool = new WriterPool(writers, umask, store.root, id);
          }
          pool.add(job);
        } else {
          try {
            writeJob(store, job, umask, isRoot); // as a writer would
          } catch (e) {
            throw writeError(id, `${path}: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
        return;
      }
      const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
      try {
        for (const c of readFileChunks(store, f)) {
          let off = 0;
          while (off < c.length) off += file.writeSync(c.subarray(off));
        }
      } finally {
        file.close();
      }
    } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
      libc().mknod(path, f.mode, f.rdev ?? 0);
    } else return;
    meta(path, f.mode, f, out);
  };
  const walk = (treeId: string, path: string) => {
    const node = getNode(store, treeId);
    if (node.type !== "dir") throw new Error(`Cannot materialize layer ${id}: ${treeId} is no dir`);
    Deno.mkdirSync(path, { mode: 0o700 });
    for (const e of node.entries) {
      if (e.name.includes("/") || e.name === "." || e.name === ".." || e.name === "") {
        throw new Error(`Cannot materialize layer ${id}: unsafe name "${e.name}"`);
      }
      const p = `${path}/${e.name}`;
      if (e.name === OPAQUE_MARKER) {
        libc().setxattr(path, OPAQUE_XATTR, "y");
        out.whiteouts++;
      } else if (e.name.startsWith(WHITEOUT_PREFIX)) {
        libc().mknodChar(`${path}/${e.name.slice(WHITEOUT_PREFIX.length)}`, 0);
        out.whiteouts++;
      } else if (e.dir !== undefined) walk(e.dir, p);
      else writeFile(p, e.file);
    }
    dirs.push([path, node.mode, node]);
  };
  try {
    try {
      walk(id, tmp);
      (pool as WriterPool | null)?.drain();
    } finally {
      (pool as WriterPool | null)?.close();
    }
    for (const [first, path] of links) Deno.linkSync(first, path);
    // directory modes and times last, deepest first (children were written inside them)
    for (const [p, mode, n] of dirs) meta(p, mode, n, out);
    try {
      Deno.renameSync(tmp, dir);
      out.created = true;
    } catch (e) {
      // another process materialized it first: keep theirs
      Deno.removeSync(tmp, { recursive: true });
      try {
        Deno.statSync(dir);
      } catch {
        throw e;
      }
    }
  } catch (e) {
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch { /* nothing made */ }
    throw e;
  }
  out.ms = performance.now() - t0;
  trace(
    `layer ${id.slice(0, 12)} materialized: ${out.files} files, ${out.bytes} bytes, ` +
      `${pool === null ? "1 thread" : `${writers} writers`}, ${out.ms.toFixed(0)} ms`,
  );
  return out;
}

/** What {@link captureLayer} stored. */
export interface CapturedLayer {
  /** Id of the layer tree. */
  id: string;
  files: number;
  bytes: number;
  whiteouts: number;
  /** True when the upperdir held nothing (no change). */
  empty: boolean;
}

/**
 * Ingests an overlay upperdir as a layer tree: files, symlinks, directories (with owners and
 * modes), device nodes; a 0:0 character device becomes a `.wh.NAME` file and an opaque directory
 * gets a `.wh..wh..opq` entry. Paths in `exclude` (relative to the upperdir) are left out. With
 * `root`, the directory's own mode and owner become the tree root's (a volume's snapshot; an
 * upperdir's own metadata is not part of a layer, whose root is 0755 root).
 */
export function captureLayer(
  store: Store,
  upper: string,
  opts: { exclude?: string[]; root?: boolean } = {},
): CapturedLayer {
  const exclude = new Set((opts.exclude ?? []).map((p) => p.replace(/^\/+|\/+$/g, "")));
  const out: CapturedLayer = { id: "", files: 0, bytes: 0, whiteouts: 0, empty: true };
  const whiteout: FileNode = { type: "file", mode: S_IFREG | 0o644, size: 0, chunks: [] };
  // overlayfs keeps its own state in trusted.overlay.* (opaque, redirect, origin…): never content
  const ownXattr = (name: string) => !name.startsWith("trusted.overlay.");
  const keep = (st: Deno.FileInfo, p: string) => {
    const xattrs = libc().xattrs(p, ownXattr);
    return {
      ...(st.uid ? { uid: st.uid } : {}),
      ...(st.gid ? { gid: st.gid } : {}),
      ...(xattrs.length ? { xattrs } : {}),
    };
  };
  // names of one inode (a hardlink the step made) share one File node and a link group, written
  // back as one inode on checkout (as an image layer's hardlinks are)
  const inodes = new Map<string, FileNode>();
  let links = 0;
  const walk = (abs: string, rel: string, into: MemDir) => {
    if (libc().getxattr(abs, OPAQUE_XATTR) === "y") {
      into.entries.set(OPAQUE_MARKER, whiteout);
      out.whiteouts++;
    }
    // a step's upper directory: what it left running may still write to it, so nothing below
    // `upper` is followed through a symlink (src/sys/nofollow.ts)
    for (const e of listDir(abs, upper)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (exclude.has(r)) continue;
      const p = `${abs}/${e.name}`;
      const st = Deno.lstatSync(p);
      const type = (st.mode ?? 0) & S_IFMT;
      out.empty = false;
      if (type === S_IFDIR) {
        const d = new MemDir(st.mode!);
        d.meta = keep(st, p);
        into.entries.set(e.name, d);
        walk(p, r, d);
      } else if (type === S_IFCHR && (st.rdev ?? 0) === 0) {
        into.entries.set(WHITEOUT_PREFIX + e.name, whiteout);
        out.whiteouts++;
      } else if (type === S_IFREG || type === S_IFLNK) {
        const ino = type === S_IFREG && (st.nlink ?? 1) > 1 ? `${st.dev}:${st.ino}` : "";
        const seen = ino ? inodes.get(ino) : undefined;
        if (seen) {
          seen.link ??= ++links;
          into.entries.set(e.name, seen);
          continue;
        }
        const f = ingestFile(store, p, st, upper);
        Object.assign(f, keep(st, p));
        if (ino) inodes.set(ino, f);
        into.entries.set(e.name, f);
        if (type === S_IFREG) (out.files++, out.bytes += st.size);
      } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
        into.entries.set(e.name, {
          type: "file",
          mode: st.mode!,
          size: 0,
          rdev: st.rdev ?? 0,
          ...keep(st, p),
        });
      }
    }
  };
  const top = opts.root ? Deno.statSync(upper) : null;
  const root = new MemDir(top ? top.mode! : S_IFDIR | 0o755);
  if (top) root.meta = keep(top, upper);
  walk(upper, "", root);
  out.id = new Tree(root).commit(store);
  return out;
}

/** What a path looked like before a step ran in a hardlink farm. */
export interface FarmEntry {
  ino: number;
  mtime: number;
  size: number;
  mode: number;
}

/** Inode, mtime, size and mode of every path below `dir` (relative paths). */
export function farmSnapshot(dir: string): Map<string, FarmEntry> {
  const out = new Map<string, FarmEntry>();
  const walk = (abs: string, rel: string) => {
    for (const e of Deno.readDirSync(abs)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = Deno.lstatSync(`${abs}/${e.name}`);
      out.set(r, {
        ino: st.ino ?? 0,
        mtime: st.mtime?.getTime() ?? 0,
        size: st.size,
        mode: st.mode ?? 0,
      });
      if (st.isDirectory) walk(`${abs}/${e.name}`, r);
    }
  };
  walk(dir, "");
  return out;
}

/**
 * The changes a step made to a hardlink farm (see rootfs.ts) as a layer tree: paths that are new
 * or whose inode, mtime, size or mode changed since `before`, and `.wh.` entries for paths that
 * are gone. Paths in `exclude` (and below them) are left out.
 */
export function captureFarm(
  store: Store,
  farm: string,
  before: Map<string, FarmEntry>,
  opts: { exclude?: string[] } = {},
): CapturedLayer {
  const exclude = (opts.exclude ?? []).map((p) => p.replace(/^\/+|\/+$/g, ""));
  const skip = (r: string) => exclude.some((x) => r === x || r.startsWith(`${x}/`));
  const out: CapturedLayer = { id: "", files: 0, bytes: 0, whiteouts: 0, empty: true };
  const tree = new Tree(new MemDir(S_IFDIR | 0o755));
  const whiteout: FileNode = { type: "file", mode: S_IFREG | 0o644, size: 0, chunks: [] };
  const seen = new Set<string>();
  const walk = (abs: string, rel: string) => {
    for (const e of listDir(abs, farm)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      seen.add(r);
      const p = `${abs}/${e.name}`;
      const st = Deno.lstatSync(p);
      const b = before.get(r);
      const changed = !b || b.ino !== st.ino || b.mtime !== (st.mtime?.getTime() ?? 0) ||
        b.size !== st.size || b.mode !== st.mode;
      if (st.isDirectory) {
        if (changed) {
          const d = new MemDir(st.mode!);
          if (st.uid || st.gid) d.meta = { uid: st.uid || undefined, gid: st.gid || undefined };
          tree.setDir(r, d);
          out.empty = false;
        }
        walk(p, r);
      } else if (changed && (st.isFile || st.isSymlink)) {
        const f = ingestFile(store, p, st, farm);
        if (st.uid) f.uid = st.uid;
        if (st.gid) f.gid = st.gid;
        tree.setFile(r, f);
        out.empty = false;
        if (st.isFile) (out.files++, out.bytes += st.size);
      }
    }
  };
  walk(farm, "");
  for (const r of before.keys()) {
    if (seen.has(r) || skip(r)) continue;
    const slash = r.lastIndexOf("/");
    const parent = slash < 0 ? "" : r.slice(0, slash);
    if (parent !== "" && !seen.has(parent)) continue; // the parent went too: one whiteout above
    tree.setFile(
      parent ? `${parent}/${WHITEOUT_PREFIX}${r.slice(slash + 1)}` : `${WHITEOUT_PREFIX}${r}`,
      whiteout,
    );
    out.whiteouts++;
    out.empty = false;
  }
  out.id = tree.commit(store);
  return out;
}

/**
 * `layers` (lowest first) with each repeated layer kept only at its highest place: two steps can
 * leave the same layer (e.g. both wrote only below /tmp), and overlayfs refuses a lowerdir given
 * twice (ELOOP). The upper copy already covers everything the lower one gave, so the root is the
 * same.
 *
 * @example
 * ```ts
 * import { uniqueLayers } from "./layers.ts";
 * uniqueLayers(["a", "b", "a"]); // ["b", "a"]
 * ```
 */
export function uniqueLayers(layers: string[]): string[] {
  return layers.filter((id, i) => layers.indexOf(id, i + 1) === -1);
}

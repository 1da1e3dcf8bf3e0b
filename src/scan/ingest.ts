/**
 * Ingest: files and trees on disk → chunks in the store → File nodes and Dir nodes.
 *
 * Files are cut with FastCDC, each chunk stored once under its BLAKE3 id. A file of at most
 * {@link INLINE_CHUNKS} chunks keeps its chunk list inline in its File node; a larger one gets a
 * stored manifest. The walk honours a {@link PathFilter}; a {@link StatCache} lets an unchanged
 * file skip being read; hardlinked files are read once per scan.
 *
 * Extended attributes of project files are deliberately not read (File and Dir nodes can carry
 * them, for image layers): a project tree's id must not depend on which machine or filesystem it
 * was scanned on (SELinux labels, `user.*` tags from editors or downloads), and an llistxattr per
 * file would slow the scan for nothing a project needs.
 *
 * @example
 * ```ts
 * import { ingestTree } from "./ingest.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const { root, files } = ingestTree(store, "./my-project");
 * ```
 * @module
 */
import { chunkBlocks, chunkBoundaries } from "../cas/chunk.ts";
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { type FileNode, INLINE_CHUNKS } from "../dag/node.ts";
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { readBlocks, readWhole, STREAM_THRESHOLD } from "./blocks.ts";
import { PathFilter } from "./filter.ts";
import { StatCache, type StatSig } from "./statcache.ts";
import { type LightStat, lstatLight } from "../sys/lstat.ts";
import { blake3Hex } from "../cas/hash.ts";
import { listDir, readLink } from "../sys/nofollow.ts";
import { encodeManifest } from "../cas/manifest.ts";

export { STREAM_THRESHOLD } from "./blocks.ts";

/** Counters reported while a tree is ingested. */
export interface IngestProgress {
  files: number;
  dirs: number;
  /** Bytes of all tracked files. */
  bytes: number;
  /** Bytes actually read (cache misses). */
  bytesRead: number;
}

/** What {@link ingestTree} produced. */
export interface IngestResult extends IngestProgress {
  /** Id of the root Dir node. */
  root: string;
  /** The in-memory tree, for incremental updates. */
  tree: Tree;
  /** Files answered by the stat cache without reading. */
  cacheHits: number;
  /** Paths skipped (sockets, fifos, devices, unreadable), with the reason. */
  skipped: { path: string; why: string }[];
  /** Every directory the walk read ("" the root), kept in the tree or not (empty ones). */
  walked: string[];
}

/** Options of {@link ingestTree}. */
export interface IngestOptions {
  filter?: PathFilter;
  cache?: StatCache;
  /** Called every few hundred files. */
  onProgress?: (p: IngestProgress) => void;
  /**
   * False: only hash (ids as the store would give them), write nothing to the store, and take
   * the stat cache's ids without checking they are stored (`hd status`). Default true.
   */
  write?: boolean;
  /**
   * The trusted directory the tree lies in (default: the tree's own directory). Below it the walk
   * follows no symlink when it lists, reads a link or opens a file, so that whatever else writes
   * to the tree while it is walked cannot make it read outside (src/sys/nofollow.ts).
   */
  root?: string;
}

/** Where {@link ingestFile} puts content: a Store, or {@link HASH_ONLY}. */
export type ContentSink = Pick<Store, "putObject" | "putManifest">;

/** A sink that stores nothing: each put returns the id the store would give. */
export const HASH_ONLY: ContentSink = {
  putObject: (bytes) => blake3Hex(bytes),
  putManifest: (m) => blake3Hex(encodeManifest(m)),
};

/** The stat signature of a {@link LightStat} (the same as {@link statSig} of its FileInfo). */
export function lightSig(st: LightStat): StatSig {
  return { size: st.size, mtime: st.mtime, ctime: st.ctime, ino: st.ino, mode: st.mode };
}

/** The stat signature of a FileInfo. */
export function statSig(st: Deno.FileInfo): StatSig {
  return {
    size: st.size,
    mtime: st.mtime?.getTime() ?? 0,
    ctime: st.ctime?.getTime() ?? 0,
    ino: st.ino ?? 0,
    mode: st.mode ?? 0,
  };
}

function storeChunks(store: ContentSink, chunks: Iterable<Uint8Array>): string[] {
  const ids: string[] = [];
  for (const c of chunks) ids.push(store.putObject(c));
  return ids;
}

/**
 * Stores the bytes of one file (or symlink) given its lstat, and returns its File node. With
 * `root` (the tree `path` was found in, which something else may be writing to), no symlink is
 * followed below it and only a regular file is read: a path swapped for a symlink, or a directory
 * above it swapped for one, after its lstat fails to read instead of reading where the link
 * points (src/sys/nofollow.ts).
 */
export function ingestFile(
  store: ContentSink,
  path: string,
  st: Deno.FileInfo,
  root?: string,
): FileNode {
  const mode = st.mode ?? (st.isSymlink ? S_IFLNK | 0o777 : S_IFREG | 0o644);
  if ((mode & S_IFMT) === S_IFLNK) {
    const target = readLink(path, root);
    return { type: "file", mode, size: new TextEncoder().encode(target).length, target };
  }
  let ids: string[];
  let size: number;
  if (st.size > STREAM_THRESHOLD) {
    size = 0;
    ids = [];
    for (const c of chunkBlocks(readBlocks(path, undefined, root))) {
      ids.push(store.putObject(c));
      size += c.length;
    }
  } else {
    const bytes = readWhole(path, st.size, root);
    size = bytes.length;
    ids = storeChunks(
      store,
      (function* () {
        for (const [a, b] of chunkBoundaries(bytes)) yield bytes.subarray(a, b);
      })(),
    );
  }
  const f: FileNode = { type: "file", mode, size };
  if (ids.length <= INLINE_CHUNKS) f.chunks = ids;
  else f.manifest = store.putManifest({ size, chunks: ids });
  return f;
}

/**
 * The File node of the file or symlink at `abs` as a scan makes it from its lstat `st` (a
 * regular file with no mode bits gets 0644), its content put into `sink`; null for anything else
 * (a directory, a socket, a device). `root`: as {@link ingestFile}'s.
 */
export function ingestPath(
  sink: ContentSink,
  abs: string,
  st: LightStat,
  root?: string,
): FileNode | null {
  if (!st.isFile && !st.isSymlink) return null;
  return ingestFile(sink, abs, {
    mode: st.isSymlink ? st.mode : st.mode || S_IFREG | 0o644,
    size: st.size,
    isSymlink: st.isSymlink,
  } as Deno.FileInfo, root);
}

/** Stores in-memory bytes as a regular file's content. */
export function ingestBytes(store: Store, bytes: Uint8Array, mode = S_IFREG | 0o644): FileNode {
  const ids: string[] = [];
  for (const [a, b] of chunkBoundaries(bytes)) ids.push(store.putObject(bytes.subarray(a, b)));
  const f: FileNode = { type: "file", mode, size: bytes.length };
  if (ids.length <= INLINE_CHUNKS) f.chunks = ids;
  else f.manifest = store.putManifest({ size: bytes.length, chunks: ids });
  return f;
}

/** A regular file whose content still has to be read (a stat-cache miss). */
interface FileJob {
  dir: MemDir;
  name: string;
  rel: string;
  abs: string;
  mode: number;
  size: number;
  sig: StatSig;
  /** Other tracked paths hardlinked to this one: they share its node. */
  aliases: { dir: MemDir; name: string; rel: string; sig: StatSig }[];
  /**
   * The file's node once placed, null when it could not be read (a hardlink the walk finds after
   * that — the readers run alongside the walk — takes this at once).
   */
  result?: FileNode | null;
}

/** A file answered by the stat cache: its ids are checked against the store before reuse. */
interface CacheHit {
  name: string;
  rel: string;
  abs: string;
  sig: StatSig;
  f: FileNode;
}

interface Walked {
  tree: Tree;
  /** Stat-cache hits per directory. */
  hits: Map<MemDir, CacheHit[]>;
  /** Every directory with its path, to record its id in the stat cache after commit. */
  dirs: [string, MemDir][];
  /** Files to read, in walk order; an entry is nulled once its file is placed. */
  jobs: FileJob[];
  progress: IngestProgress;
  skipped: { path: string; why: string }[];
  /** True once the walk (and the check of what it took from the cache) is complete. */
  walked: boolean;
  /** Directories already stored and unloaded (see {@link Walked.settle}); finish skips them. */
  sealed: WeakSet<MemDir>;
  /**
   * Called once per placed (or failed) file in `dir`: when a directory the walk has finished has
   * nothing left to read and took nothing from the stat cache, its Dir node is written and its
   * children are dropped from memory (they reload from the store if the tree is used later).
   */
  settle(dir: MemDir): void;
  /** Bytes of the jobs found so far. */
  queuedBytes: number;
  /**
   * Walks on until at least `jobs` jobs beyond index `from` exist, or the walk is complete. The
   * walk runs only as far ahead of the readers as they ask: a large tree never holds a job for
   * every file at once.
   */
  pump(from: number, jobs: number): void;
}

/**
 * Walks `dir` applying the filter and the stat cache, lazily (see {@link Walked.pump}). Cache hits
 * and symlinks are resolved at once; regular files that must be read become jobs (placed in the
 * tree once done).
 */
function walkTree(
  store: Store,
  dir: string,
  opts: IngestOptions,
  progress: IngestProgress,
): Walked {
  const filter = opts.filter ?? new PathFilter();
  const cache = opts.cache!;
  const trusted = opts.root ?? dir;
  let rootSt: Deno.FileInfo;
  try {
    rootSt = Deno.statSync(dir);
  } catch (e) {
    throw new HdError(`Cannot add ${dir}: ${(e as Error).message}`, "check the path");
  }
  if (!rootSt.isDirectory) throw new HdError(`Cannot add ${dir}: not a directory`, "");
  const skipped: { path: string; why: string }[] = [];
  const jobs: FileJob[] = [];
  const byIno = new Map<string, FileJob>();

  const pending = new Map<MemDir, number>();
  const dirs: [string, MemDir][] = [];
  const hits = new Map<MemDir, CacheHit[]>();
  // Per walked directory: files and subdirectories still open below it. A directory holding a
  // stat-cache hit (or under whose subtree one is) is "tainted": it waits for the final commit,
  // since checkCached may still re-read its hits.
  interface DirState {
    d: MemDir;
    rel: string;
    parent: DirState | null;
    open: number;
    walked: boolean;
    tainted: boolean;
  }
  const states = new Map<MemDir, DirState>();
  const sealed = new WeakSet<MemDir>();
  const seal = (st: DirState): void => {
    // a scan that writes nothing (hd status) keeps every directory in memory: a sealed one is
    // stored, then unloaded and read back from the store
    if (opts.write === false) return;
    const d = st.d;
    new Tree(d).commit(store);
    cache.recordDir(st.rel, d.id!, d.entries.size, d.mode);
    d.unload(store);
    sealed.add(d);
    states.delete(d);
  };
  const trySeal = (st: DirState): void => {
    while (st.walked && st.open === 0 && !st.tainted && st.parent) {
      const parent: DirState = st.parent;
      seal(st);
      parent.open--;
      st = parent;
    }
  };
  // A generator: it pauses after each job it finds, so readers can start before the walk ends.
  const walk = function* (
    abs: string,
    rel: string,
    mode: number,
    d = new MemDir(mode),
  ): Generator<void, MemDir | null> {
    const state: DirState = { d, rel, parent: null, open: 0, walked: false, tainted: false };
    states.set(d, state);
    // Clean: every entry below was answered by the stat cache, so the Dir id recorded last time
    // can be reused without encoding or hashing anything.
    let clean = true;
    let entries: Deno.DirEntry[];
    try {
      entries = listDir(abs, trusted);
    } catch (e) {
      skipped.push({ path: rel || ".", why: (e as Error).message });
      return rel === "" ? d : null;
    }
    progress.dirs++;
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const a = `${abs}/${e.name}`;
      if (filter.excludedEntry(r, e.name)) continue;
      let st: LightStat;
      try {
        st = lstatLight(a);
      } catch (err) {
        skipped.push({ path: r, why: (err as Error).message });
        continue;
      }
      if (st.isDirectory) {
        const sub = yield* walk(a, r, st.mode || S_IFDIR | 0o755);
        if (!sub || sub.id === null) clean = false;
        const subState = sub ? states.get(sub) : undefined;
        if (sub && (sub.entries.size > 0 || pending.has(sub) || filter.keepsEmptyDir(r))) {
          d.entries.set(e.name, sub);
          if (pending.has(sub)) pending.set(d, 1);
          if (subState) {
            if (subState.tainted || sub.id !== null) state.tainted = true;
            else {
              subState.parent = state;
              if (subState.open === 0) seal(subState);
              else state.open++;
            }
          }
        } else if (subState) states.delete(sub!);
        continue;
      }
      if (!st.isFile && !st.isSymlink) {
        skipped.push({ path: r, why: "not a regular file, directory or symlink" });
        continue;
      }
      if (!filter.includesUnexcluded(r)) continue;
      const sig = lightSig(st);
      const f = cache.lookup(r, sig);
      if (f !== null) {
        d.entries.set(e.name, f);
        const h = hits.get(d);
        const hit = { name: e.name, rel: r, abs: a, sig, f };
        if (h) h.push(hit);
        else hits.set(d, [hit]);
        state.tainted = true;
        progress.files++;
        progress.bytes += f.size;
        continue;
      }
      clean = false;
      if (st.isSymlink) {
        try {
          const link = ingestPath(store, a, st, trusted)!;
          cache.record(r, sig, link);
          d.entries.set(e.name, link);
          progress.files++;
          progress.bytes += link.size;
        } catch (err) {
          skipped.push({ path: r, why: (err as Error).message });
        }
        continue;
      }
      const inoKey = st.nlink && st.nlink > 1 ? `${st.dev}:${st.ino}` : "";
      const first = inoKey ? byIno.get(inoKey) : undefined;
      if (first) {
        if (first.result === undefined) {
          first.aliases.push({ dir: d, name: e.name, rel: r, sig });
          pending.set(d, 1);
          state.open++;
        } else if (first.result === null) {
          skipped.push({ path: r, why: `its hardlink ${first.rel} could not be read` });
        } else {
          const f = first.result;
          d.entries.set(e.name, f);
          cache.record(r, sig, f);
          progress.files++;
          progress.bytes += f.size;
        }
        continue;
      }
      pending.set(d, 1);
      const job: FileJob = {
        dir: d,
        name: e.name,
        rel: r,
        abs: a,
        mode: st.mode || S_IFREG | 0o644,
        size: st.size,
        sig,
        aliases: [],
      };
      jobs.push(job);
      state.open++;
      w.queuedBytes += job.size;
      if (inoKey) byIno.set(inoKey, job);
      yield;
    }
    if (clean) d.id = cache.lookupDir(rel, d.entries.size, mode);
    if (d.id !== null) state.tainted = true; // reused as recorded: committed at the end
    dirs.push([rel, d]);
    state.walked = true;
    return d;
  };
  const rootMode = rootSt.mode ?? S_IFDIR | 0o755;
  const rootDir = new MemDir(rootMode);
  const gen = walk(dir, "", rootMode, rootDir);
  const w: Walked = {
    tree: new Tree(rootDir),
    hits,
    dirs,
    jobs,
    progress,
    skipped,
    walked: false,
    queuedBytes: 0,
    sealed,
    settle(dir) {
      const st = states.get(dir);
      if (!st) return;
      st.open--;
      trySeal(st);
    },
    pump(from, want) {
      while (!w.walked && jobs.length - from < want) {
        if (!gen.next().done) continue;
        // Cache hits are checked once the walk is complete; a file whose content is missing
        // becomes one more job.
        if (opts.write !== false) checkCached(store, w, cache);
        hits.clear();
        w.walked = true;
      }
    },
  };
  return w;
}

function contentStored(store: Store, f: FileNode): boolean {
  if (f.target !== undefined) return true;
  // A manifest is written after its chunks: its presence vouches for them.
  if (f.manifest !== undefined) return store.has(f.manifest, "manifests");
  for (const c of f.chunks ?? []) if (!store.has(c)) return false;
  return true;
}

/**
 * Checks every id the walk took from the stat cache against the store before it is reused: a
 * reused Dir id must be stored (it then vouches for everything below it: a Dir node is written
 * after its children); a cached file's chunks or manifest must be stored. A file whose content is
 * not is read again (it becomes a job), and the directories above it are re-encoded. The cache is
 * authenticated (statcache.ts); this catches objects lost without a gc (a damaged or hand-edited
 * store). In a leased writer each check also records the id in the lease.
 */
function checkCached(store: Store, w: Walked, cache: StatCache): void {
  const check = (d: MemDir): boolean => {
    if (d.id !== null) {
      if (store.has(d.id)) return true;
      d.id = null;
    }
    let ok = true;
    for (const child of d.entries.values()) {
      if (child instanceof MemDir && !check(child)) ok = false;
    }
    for (const h of w.hits.get(d) ?? []) {
      if (contentStored(store, h.f)) continue;
      ok = false;
      d.entries.delete(h.name);
      cache.forget(h.rel);
      w.progress.files--;
      w.progress.bytes -= h.f.size;
      w.jobs.push({
        dir: d,
        name: h.name,
        rel: h.rel,
        abs: h.abs,
        mode: h.sig.mode,
        size: h.sig.size,
        sig: h.sig,
        aliases: [],
      });
    }
    return ok;
  };
  check(w.tree.root);
}

/** Drops the walk's record of job `i` once its file is placed (a large add holds no job after). */
function releaseJob(w: Walked, i: number): void {
  (w.jobs as (FileJob | null)[])[i] = null;
}

function fileFromChunks(store: Store, mode: number, size: number, ids: string[]): FileNode {
  const f: FileNode = { type: "file", mode, size };
  if (ids.length <= INLINE_CHUNKS) f.chunks = ids;
  else f.manifest = store.putManifest({ size, chunks: ids });
  return f;
}

function place(
  w: Walked,
  job: FileJob,
  f: FileNode,
  cache: StatCache,
  progress: IngestProgress,
): void {
  job.result = f;
  for (const t of [job, ...job.aliases]) {
    t.dir.entries.set(t.name, f);
    cache.record(t.rel, t.sig, f);
    progress.files++;
    progress.bytes += f.size;
  }
  progress.bytesRead += f.size;
  settleJob(w, job);
}

/** A job is done (placed or failed): its directories (and its hardlinks') may now be sealed. */
function settleJob(w: Walked, job: FileJob): void {
  for (const t of [job, ...job.aliases]) w.settle(t.dir);
}

/** A job could not be read: it is skipped, with the reason. */
function fail(w: Walked, job: FileJob, why: string): void {
  job.result = null;
  w.skipped.push({ path: job.rel, why });
  settleJob(w, job);
}

function finish(store: Store, w: Walked, cache: StatCache, opts: IngestOptions): IngestResult {
  const root = w.tree.commit(opts.write === false ? undefined : store);
  for (const [rel, d] of w.dirs) {
    if (!w.sealed.has(d)) cache.recordDir(rel, d.id!, d.entries.size, d.mode);
  }
  opts.onProgress?.(w.progress);
  return {
    ...w.progress,
    root,
    tree: w.tree,
    cacheHits: cache.hits,
    skipped: w.skipped,
    walked: w.dirs.map(([rel]) => rel),
  };
}

/**
 * Walks `dir`, stores every tracked file, and builds the tree (Dir nodes are written too), on
 * this thread. Throws `Cannot add …` when `dir` is not a readable directory.
 */
export function ingestTree(store: Store, dir: string, opts: IngestOptions = {}): IngestResult {
  const cache = opts.cache ?? StatCache.empty(store);
  const progress: IngestProgress = { files: 0, dirs: 0, bytes: 0, bytesRead: 0 };
  const sink = opts.write === false ? HASH_ONLY : store;
  // Batched: new chunks and Dir nodes go into pack files, not one file each.
  const run = () => {
    const w = walkTree(store, dir, { ...opts, cache }, progress);
    let since = 0;
    for (let i = 0; (w.pump(i, 1), i < w.jobs.length); i++) {
      const job = w.jobs[i];
      releaseJob(w, i);
      let f: FileNode;
      try {
        f = ingestFile(
          sink,
          job.abs,
          { mode: job.mode, size: job.size, isSymlink: false } as Deno.FileInfo,
          opts.root ?? dir,
        );
      } catch (err) {
        fail(w, job, (err as Error).message);
        continue;
      }
      place(w, job, f, cache, progress);
      if (opts.onProgress && ++since >= 256) (since = 0, opts.onProgress(progress));
    }
    return finish(store, w, cache, opts);
  };
  return opts.write === false ? run() : store.batch(run);
}

/** Below this many bytes to read, a parallel ingest is not worth starting workers for. */
export const PARALLEL_MIN_BYTES = 8 << 20;

/**
 * {@link ingestTree} with reading, chunking, hashing and compression spread over worker threads
 * (one per core); this thread walks, dedups and writes packs. Same result, byte for byte.
 */
export async function ingestTreeParallel(
  store: Store,
  dir: string,
  opts: IngestOptions & { workers?: number } = {},
): Promise<IngestResult> {
  const cache = opts.cache ?? StatCache.empty(store);
  const progress: IngestProgress = { files: 0, dirs: 0, bytes: 0, bytesRead: 0 };
  return await store.batchAsync(async () => {
    const w = walkTree(store, dir, { ...opts, cache }, progress);
    // Walk until there is enough to read to be worth the workers (or the walk is complete).
    while (!w.walked && (w.queuedBytes < PARALLEL_MIN_BYTES || w.jobs.length < 64)) {
      w.pump(0, w.jobs.length + 64);
    }
    const n = Math.max(1, Math.min(opts.workers ?? navigator.hardwareConcurrency ?? 2, 8));
    if (w.queuedBytes < PARALLEL_MIN_BYTES || w.jobs.length < 64) {
      for (let i = 0; i < w.jobs.length; i++) {
        const job = w.jobs[i];
        releaseJob(w, i);
        try {
          place(
            w,
            job,
            ingestFile(
              store,
              job.abs,
              { mode: job.mode, size: job.size } as Deno.FileInfo,
              opts.root ?? dir,
            ),
            cache,
            progress,
          );
        } catch (err) {
          fail(w, job, (err as Error).message);
        }
      }
      return finish(store, w, cache, opts);
    }
    await runPool(store, w, n, cache, progress, opts, opts.root ?? dir);
    return finish(store, w, cache, opts);
  });
}

/** One file's result (or part of it) from a worker. */
type WorkerReply = {
  job: number;
  chunks: { id: string; stored: Uint8Array; length: number }[];
  done: boolean;
  error?: string;
};

async function runPool(
  store: Store,
  w: Walked,
  n: number,
  cache: StatCache,
  progress: IngestProgress,
  opts: IngestOptions,
  root: string,
): Promise<void> {
  const url = new URL("./ingest_worker.ts", import.meta.url);
  const workers = Array.from({ length: n }, () => new Worker(url, { type: "module" }));
  const ids = new Map<number, string[]>();
  const sizes = new Map<number, number>();
  let next = 0;
  let doneCount = 0;
  // Files go out in batches (up to 128 files or 4 MiB) so that small files do not pay one message
  // round trip each; two batches per worker keep it busy while this thread stores results.
  const BATCH_FILES = 128;
  const BATCH_BYTES = 4 << 20;
  const nextBatch = () => {
    const jobs: { job: number; path: string; size: number; root: string }[] = [];
    let bytes = 0;
    w.pump(next, BATCH_FILES);
    while (next < w.jobs.length && jobs.length < BATCH_FILES && bytes < BATCH_BYTES) {
      const j = w.jobs[next];
      jobs.push({ job: next, path: j.abs, size: j.size, root });
      ids.set(next, []);
      sizes.set(next, 0);
      bytes += j.size;
      next++;
    }
    return jobs;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const send = (wk: Worker) => {
        const jobs = nextBatch();
        if (jobs.length) wk.postMessage({ jobs });
      };
      for (const wk of workers) {
        wk.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`Cannot ingest: a worker failed: ${e.message}`));
        };
        wk.onmessage = (ev: MessageEvent<{ replies: WorkerReply[] } | { ready: true }>) => {
          if ("ready" in ev.data) {
            send(wk);
            send(wk);
            return;
          }
          try {
            let finished = false;
            for (const r of ev.data.replies) {
              const job = w.jobs[r.job];
              const list = ids.get(r.job)!;
              for (const c of r.chunks) {
                store.putEncoded(c.id, c.stored);
                list.push(c.id);
                sizes.set(r.job, sizes.get(r.job)! + c.length);
              }
              if (!r.done) continue;
              if (r.error) fail(w, job, r.error);
              else {place(
                  w,
                  job,
                  fileFromChunks(store, job.mode, sizes.get(r.job)!, list),
                  cache,
                  progress,
                );}
              ids.delete(r.job);
              sizes.delete(r.job);
              releaseJob(w, r.job);
              doneCount++;
              finished = true;
            }
            if (opts.onProgress) opts.onProgress(progress);
            if (w.walked && doneCount === w.jobs.length) resolve();
            else if (finished && ev.data.replies.length > 0 && ev.data.replies.at(-1)!.done) {
              send(wk);
            }
          } catch (e) {
            reject(e);
          }
        };
      }
      w.pump(0, 1);
      if (w.walked && w.jobs.length === 0) resolve();
    });
  } finally {
    for (const wk of workers) wk.terminate();
  }
}

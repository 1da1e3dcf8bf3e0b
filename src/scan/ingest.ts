/**
 * Ingest: files and trees on disk → chunks in the store → File nodes and Dir nodes.
 *
 * Files are cut with FastCDC, each chunk stored once under its BLAKE3 id. A file of at most
 * {@link INLINE_CHUNKS} chunks keeps its chunk list inline in its File node; a larger one gets a
 * stored manifest. The walk honours a {@link PathFilter}; a {@link StatCache} lets an unchanged
 * file skip being read; hardlinked files are read once per scan.
 *
 * @example
 * ```ts
 * import { ingestTree } from "./ingest.ts";
 * const { root, files } = ingestTree(store, "./my-project");
 * ```
 * @module
 */
import { chunkBlocks, chunkBoundaries } from "../cas/chunk.ts";
import { HdError } from "../cas/errors.ts";
import type { Store } from "../cas/store.ts";
import { type FileNode, INLINE_CHUNKS, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { PathFilter } from "./filter.ts";
import { StatCache, type StatSig } from "./statcache.ts";

/** Files larger than this are read in blocks instead of whole. */
export const STREAM_THRESHOLD = 16 << 20;
const BLOCK = 4 << 20;

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
}

/** Options of {@link ingestTree}. */
export interface IngestOptions {
  filter?: PathFilter;
  cache?: StatCache;
  /** Called every few hundred files. */
  onProgress?: (p: IngestProgress) => void;
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

function storeChunks(store: Store, chunks: Iterable<Uint8Array>): string[] {
  const ids: string[] = [];
  for (const c of chunks) ids.push(store.putObject(c));
  return ids;
}

function* readBlocks(path: string): Generator<Uint8Array> {
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(BLOCK);
    while (true) {
      const n = f.readSync(buf);
      if (n === null || n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    f.close();
  }
}

/** Stores the bytes of one file (or symlink) given its lstat, and returns its File node. */
export function ingestFile(store: Store, path: string, st: Deno.FileInfo): FileNode {
  const mode = st.mode ?? (st.isSymlink ? S_IFLNK | 0o777 : S_IFREG | 0o644);
  if ((mode & S_IFMT) === S_IFLNK) {
    const target = Deno.readLinkSync(path);
    return { type: "file", mode, size: new TextEncoder().encode(target).length, target };
  }
  let ids: string[];
  let size: number;
  if (st.size > STREAM_THRESHOLD) {
    size = 0;
    ids = [];
    for (const c of chunkBlocks(readBlocks(path))) {
      ids.push(store.putObject(c));
      size += c.length;
    }
  } else {
    const bytes = Deno.readFileSync(path);
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

/** Stores in-memory bytes as a regular file's content. */
export function ingestBytes(store: Store, bytes: Uint8Array, mode = S_IFREG | 0o644): FileNode {
  const ids: string[] = [];
  for (const [a, b] of chunkBoundaries(bytes)) ids.push(store.putObject(bytes.subarray(a, b)));
  const f: FileNode = { type: "file", mode, size: bytes.length };
  if (ids.length <= INLINE_CHUNKS) f.chunks = ids;
  else f.manifest = store.putManifest({ size: bytes.length, chunks: ids });
  return f;
}

/**
 * Walks `dir`, stores every tracked file, and builds the tree (Dir nodes are written too).
 * Throws `Cannot add …` when `dir` is not a readable directory.
 */
export function ingestTree(store: Store, dir: string, opts: IngestOptions = {}): IngestResult {
  const filter = opts.filter ?? new PathFilter();
  const cache = opts.cache ?? StatCache.empty(store.generation());
  let rootSt: Deno.FileInfo;
  try {
    rootSt = Deno.statSync(dir);
  } catch (e) {
    throw new HdError(`Cannot add ${dir}: ${(e as Error).message}`, "check the path");
  }
  if (!rootSt.isDirectory) throw new HdError(`Cannot add ${dir}: not a directory`, "");
  const progress: IngestProgress = { files: 0, dirs: 0, bytes: 0, bytesRead: 0 };
  const skipped: { path: string; why: string }[] = [];
  const byIno = new Map<string, FileNode>();
  let sinceReport = 0;

  const walk = (abs: string, rel: string, mode: number): MemDir | null => {
    const d = new MemDir(mode);
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(abs)];
    } catch (e) {
      skipped.push({ path: rel || ".", why: (e as Error).message });
      return rel === "" ? d : null;
    }
    progress.dirs++;
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const a = `${abs}/${e.name}`;
      if (filter.excluded(r)) continue;
      let st: Deno.FileInfo;
      try {
        st = Deno.lstatSync(a);
      } catch (err) {
        skipped.push({ path: r, why: (err as Error).message });
        continue;
      }
      if (st.isDirectory) {
        const sub = walk(a, r, st.mode ?? S_IFDIR | 0o755);
        if (sub && (sub.entries.size > 0 || filter.keepsEmptyDir(r))) d.entries.set(e.name, sub);
        continue;
      }
      if (!st.isFile && !st.isSymlink) {
        skipped.push({ path: r, why: "not a regular file, directory or symlink" });
        continue;
      }
      if (!filter.includesFile(r)) continue;
      const sig = statSig(st);
      let f = cache.lookup(r, sig);
      if (f === null) {
        const inoKey = st.nlink && st.nlink > 1 ? `${st.dev}:${st.ino}` : "";
        f = inoKey ? byIno.get(inoKey) ?? null : null;
        if (f === null) {
          try {
            f = ingestFile(store, a, st);
          } catch (err) {
            skipped.push({ path: r, why: (err as Error).message });
            continue;
          }
          if (st.isFile) progress.bytesRead += f.size;
          if (inoKey) byIno.set(inoKey, f);
        }
        cache.record(r, sig, f);
      }
      d.entries.set(e.name, f);
      progress.files++;
      progress.bytes += f.size;
      if (opts.onProgress && ++sinceReport >= 256) {
        sinceReport = 0;
        opts.onProgress(progress);
      }
    }
    return d;
  };

  // Batched: new chunks and Dir nodes go into pack files, not one file each.
  const { tree, root } = store.batch(() => {
    const tree = new Tree(walk(dir, "", rootSt.mode ?? S_IFDIR | 0o755)!);
    return { tree, root: tree.commit(store) };
  });
  opts.onProgress?.(progress);
  return { ...progress, root, tree, cacheHits: cache.hits, skipped };
}

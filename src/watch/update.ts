/**
 * Incremental update of a project's tree: given the paths a watcher reported, re-ingest only
 * those files (a reported directory is walked, for new directories and renames), remove what is
 * gone, and recommit the in-memory {@link Tree} so that only the paths to the root rehash.
 *
 * @example
 * ```ts
 * import { applyChanges } from "./update.ts";
 * import type { Tree } from "../dag/tree.ts";
 * import type { PathFilter } from "../scan/filter.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const tree: Tree;
 * declare const filter: PathFilter;
 * const r = applyChanges(store, tree, "/proj", ["src/a.ts"], { filter });
 * console.log(r.oldRoot, "→", r.root, r.modified);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { encodeFileBody, type FileNode } from "../dag/node.ts";
import { MemDir, type Tree } from "../dag/tree.ts";
import { PathFilter } from "../scan/filter.ts";
import { ingestFile, statSig } from "../scan/ingest.ts";
import { listDir } from "../sys/nofollow.ts";
import type { StatCache } from "../scan/statcache.ts";
import type { GlobSet } from "./pathmap.ts";

/** What one update changed. */
export interface UpdateResult {
  oldRoot: string;
  root: string;
  added: string[];
  modified: string[];
  removed: string[];
  /** Files read and hashed. */
  filesRead: number;
  /** Nodes rehashed by the commit. */
  rehashed: number;
}

/** Options of {@link applyChanges}. */
export interface UpdateOptions {
  filter?: PathFilter;
  /** Paths ignored on top of the filter (build outputs). */
  ignore?: GlobSet;
  /** Updated with what is read, so the next full scan can skip those files. */
  cache?: StatCache;
}

function sameFile(a: FileNode, b: FileNode): boolean {
  const x = encodeFileBody(a);
  const y = encodeFileBody(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function filesUnder(node: MemDir | FileNode, rel: string, out: string[]): void {
  if (!(node instanceof MemDir)) return void out.push(rel);
  for (const [name, child] of node.entries) filesUnder(child, `${rel}/${name}`, out);
}

/**
 * Brings `tree` (the committed tree of `dir`) up to date for the reported `paths` (relative to
 * `dir`) and commits it to `store`. Unchanged files (a touch, a save of the same bytes) change
 * nothing.
 */
export function applyChanges(
  store: Store,
  tree: Tree,
  dir: string,
  paths: Iterable<string>,
  opts: UpdateOptions = {},
): UpdateResult {
  const filter = opts.filter ?? new PathFilter();
  const oldRoot = tree.commit(store);
  const added: string[] = [];
  const modified: string[] = [];
  const removed: string[] = [];
  let filesRead = 0;
  const skip = (rel: string) => filter.excluded(rel) || (opts.ignore?.matches(rel) ?? false);

  const removePath = (rel: string) => {
    const old = tree.get(rel);
    if (old === undefined) return;
    const gone: string[] = [];
    filesUnder(old, rel, gone);
    tree.remove(rel);
    for (const g of gone) (removed.push(g), opts.cache?.forget(g));
  };

  const putFile = (rel: string, abs: string, st: Deno.FileInfo) => {
    if (!filter.includesFile(rel)) return removePath(rel);
    let f: FileNode;
    try {
      f = ingestFile(store, abs, st, dir);
    } catch {
      return removePath(rel); // vanished or unreadable between stat and read
    }
    filesRead++;
    opts.cache?.record(rel, statSig(st), f);
    const old = tree.get(rel);
    if (old !== undefined && !(old instanceof MemDir) && sameFile(old, f)) return;
    if (old instanceof MemDir) removePath(rel);
    (old === undefined || old instanceof MemDir ? added : modified).push(rel);
    tree.setFile(rel, f);
  };

  const walkDir = (rel: string, abs: string) => {
    const seen = new Set<string>();
    let entries: Deno.DirEntry[] = [];
    try {
      entries = listDir(abs, dir); // no symlink followed below the project (nofollow.ts)
    } catch {
      return removePath(rel);
    }
    const old = tree.get(rel);
    if (!(old instanceof MemDir)) {
      if (old !== undefined) removePath(rel);
      if (filter.keepsEmptyDir(rel)) tree.setDir(rel);
    }
    for (const e of entries) {
      const r = `${rel}/${e.name}`;
      if (skip(r)) continue;
      seen.add(e.name);
      visit(r, `${abs}/${e.name}`);
    }
    const now = tree.get(rel);
    if (now instanceof MemDir) {
      for (const name of [...now.entries.keys()]) {
        if (!seen.has(name)) removePath(`${rel}/${name}`);
      }
      if (now.entries.size === 0 && !filter.keepsEmptyDir(rel)) tree.remove(rel);
    }
  };

  const visit = (rel: string, abs: string) => {
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(abs);
    } catch {
      return removePath(rel);
    }
    if (st.isDirectory) return walkDir(rel, abs);
    if (!st.isFile && !st.isSymlink) return removePath(rel);
    putFile(rel, abs, st);
  };

  // parents before children; a path under a reported directory is covered by its walk
  const sorted = [...new Set(paths)].sort();
  const done: string[] = [];
  for (const rel of sorted) {
    if (rel === "" || skip(rel)) continue;
    if (done.some((d) => rel.startsWith(d + "/"))) continue;
    const abs = `${dir}/${rel}`;
    let isDir = false;
    try {
      isDir = Deno.lstatSync(abs).isDirectory;
    } catch { /* gone */ }
    visit(rel, abs);
    if (isDir) done.push(rel);
  }
  const root = tree.commit(store);
  return {
    oldRoot,
    root,
    added: added.sort(),
    modified: modified.sort(),
    removed: [...new Set(removed)].sort(),
    filesRead,
    rehashed: tree.rehashed,
  };
}

/**
 * A status after a few tracked files or directories changed, without a scan: the saved proof
 * (src/env/quick_status.ts) still holds for hd.lock, the dependency files and hd.toml, and names
 * the files and the directories whose keys changed (files edited in place or saved by rename;
 * directories with entries created, removed or renamed). Then the tree is the proof's tree with
 * each changed directory listed again as a scan would list it, and each changed file rehashed
 * (read, chunked, hashed; nothing stored); the directories above them are rehashed from the
 * proof's Dir nodes (`.hd/status.dirs`, loaded only along the changed paths and whichever steps'
 * inputs read), and the steps and the Env id are worked out from that tree as a scan would
 * ({@link stepHashes}). One file saved costs the proof's stat pass, that file's read, its
 * directory's listing and a few Dir nodes, where a scan lists every directory and looks up every
 * file.
 *
 * The Dir nodes come from the project, so none is believed: each is used only when it hashes to
 * the id its parent names, from the proof's tree root (under the proof's MAC) down. A node
 * missing or not matching, a file that is no longer a file, a lock state other than the proof's,
 * anything a scan would skip: null, and the caller scans.
 *
 * @example
 * ```ts
 * import { updatedSummary } from "./proof_update.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * import type { StatusSummary } from "./quick_status.ts";
 * declare const spec: EnvSpec;
 * declare const summary: StatusSummary;
 * const now = updatedSummary(spec, summary, { changed: ["src/app.js"] }); // null: scan
 * ```
 * @module
 */
import { blake3Hex, toHex } from "../cas/hash.ts";
import type { NodeSource } from "../dag/dag.ts";
import { nodeId } from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import type { FileNode } from "../dag/node.ts";
import { type ContentSink, HASH_ONLY, ingestPath } from "../scan/ingest.ts";
import type { PathFilter } from "../scan/filter.ts";
import { type LightStat, lstatLight } from "../sys/lstat.ts";
import { listDir } from "../sys/nofollow.ts";
import { S_IFDIR } from "../sys/mode.ts";
import { readStateFile } from "../sys/fs.ts";
import type { EnvSpec } from "../config/types.ts";
import { baseIdFor, envNode, stepHashes } from "./step_hashes.ts";
import { dirIndexPath, type StatusSummary, stepSummary } from "./quick_status.ts";
import { trackedFilter } from "./tracked.ts";

/**
 * The largest `.hd/status.dirs` read: what a proof allows (~100 bytes a file in both; the
 * project's files are untrusted, and a bigger one means a scan, not a read of all of it).
 */
const MAX_INDEX_BYTES = 256 << 20;

/**
 * The Dir nodes of `.hd/status.dirs` ({@link dirIndexPath}), handed out only when they hash to
 * the id asked for.
 */
export class DirIndex implements NodeSource {
  readonly #file: string;
  readonly #bytes: Uint8Array;
  readonly #at: Map<string, number>;

  private constructor(file: string, bytes: Uint8Array, at: Map<string, number>) {
    this.#file = file;
    this.#bytes = bytes;
    this.#at = at;
  }

  /** The index at `file`; null when it is missing, not a regular file or not made of records. */
  static read(file: string): DirIndex | null {
    let bytes: Uint8Array | null;
    try {
      bytes = readStateFile(file, MAX_INDEX_BYTES);
    } catch {
      return null;
    }
    if (bytes === null) return null;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const at = new Map<string, number>();
    for (let off = 0; off < bytes.length;) {
      if (off + 36 > bytes.length) return null;
      const len = view.getUint32(off + 32, true);
      if (off + 36 + len > bytes.length) return null;
      at.set(toHex(bytes.subarray(off, off + 32)), off + 36);
      off += 36 + len;
    }
    return new DirIndex(file, bytes, at);
  }

  /** The node `id`'s encoding; throws when it is not here or does not hash to `id`. */
  getObject(id: string): Uint8Array {
    const off = this.#at.get(id);
    if (off === undefined) throw new Error(`Cannot read directory ${id}: not in ${this.#file}`);
    const len = new DataView(this.#bytes.buffer, this.#bytes.byteOffset).getUint32(off - 4, true);
    const b = this.#bytes.subarray(off, off + len);
    if (blake3Hex(b) !== id) {
      throw new Error(`Cannot read directory ${id}: ${this.#file} holds other bytes for it`);
    }
    return b;
  }

  /** Where a node would be (for error messages). */
  path(_kind: string, id: string): string {
    return `${this.#file} (${id})`;
  }
}

/** What {@link editedTree} gives: the tree now, and what it tells a proof's summary. */
export interface EditedTree {
  tree: Tree;
  /** By how many bytes the tracked files grew (negative: shrank). */
  grew: number;
  /** By how many tracked files the tree grew (files added less files removed). */
  files: number;
  /**
   * Every directory a scan would now walk: the proof's, less those gone (or no longer
   * directories), with the directories that are new.
   */
  walked: string[];
}

/** A change {@link editedTree} leaves to a scan (its caller's null). */
class NeedsScan extends Error {}

/**
 * The tree a proof vouches for (`root`, its nodes read from `source` on demand) with what changed
 * since (`changes`, relative to the project at `dir`; see quick_status.ts's ProofChanges): each
 * changed directory listed again, as a scan with `filter` would list it (entries gone removed,
 * new files and new directories ingested, a mode change kept; `walked` is the proof's walked
 * directories), then each changed file rehashed; their content put into `sink`. Null when a
 * change is one a scan must see (a socket or FIFO appears, which a scan skips and then saves no
 * proof; a changed directory the tree does not hold, under one it does not hold either; a file
 * that is no longer a file or symlink), or when directories changed and no `filter` is given.
 * Throws when a node cannot be read.
 */
export function editedTree(
  source: NodeSource,
  root: string,
  dir: string,
  changes: { changed: readonly string[]; dirs?: readonly string[] },
  sink: ContentSink,
  opts: { filter?: PathFilter; walked?: readonly string[] } = {},
): EditedTree | null {
  const tree = Tree.load(source, root);
  const acc = { grew: 0, files: 0 };
  const dirs = changes.dirs ?? [];
  let walked = [...(opts.walked ?? [])];
  const redone = new Set<string>();
  if (dirs.length > 0) {
    if (!opts.filter || !opts.walked) return null;
    try {
      walked = relistDirs(tree, dir, dirs, sink, opts.filter, opts.walked, acc, redone);
    } catch (e) {
      if (e instanceof NeedsScan) return null;
      throw e;
    }
  }
  for (const rel of changes.changed) {
    if (redone.has(rel)) continue;
    const old = tree.get(rel);
    const abs = `${dir}/${rel}`;
    if (old === undefined) {
      // removed with its directory's listing; still there (and a file): not what a scan sees
      if (dirs.length > 0 && !isFileNow(abs)) continue;
      return null;
    }
    if (old instanceof MemDir) return null;
    const f = ingestPath(sink, abs, lstatLight(abs), dir);
    if (f === null) return null;
    acc.grew += f.size - old.size;
    tree.setFile(rel, f);
  }
  return { tree, grew: acc.grew, files: acc.files, walked };
}

function isFileNow(abs: string): boolean {
  try {
    const st = lstatLight(abs);
    return st.isFile || st.isSymlink;
  } catch {
    return false;
  }
}

/** The project path of `name` in the directory `rel` ("" the root). */
const join = (rel: string, name: string) => rel ? `${rel}/${name}` : name;

/** Whether `p` is `d` or below it. */
const within = (p: string, d: string) =>
  d === "" || p === d || (p.length > d.length && p[d.length] === "/" && p.startsWith(d));

/**
 * The paths (relative to `dir`) a watcher's update must look at for what changed since a proof
 * (`changes`), against `tree`, the tree in use (worked out from that proof, maybe updated since):
 * the changed files, and in each directory whose listing changed the entries that are in the
 * listing or the tree but not both (a directory gone, or one the tree does not hold, itself). An
 * entry excluded by the filter may be named: the update leaves it out.
 *
 * @example
 * ```ts
 * import { changedPaths } from "./proof_update.ts";
 * import { Tree } from "../dag/tree.ts";
 * changedPaths(new Tree(), "/proj", { changed: ["a.txt"], dirs: [] }); // ["a.txt"]
 * ```
 */
export function changedPaths(
  tree: Tree,
  dir: string,
  changes: { changed: readonly string[]; dirs: readonly string[] },
): string[] {
  const out = new Set(changes.changed);
  for (const rel of changes.dirs) {
    const node = rel === "" ? tree.root : tree.get(rel);
    let now: Set<string>;
    try {
      now = new Set(listDir(rel ? `${dir}/${rel}` : dir, dir).map((e) => e.name));
    } catch {
      if (rel) out.add(rel); // gone, or no longer a directory
      continue;
    }
    if (!(node instanceof MemDir)) {
      if (rel) out.add(rel); // the update walks it
      continue;
    }
    for (const n of now) if (!node.entries.has(n)) out.add(join(rel, n));
    for (const n of node.entries.keys()) if (!now.has(n)) out.add(join(rel, n));
  }
  return [...out].sort();
}

/**
 * Whether a later check of a proof (`later`; null: the proof no longer held) found nothing
 * changed besides what an earlier one (`earlier`) did: then a tree worked out from the earlier
 * check is still the project's, but for files written again among those it named (pure).
 *
 * @example
 * ```ts
 * import { proofCovers } from "./proof_update.ts";
 * proofCovers({ changed: ["a"], dirs: [] }, { changed: ["a"], dirs: [] }); // true
 * proofCovers({ changed: [], dirs: [] }, { changed: ["b"], dirs: [] }); // false
 * ```
 */
export function proofCovers(
  earlier: { changed: readonly string[]; dirs: readonly string[] } | undefined,
  later: { changed: readonly string[]; dirs: readonly string[] } | null,
): boolean {
  if (earlier === undefined || later === null) return false;
  const files = new Set(earlier.changed);
  const dirs = new Set(earlier.dirs);
  return later.changed.every((f) => files.has(f)) && later.dirs.every((d) => dirs.has(d));
}

/** Files and bytes of a tree node (a file: 1 and its size), loading what it must. */
function tally(n: MemDir | FileNode): { files: number; bytes: number } {
  if (!(n instanceof MemDir)) return { files: 1, bytes: n.size };
  let files = 0;
  let bytes = 0;
  for (const e of n.entries.values()) {
    const t = tally(e);
    files += t.files;
    bytes += t.bytes;
  }
  return { files, bytes };
}

/**
 * Lists each changed directory again (shallowest first) and brings the tree to what a scan with
 * `filter` would build (src/scan/ingest.ts's walk: excluded entries not entered, files outside the
 * includes left out, empty directories kept only when `keepsEmptyDir`); returns the walked
 * directories a scan would now have. Paths it settled (added, or replaced by another kind) go
 * into `redone`. Throws {@link NeedsScan}.
 */
function relistDirs(
  tree: Tree,
  dir: string,
  dirs: readonly string[],
  sink: ContentSink,
  filter: PathFilter,
  walked0: readonly string[],
  acc: { grew: number; files: number },
  redone: Set<string>,
): string[] {
  const walkedSet = new Set(walked0);
  const added: string[] = [];
  const gone: string[] = [];
  const depth = (p: string) => p === "" ? 0 : p.split("/").length;
  const drop = (rel: string) => {
    const old = tree.get(rel);
    if (old === undefined) return;
    const t = tally(old);
    acc.files -= t.files;
    acc.grew -= t.bytes;
    tree.remove(rel);
    if (old instanceof MemDir) gone.push(rel);
  };
  /** A directory that is not in the proof, walked as a scan walks it: its node, or null. */
  const walkNew = (abs: string, rel: string, mode: number): MemDir | null => {
    added.push(rel);
    redone.add(rel);
    const d = new MemDir(mode);
    for (const e of listDir(abs, dir)) {
      const r = join(rel, e.name);
      if (filter.excludedEntry(r, e.name)) continue;
      const st = lstatLight(`${abs}/${e.name}`);
      if (st.isDirectory) {
        const sub = walkNew(`${abs}/${e.name}`, r, st.mode || S_IFDIR | 0o755);
        if (sub) d.entries.set(e.name, sub);
        continue;
      }
      const f = newFile(`${abs}/${e.name}`, r, st);
      if (f) d.entries.set(e.name, f);
    }
    return d.entries.size > 0 || filter.keepsEmptyDir(rel) ? d : null;
  };
  /** A file or symlink a scan would take, ingested; null when it is left out. */
  const newFile = (abs: string, rel: string, st: LightStat): FileNode | null => {
    // a scan skips these, and then saves no proof: let one say so
    if (!st.isFile && !st.isSymlink) throw new NeedsScan();
    if (!filter.includesUnexcluded(rel)) return null;
    const f = ingestPath(sink, abs, st, dir);
    if (f === null) throw new NeedsScan();
    acc.files++;
    acc.grew += f.size;
    redone.add(rel);
    return f;
  };
  for (const rel of [...dirs].sort((a, b) => depth(a) - depth(b))) {
    const abs = rel ? `${dir}/${rel}` : dir;
    const node = rel === "" ? tree.root : tree.get(rel);
    let st: LightStat | null;
    try {
      st = lstatLight(abs);
    } catch {
      st = null;
    }
    if (st === null || !st.isDirectory) {
      // gone, or now something else: its parent changed too, and its listing settled it
      if (node instanceof MemDir || rel === "") throw new NeedsScan();
      if (!gone.some((g) => within(rel, g))) gone.push(rel);
      continue;
    }
    const mode = st.mode || S_IFDIR | 0o755;
    if (node === undefined || !(node instanceof MemDir)) {
      if (added.some((a) => within(rel, a))) continue; // walked in full already
      // walked but not kept (empty, or all its files left out): walked again, kept if it is now
      const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
      const p = parent === "" ? tree.root : tree.get(parent);
      if (node !== undefined || !(p instanceof MemDir)) throw new NeedsScan();
      const d = walkNew(abs, rel, mode);
      if (d) tree.setDir(rel, d);
      continue;
    }
    node.entries; // loaded: a lazy directory's mode is its node's only then
    if (node.mode !== mode) {
      node.mode = mode;
      node.id = null;
      if (rel !== "") tree.setDir(rel, node); // clears the ids above it
    }
    const onDisk = new Set<string>();
    for (const e of listDir(abs, dir)) {
      onDisk.add(e.name);
      const r = join(rel, e.name);
      if (filter.excludedEntry(r, e.name)) continue;
      const cur = node.entries.get(e.name);
      const est = lstatLight(`${abs}/${e.name}`);
      if (est.isDirectory) {
        // a directory the proof walked has a key of its own: listed here only when it changed
        if (cur instanceof MemDir || (cur === undefined && walkedSet.has(r))) continue;
        if (cur !== undefined) drop(r); // a file replaced by a directory
        const sub = walkNew(`${abs}/${e.name}`, r, est.mode || S_IFDIR | 0o755);
        if (sub) tree.setDir(r, sub);
        continue;
      }
      if (cur !== undefined && !(cur instanceof MemDir)) continue; // its own key: see `changed`
      if (cur !== undefined) drop(r); // a directory replaced by a file
      const f = newFile(`${abs}/${e.name}`, r, est);
      if (f) tree.setFile(r, f);
    }
    for (const name of [...node.entries.keys()]) {
      if (!onDisk.has(name)) drop(join(rel, name));
    }
    // emptied: a scan keeps an empty directory only when the filter keeps it (and so up)
    for (let r = rel, d: MemDir | FileNode | undefined = node; r !== "";) {
      if (!(d instanceof MemDir) || d.entries.size > 0 || filter.keepsEmptyDir(r)) break;
      tree.remove(r);
      r = r.includes("/") ? r.slice(0, r.lastIndexOf("/")) : "";
      d = r === "" ? undefined : tree.get(r);
    }
  }
  return [...walked0.filter((w) => !gone.some((g) => within(w, g))), ...added];
}

/**
 * The summary a scan of `spec`'s project would give now, from the proof's `summary` and the
 * tracked files `changed` since (paths relative to the project; see the module doc); null when
 * it cannot be worked out so (then scan). `opts` are the image ids the proof's subject holds.
 */
export function updatedSummary(
  spec: EnvSpec,
  summary: StatusSummary,
  changes: { changed: readonly string[]; dirs?: readonly string[]; walked?: readonly string[] },
  opts: { baseId?: string; imageIds?: Record<string, string> } = {},
): StatusSummary | null {
  const index = DirIndex.read(dirIndexPath(spec));
  if (index === null) return null;
  try {
    const edited = editedTree(index, summary.filesRoot, spec.dir, changes, HASH_ONLY, {
      filter: trackedFilter(spec),
      walked: changes.walked,
    });
    if (edited === null) return null;
    const { tree } = edited;
    // hd.lock and the files packages were resolved from are as the proof saw them: so are the
    // packages
    const packageIds = summary.packageIds;
    if (!Array.isArray(packageIds) || !packageIds.every((id) => typeof id === "string")) {
      return null;
    }
    // the proof's count and what changed (counting the tree would load all of it)
    const files = summary.files + edited.files;
    const steps = stepHashes(spec, tree, { ...opts, files });
    const filesRoot = tree.commit(); // committed by stepHashes: its cached root
    const env = envNode(
      spec.environment.name,
      filesRoot,
      baseIdFor(spec, undefined, opts.baseId),
      packageIds,
      steps.map((s) => s.id),
    );
    return {
      ...summary,
      filesRoot,
      files,
      bytes: summary.bytes + edited.grew,
      cacheHits: Math.max(0, summary.files - changes.changed.length),
      envId: nodeId(env),
      steps: stepSummary(steps),
    };
  } catch {
    return null; // a node missing or not matching, a file gone: scan
  }
}

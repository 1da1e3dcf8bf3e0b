/**
 * A status after a few tracked files were edited in place, without a scan: the saved proof
 * (src/env/quick_status.ts) still holds for every directory, hd.lock, the dependency files and
 * hd.toml, and names the files whose keys changed. Then the tree is the proof's tree with only
 * those files replaced: they are rehashed (read, chunked, hashed; nothing stored), the
 * directories above them are rehashed from the proof's Dir nodes (`.hd/status.dirs`, loaded only
 * along the edited paths and whichever steps' inputs read), and the steps and the Env id are
 * worked out from that tree as a scan would ({@link stepHashes}). One file edited costs the
 * proof's stat pass, that file's read and a few Dir nodes, where a scan lists every directory and
 * looks up every file.
 *
 * The Dir nodes come from the project, so none is believed: each is used only when it hashes to
 * the id its parent names, from the proof's tree root (under the proof's MAC) down. A node
 * missing or not matching, a file that is no longer a file, a lock state other than the proof's:
 * null, and the caller scans.
 *
 * @example
 * ```ts
 * import { updatedSummary } from "./proof_update.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * import type { StatusSummary } from "./quick_status.ts";
 * declare const spec: EnvSpec;
 * declare const summary: StatusSummary;
 * const now = await updatedSummary(spec, summary, ["src/app.js"]); // null: scan
 * ```
 * @module
 */
import { blake3Hex, toHex } from "../cas/hash.ts";
import type { NodeSource } from "../dag/dag.ts";
import { nodeId } from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { type ContentSink, HASH_ONLY, ingestPath } from "../scan/ingest.ts";
import { lstatLight } from "../sys/lstat.ts";
import { readStateFile } from "../sys/fs.ts";
import type { EnvSpec } from "../config/types.ts";
import { baseIdFor, envNode, stepHashes } from "./step_hashes.ts";
import { dirIndexPath, type StatusSummary, stepSummary } from "./quick_status.ts";

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

/**
 * The tree a proof vouches for (`root`, its nodes read from `source` on demand) with the files
 * `changed` since (relative to the project at `dir`) rehashed, their content put into `sink`,
 * and by how many bytes the tracked files grew; null when one of them is no longer a file or
 * symlink, or was not a file in the tree. Throws when a node cannot be read.
 */
export function editedTree(
  source: NodeSource,
  root: string,
  dir: string,
  changed: readonly string[],
  sink: ContentSink,
): { tree: Tree; grew: number } | null {
  const tree = Tree.load(source, root);
  let grew = 0;
  for (const rel of changed) {
    const old = tree.get(rel);
    if (old === undefined || old instanceof MemDir) return null;
    const abs = `${dir}/${rel}`;
    const f = ingestPath(sink, abs, lstatLight(abs));
    if (f === null) return null;
    grew += f.size - old.size;
    tree.setFile(rel, f);
  }
  return { tree, grew };
}

/**
 * The summary a scan of `spec`'s project would give now, from the proof's `summary` and the
 * tracked files `changed` since (paths relative to the project; see the module doc); null when
 * it cannot be worked out so (then scan). `opts` are the image ids the proof's subject holds.
 */
export function updatedSummary(
  spec: EnvSpec,
  summary: StatusSummary,
  changed: readonly string[],
  opts: { baseId?: string; imageIds?: Record<string, string> } = {},
): StatusSummary | null {
  const index = DirIndex.read(dirIndexPath(spec));
  if (index === null) return null;
  try {
    const edited = editedTree(index, summary.filesRoot, spec.dir, changed, HASH_ONLY);
    if (edited === null) return null;
    const { tree } = edited;
    // hd.lock and the files packages were resolved from are as the proof saw them: so are the
    // packages
    const packageIds = summary.packageIds;
    if (!Array.isArray(packageIds) || !packageIds.every((id) => typeof id === "string")) {
      return null;
    }
    // edited in place: as many files as the proof's tree (counting them would load it all)
    const steps = stepHashes(spec, tree, { ...opts, files: summary.files });
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
      bytes: summary.bytes + edited.grew,
      cacheHits: summary.files - changed.length,
      envId: nodeId(env),
      steps: stepSummary(steps),
    };
  } catch {
    return null; // a node missing or not matching, a file gone: scan
  }
}

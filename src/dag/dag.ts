/**
 * Loading and saving nodes in the store, and reading a file's bytes back through its chunks.
 *
 * @example
 * ```ts
 * import { putNode, getNode, readFileContent } from "./dag.ts";
 * import type { DirNode } from "./node.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const dirNode: DirNode;
 * const id = putNode(store, dirNode);
 * const node = getNode(store, id);
 * ```
 * @module
 */
import { CorruptObjectError } from "../cas/errors.ts";
import type { Store } from "../cas/store.ts";
import { decodeNode, encodeNode, type FileNode, type Node } from "./node.ts";

/** Stores a node (if absent) and returns its id. */
export function putNode(store: Store, node: Node): string {
  return store.putObject(encodeNode(node));
}

/** What {@link getNode} reads nodes from: a store, or anything that hands out verified objects. */
export type NodeSource = Pick<Store, "getObject" | "path">;

/** Loads and decodes a node; a stored object that is not a node is reported as corrupt. */
export function getNode(store: NodeSource, id: string): Node {
  const bytes = store.getObject(id, { node: true });
  try {
    return decodeNode(bytes);
  } catch (e) {
    throw new CorruptObjectError(id, store.path("objects", id), (e as Error).message);
  }
}

/** The chunk ids of a file, in order (reads its manifest when not inline). */
export function fileChunks(store: Store, f: FileNode): string[] {
  if (f.chunks) return f.chunks;
  if (f.manifest) return store.getManifest(f.manifest).chunks;
  return [];
}

/** Yields a file's bytes chunk by chunk, each verified against its id. */
export function* readFileChunks(store: Store, f: FileNode): Generator<Uint8Array> {
  for (const c of fileChunks(store, f)) yield store.getObject(c);
}

/** A file's whole content (for small files and tests; large files should stream). */
export function readFileContent(store: Store, f: FileNode): Uint8Array {
  const parts = [...readFileChunks(store, f)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

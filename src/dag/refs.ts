/**
 * The DAG's view of references, for the store's gc and verify: decodes node bytes and lists the
 * ids they name. Bytes that are not a node (chunks, blobs) refer to nothing.
 *
 * @example
 * ```ts
 * import { dagReferences } from "./refs.ts";
 * import { collectGarbage } from "../cas/gc.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * await collectGarbage(store, { references: dagReferences });
 * ```
 * @module
 */
import { decodeNode, isNodeEncoding, nodeReferences } from "./node.ts";

/** Ids named by an object's bytes (empty for anything that is not a node). */
export function dagReferences(bytes: Uint8Array): { objects: string[]; manifests: string[] } {
  if (!isNodeEncoding(bytes)) return { objects: [], manifests: [] };
  try {
    return nodeReferences(decodeNode(bytes));
  } catch {
    return { objects: [], manifests: [] };
  }
}

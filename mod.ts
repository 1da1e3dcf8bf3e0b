/**
 * hd as a library: the content-addressed store, the Merkle DAG, hd.toml, ingest, and images.
 *
 * @example
 * ```ts
 * import { Store, ingestTree, checkoutTree } from "./mod.ts";
 * const store = Store.open("/tmp/hd-store");
 * const { root } = ingestTree(store, "./my-project");
 * checkoutTree(store, root, "/tmp/copy");
 * ```
 * @module
 */
export { defaultStoreRoot, Store, STORE_FORMAT } from "./src/cas/store.ts";
export { CorruptObjectError, HdError, MissingObjectError } from "./src/cas/errors.ts";
export { blake3Hex } from "./src/cas/hash.ts";
export { AVG_CHUNK, chunkBoundaries, MAX_CHUNK, MIN_CHUNK } from "./src/cas/chunk.ts";
export { collectGarbage, type GcReport } from "./src/cas/gc.ts";
export { type VerifyReport, verifyStore } from "./src/cas/verify.ts";
export {
  decodeNode,
  type DirNode,
  encodeNode,
  type EnvNode,
  type FileNode,
  type Node,
  nodeId,
} from "./src/dag/node.ts";
export { getNode, putNode, readFileChunks, readFileContent } from "./src/dag/dag.ts";
export { MemDir, Tree } from "./src/dag/tree.ts";
export { diffTrees, type TreeDiff } from "./src/dag/diff.ts";
export { checkoutTree } from "./src/dag/checkout.ts";
export { dagReferences } from "./src/dag/refs.ts";
export { PathFilter } from "./src/scan/filter.ts";
export { StatCache } from "./src/scan/statcache.ts";
export { ingestBytes, ingestFile, ingestTree, ingestTreeParallel } from "./src/scan/ingest.ts";
export type { EnvSpec, ServiceSpec } from "./src/config/types.ts";
export { loadSpec, parseSpec } from "./src/config/parse.ts";
export { compileEnv } from "./src/env/compile.ts";
export { stepHashes } from "./src/env/step_hashes.ts";
export { listImages, loadImage, pullImage } from "./src/oci/image.ts";
export { exportImage, parseDest } from "./src/oci/export.ts";
export { layerTar } from "./src/oci/tar_write.ts";

/**
 * Where a remote cache keeps its blobs and step entries: an OCI registry (registry.ts) or an
 * S3-compatible bucket (s3.ts). Both hold the same bytes (docs/remote.md); this is what the
 * cache (cache.ts) asks of either.
 *
 * @example
 * ```ts
 * import { openBackend } from "./backend.ts";
 * const b = openBackend("s3://bucket/hd");
 * console.log(b.describe);
 * ```
 * @module
 */
import { RegistryBackend } from "./registry.ts";
import { S3Backend } from "./s3.ts";

/** Storage of a remote cache. Blobs are named `sha256:<hex>`; steps by their 64-hex hash. */
export interface Backend {
  /** The remote as the user wrote it. */
  readonly describe: string;
  /** True when the remote holds blob `digest`. */
  hasBlob(digest: string): Promise<boolean>;
  /**
   * Uploads a blob (whose digest the caller computed). `mountFrom` names another repository of
   * the same registry that holds it: a cross-repo mount is tried first (no bytes sent). Returns
   * whether the blob was mounted or uploaded.
   */
  putBlob(digest: string, bytes: Uint8Array, mountFrom?: string): Promise<"mounted" | "uploaded">;
  /** Downloads a blob, at most `max` bytes, checked against its SHA-256 digest. */
  getBlob(digest: string, max: number): Promise<Uint8Array>;
  /** The step manifest of `step`, or null when the remote has none. */
  getStep(step: string): Promise<Uint8Array | null>;
  /** Writes the step manifest of `step`. */
  putStep(step: string, manifest: Uint8Array): Promise<void>;
  /** Hashes of the steps the remote holds. */
  listSteps(): Promise<string[]>;
  /** Tags of the volume snapshots the remote holds (`volume-…`). */
  listVolumes(): Promise<string[]>;
  /** The manifest tagged `tag` (`volume-…`: a named volume's snapshot), or null when none. */
  getTagged(tag: string, what: string): Promise<Uint8Array | null>;
  /** Writes (or moves) the manifest tagged `tag`. */
  putTagged(tag: string, manifest: Uint8Array, what: string): Promise<void>;
}

/** The backend of a remote reference: `s3://BUCKET/PREFIX` or `REGISTRY/REPOSITORY`. */
export function openBackend(ref: string, opts: { insecure?: string[] } = {}): Backend {
  return ref.startsWith("s3://") ? new S3Backend(ref) : new RegistryBackend(ref, opts);
}

/**
 * Manifests: the content of one file as its size and ordered chunk ids.
 *
 * Encoding (version 1): ASCII "HDM1", varint size, varint chunk count, then 32 raw bytes per
 * chunk id. A manifest's id is BLAKE3 of this encoding. The file's mode lives in the File node
 * that names the manifest, so equal contents share one manifest whatever their modes.
 *
 * @example
 * ```ts
 * import { encodeManifest, decodeManifest } from "./manifest.ts";
 * declare const id: string; // a chunk id
 * decodeManifest(encodeManifest({ size: 3, chunks: [id] }));
 * ```
 * @module
 */
import { blake3Hex, fromHex, toHex } from "./hash.ts";

/** The content of a file: total size and ordered chunk ids. */
export interface Manifest {
  /** Size of the file in bytes (the sum of the chunk sizes). */
  size: number;
  /** Ordered BLAKE3 ids of the chunks. */
  chunks: string[];
}

const MAGIC = [0x48, 0x44, 0x4d, 0x31]; // "HDM1"

/** Appends an unsigned LEB128 varint. */
export function pushVarint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

/** Reads an unsigned LEB128 varint at `pos`; returns [value, next position]. */
export function readVarint(b: Uint8Array, pos: number): [number, number] {
  let n = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) throw new Error("Cannot decode varint: truncated");
    const byte = b[pos++];
    n += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [n, pos];
    mul *= 0x80;
  }
  throw new Error("Cannot decode varint: too long");
}

/** Canonical bytes of a manifest. */
export function encodeManifest(m: Manifest): Uint8Array {
  const head: number[] = [...MAGIC];
  pushVarint(head, m.size);
  pushVarint(head, m.chunks.length);
  const out = new Uint8Array(head.length + 32 * m.chunks.length);
  out.set(head);
  let p = head.length;
  for (const c of m.chunks) {
    out.set(fromHex(c), p);
    p += 32;
  }
  return out;
}

/** Parses manifest bytes; throws `Cannot decode manifest` when they are not one. */
export function decodeManifest(b: Uint8Array): Manifest {
  for (let i = 0; i < 4; i++) {
    if (b[i] !== MAGIC[i]) throw new Error("Cannot decode manifest: bad magic");
  }
  let [size, p] = readVarint(b, 4);
  let count: number;
  [count, p] = readVarint(b, p);
  if (p + count * 32 !== b.length) throw new Error("Cannot decode manifest: wrong length");
  const chunks: string[] = [];
  for (let i = 0; i < count; i++, p += 32) chunks.push(toHex(b.subarray(p, p + 32)));
  return { size, chunks };
}

/** Id of a manifest: BLAKE3 of its encoding. */
export function manifestId(m: Manifest): string {
  return blake3Hex(encodeManifest(m));
}

/**
 * On-disk object encoding: one codec byte, then the payload. Codec 0 = raw, 1 = zstd (node:zlib).
 * Objects over 512 bytes are compressed when that saves at least 1/32 of their size; data that
 * starts with the magic number of an already-compressed format is stored raw without trying.
 *
 * @example
 * ```ts
 * import { encodeObject, decodeObject } from "./compress.ts";
 * decodeObject(encodeObject(bytes)); // equals bytes
 * ```
 * @module
 */
import zlib from "node:zlib";

/** Codec byte of an uncompressed object. */
export const CODEC_RAW = 0;
/** Codec byte of a zstd-compressed object. */
export const CODEC_ZSTD = 1;
/** Objects at or below this size are never compressed. */
export const COMPRESS_MIN = 512;

const MAGICS: number[][] = [
  [0x1f, 0x8b], // gzip
  [0x28, 0xb5, 0x2f, 0xfd], // zstd
  [0x89, 0x50, 0x4e, 0x47], // png
  [0xff, 0xd8, 0xff], // jpeg
  [0x50, 0x4b, 0x03, 0x04], // zip, jar, docx
  [0x42, 0x5a, 0x68], // bzip2
  [0xfd, 0x37, 0x7a, 0x58, 0x5a], // xz
  [0x77, 0x4f, 0x46, 0x32], // woff2
  [0x47, 0x49, 0x46, 0x38], // gif
];

function looksCompressed(b: Uint8Array): boolean {
  outer: for (const m of MAGICS) {
    if (b.length < m.length) continue;
    for (let i = 0; i < m.length; i++) if (b[i] !== m[i]) continue outer;
    return true;
  }
  return false;
}

/** Encodes bytes for storage: codec byte + (possibly compressed) payload. */
export function encodeObject(bytes: Uint8Array, compress = true): Uint8Array {
  if (compress && bytes.length > COMPRESS_MIN && !looksCompressed(bytes)) {
    const z = zlib.zstdCompressSync(bytes) as Uint8Array;
    if (z.length + (bytes.length >> 5) < bytes.length) {
      const out = new Uint8Array(z.length + 1);
      out[0] = CODEC_ZSTD;
      out.set(z, 1);
      return out;
    }
  }
  const out = new Uint8Array(bytes.length + 1);
  out[0] = CODEC_RAW;
  out.set(bytes, 1);
  return out;
}

/** Decodes a stored object; throws `Cannot decode object` on an unknown codec or bad zstd data. */
export function decodeObject(stored: Uint8Array): Uint8Array {
  if (stored.length === 0) throw new Error("Cannot decode object: it is empty");
  const codec = stored[0];
  const payload = stored.subarray(1);
  if (codec === CODEC_RAW) return payload;
  if (codec === CODEC_ZSTD) {
    const out = zlib.zstdDecompressSync(payload) as Uint8Array;
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  throw new Error(`Cannot decode object: unknown codec byte ${codec}`);
}

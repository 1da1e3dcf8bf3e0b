/**
 * On-disk object encoding: one codec byte, then the payload. Codec 0 = raw, 1 = zstd (node:zlib).
 * Objects over 512 bytes are compressed when that saves at least 1/32 of their size; data that
 * starts with the magic number of an already-compressed format is stored raw without trying.
 *
 * @example
 * ```ts
 * import { encodeObject, decodeObject } from "./compress.ts";
 * declare const bytes: Uint8Array;
 * decodeObject(encodeObject(bytes)); // equals bytes
 * ```
 * @module
 */
import type zlibType from "node:zlib";
import { type Libzstd, openLibzstd } from "../../ffi/libzstd.ts";
import { nodeBuiltin } from "../sys/lazy.ts";

// node:zlib is loaded on first use (and node:module not at all): evaluating Node's compatibility
// layer costs ~30–40 ms of every start-up, and a command that only reads a warm stat cache never
// compresses anything.
let zlibMod: typeof zlibType | undefined;
function zlib(): typeof zlibType {
  return zlibMod ??= nodeBuiltin<typeof zlibType>("node:zlib");
}

/** ZSTD_CONTENTSIZE_UNKNOWN and _ERROR: frame headers that do not say their size. */
const SIZE_UNKNOWN = 0xffffffffffffffffn;
const SIZE_ERROR = 0xfffffffffffffffen;

let zstd: { lib: Libzstd; dctx: Deno.PointerValue } | null | undefined;

/** libzstd with one reused decompression context, or null where it cannot be opened. */
function libzstd(): { lib: Libzstd; dctx: Deno.PointerValue } | null {
  if (zstd !== undefined) return zstd;
  try {
    const lib = openLibzstd();
    const dctx = lib.symbols.ZSTD_createDCtx();
    zstd = dctx ? { lib, dctx } : null;
  } catch {
    zstd = null;
  }
  return zstd;
}

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

/** zstd's default level (what node:zlib uses too). */
const ZSTD_LEVEL = 3;

let cctx: Deno.PointerValue | undefined;
let cbuf = new Uint8Array(0);

/**
 * zstd-compresses `bytes` (frame header with the content size). Through libzstd with one reused
 * context and output buffer where it opens: node:zlib creates and frees a compression context
 * (hundreds of KiB of malloc) and a result Buffer on every call, which over a 100k-chunk add left
 * the malloc heap fragmented and far larger than the live data. The result is a view of the
 * shared buffer, valid until the next call.
 */
function zstdCompress(bytes: Uint8Array): Uint8Array {
  const z = libzstd();
  if (z && cctx === undefined) cctx = z.lib.symbols.ZSTD_createCCtx();
  if (z && cctx) {
    const bound = Number(z.lib.symbols.ZSTD_compressBound(BigInt(bytes.length)));
    if (cbuf.length < bound) cbuf = new Uint8Array(Math.max(bound, 1 << 17));
    const r = z.lib.symbols.ZSTD_compressCCtx(
      cctx,
      cbuf,
      BigInt(cbuf.length),
      bytes,
      BigInt(bytes.length),
      ZSTD_LEVEL,
    );
    if (!z.lib.symbols.ZSTD_isError(r)) return cbuf.subarray(0, Number(r));
  }
  return zlib().zstdCompressSync(
    bytes,
    { pledgedSrcSize: bytes.length } as zlibType.ZstdOptions,
  ) as Uint8Array;
}

/** Encodes bytes for storage: codec byte + (possibly compressed) payload. */
export function encodeObject(bytes: Uint8Array, compress = true): Uint8Array {
  if (compress && bytes.length > COMPRESS_MIN && !looksCompressed(bytes)) {
    // The pledged size is written into the frame header, so readers can size the output (and
    // learn a chunk's length from its first bytes) without decoding.
    const z = zstdCompress(bytes);
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

/**
 * The decoded size of a stored object from its first bytes (codec byte + up to 18 bytes of zstd
 * frame header) and its stored length, or null when the header does not say (older objects).
 */
export function decodedSize(head: Uint8Array, storedLength: number): number | null {
  if (head.length === 0) return null;
  if (head[0] === CODEC_RAW) return storedLength - 1;
  if (head[0] !== CODEC_ZSTD) return null;
  const z = libzstd();
  if (!z) return null;
  const size = z.lib.symbols.ZSTD_getFrameContentSize(head.subarray(1), BigInt(head.length - 1));
  return size === SIZE_UNKNOWN || size === SIZE_ERROR ? null : Number(size);
}

/** Decodes a stored object; throws `Cannot decode object` on an unknown codec or bad zstd data. */
export function decodeObject(stored: Uint8Array): Uint8Array {
  if (stored.length === 0) throw new Error("Cannot decode object: it is empty");
  const codec = stored[0];
  const payload = stored.subarray(1);
  if (codec === CODEC_RAW) return payload;
  if (codec === CODEC_ZSTD) {
    const z = libzstd();
    if (z) {
      const size = z.lib.symbols.ZSTD_getFrameContentSize(payload, BigInt(payload.length));
      if (size !== SIZE_UNKNOWN && size !== SIZE_ERROR && size <= BigInt(1 << 30)) {
        const out = new Uint8Array(Number(size));
        const r = z.lib.symbols.ZSTD_decompressDCtx(
          z.dctx,
          out,
          size,
          payload,
          BigInt(payload.length),
        );
        if (z.lib.symbols.ZSTD_isError(r)) throw new Error("Cannot decode object: bad zstd data");
        if (Number(r) !== out.length) throw new Error("Cannot decode object: zstd size mismatch");
        return out;
      }
    }
    const out = zlib().zstdDecompressSync(payload) as Uint8Array;
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  throw new Error(`Cannot decode object: unknown codec byte ${codec}`);
}

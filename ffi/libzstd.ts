/**
 * Bindings to libzstd (package libzstd1, always present on Debian): a reusable decompression
 * context, so decoding a small stored chunk costs a few microseconds instead of setting up a new
 * decoder per call, and the frame header's content size (the store's objects record it). Used by
 * the store's read path (src/cas/compress.ts).
 *
 * @example
 * ```ts
 * import { openLibzstd } from "./libzstd.ts";
 * const z = openLibzstd();
 * const dctx = z.symbols.ZSTD_createDCtx();
 * ```
 * @module
 */
import { dlopenGroups } from "./dlopen_groups.ts";

/** The symbols bound. */
export const ZSTD_SYMBOLS = {
  ZSTD_createDCtx: { parameters: [], result: "pointer" },
  ZSTD_freeDCtx: { parameters: ["pointer"], result: "usize" },
  ZSTD_decompressDCtx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
    result: "usize",
  },
  ZSTD_isError: { parameters: ["usize"], result: "u32" },
  ZSTD_createCCtx: { parameters: [], result: "pointer" },
  ZSTD_compressCCtx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32"],
    result: "usize",
  },
  ZSTD_compressBound: { parameters: ["usize"], result: "usize" },
  ZSTD_getFrameContentSize: { parameters: ["buffer", "usize"], result: "u64" },
} as const;

/** The opened libzstd. */
export type Libzstd = Deno.DynamicLibrary<typeof ZSTD_SYMBOLS>;

/**
 * The symbols bound when the library opens: those that read stored objects. The others
 * (compression) are bound together the first time one of them is used: binding costs ~0.2-0.3 ms
 * a symbol, and a mount server, which only reads, opens libzstd while its first requests wait.
 */
export const ZSTD_READ_SYMBOLS = [
  "ZSTD_createDCtx",
  "ZSTD_decompressDCtx",
  "ZSTD_isError",
  "ZSTD_getFrameContentSize",
] as const satisfies readonly (keyof typeof ZSTD_SYMBOLS)[];

/** Opens libzstd.so.1; throws when it is not installed. */
export function openLibzstd(): Libzstd {
  return dlopenGroups("libzstd.so.1", ZSTD_SYMBOLS, ZSTD_READ_SYMBOLS, [[]]);
}

import { assert, assertEquals } from "../_assert.ts";
import {
  CODEC_RAW,
  CODEC_ZSTD,
  decodedSize,
  decodeObject,
  encodeObject,
} from "../../src/cas/compress.ts";
import { randomBytes, testIf } from "../_helpers.ts";
import { openLibzstd, ZSTD_READ_SYMBOLS, ZSTD_SYMBOLS } from "../../ffi/libzstd.ts";

Deno.test("encodeObject: zstd frames carry their size, decode back, and earlier results survive later calls", () => {
  const text = new TextEncoder().encode("export const a = 1;\n".repeat(4000));
  const small = new TextEncoder().encode("let b = 2;\n".repeat(200));
  const a = encodeObject(text);
  const b = encodeObject(small); // the compressor's buffer is shared: `a` must be a copy
  assertEquals(a[0], CODEC_ZSTD);
  assertEquals(b[0], CODEC_ZSTD);
  assert(a.length < text.length / 10);
  assertEquals(decodeObject(a), text);
  assertEquals(decodeObject(b), small);
  assertEquals(decodedSize(a.subarray(0, 19), a.length), text.length);
  const noise = randomBytes(100_000, 7);
  const c = encodeObject(noise);
  assertEquals(c[0], CODEC_RAW); // incompressible: stored raw
  assertEquals(decodeObject(c), noise);
});

const ZSTD_SKIP = (() => {
  try {
    Deno.dlopen("libzstd.so.1", {}).close();
    return null;
  } catch {
    return "needs libzstd.so.1 (apt-get install libzstd1)";
  }
})();

testIf(
  ZSTD_SKIP,
  "openLibzstd: every symbol is there, the read ones bound at once, the rest on first use",
  () => {
    const lib = openLibzstd();
    try {
      assertEquals(Object.keys(lib.symbols).sort(), Object.keys(ZSTD_SYMBOLS).sort());
      const bound = (k: string) =>
        typeof Object.getOwnPropertyDescriptor(lib.symbols, k)!.value === "function";
      const rest = Object.keys(ZSTD_SYMBOLS).filter((k) =>
        !(ZSTD_READ_SYMBOLS as readonly string[]).includes(k)
      );
      for (const k of ZSTD_READ_SYMBOLS) assertEquals(bound(k), true, k);
      for (const k of rest) assertEquals(bound(k), false, `${k} not bound yet`);
      // a round trip through the library: compressing binds the rest
      const data = new TextEncoder().encode("hd ".repeat(1000));
      const cctx = lib.symbols.ZSTD_createCCtx();
      for (const k of rest) assertEquals(bound(k), true, `${k} bound`);
      const out = new Uint8Array(Number(lib.symbols.ZSTD_compressBound(BigInt(data.length))));
      const n = lib.symbols.ZSTD_compressCCtx(
        cctx,
        out,
        BigInt(out.length),
        data,
        BigInt(data.length),
        3,
      );
      assertEquals(lib.symbols.ZSTD_isError(n), 0);
      const back = new Uint8Array(data.length);
      const dctx = lib.symbols.ZSTD_createDCtx();
      const m = lib.symbols.ZSTD_decompressDCtx(dctx, back, BigInt(back.length), out, n);
      assertEquals(Number(m), data.length);
      assertEquals(back, data);
      lib.symbols.ZSTD_freeDCtx(dctx);
    } finally {
      lib.close();
    }
  },
);

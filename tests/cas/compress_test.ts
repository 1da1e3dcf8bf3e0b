import { assert, assertEquals } from "../_assert.ts";
import {
  CODEC_RAW,
  CODEC_ZSTD,
  decodedSize,
  decodeObject,
  encodeObject,
} from "../../src/cas/compress.ts";
import { randomBytes } from "../_helpers.ts";

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

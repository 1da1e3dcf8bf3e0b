/** sys/lazy.ts: Node built-ins loaded when called, without a static import of node:module. */
import { assertEquals, assertThrows } from "../_assert.ts";
import { nodeBuiltin } from "../../src/sys/lazy.ts";
import { CODEC_ZSTD, decodeObject } from "../../src/cas/compress.ts";

Deno.test("nodeBuiltin: Node's built-ins by name; an unknown name fails with one clear error", () => {
  const zlib = nodeBuiltin<typeof import("node:zlib")>("node:zlib");
  const data = new TextEncoder().encode("hd ".repeat(1000));
  // what compress.ts falls back to where libzstd is missing: a zstd frame hd's decoder reads
  const frame = zlib.zstdCompressSync(data) as Uint8Array;
  const stored = new Uint8Array(frame.length + 1);
  stored[0] = CODEC_ZSTD;
  stored.set(frame, 1);
  assertEquals(decodeObject(stored), data);
  assertEquals(
    typeof nodeBuiltin<typeof import("node:v8")>("node:v8").setFlagsFromString,
    "function",
  );
  assertThrows(() => nodeBuiltin("node:no-such-module"), /Cannot load node:no-such-module/);
});

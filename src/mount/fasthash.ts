/**
 * BLAKE3 for the mount's read path, where every byte a process reads is verified: the native
 * SIMD implementation of `@napi-rs/blake-hash` (≈3–5 GB/s) when it loads on this platform, else
 * hash-wasm (≈0.5 GB/s) as the rest of hd uses. Both give the same digests (checked at load).
 *
 * @example
 * ```ts
 * import { blake3Matches } from "./fasthash.ts";
 * blake3Matches(bytes, id); // true when bytes hash to id
 * ```
 * @module
 */
import { blake3Hex } from "../cas/hash.ts";

const EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

let native: ((b: Uint8Array) => Uint8Array) | null = null;
try {
  const mod = await import("@napi-rs/blake-hash");
  const f = mod.blake3 as unknown as (b: Uint8Array) => Uint8Array;
  const d = f(new Uint8Array(0));
  if (Array.from(d, (x) => HEX[x]).join("") === EMPTY) native = f;
} catch { /* not available here: hash-wasm it is */ }

/** True when the native implementation is in use. */
export const NATIVE_BLAKE3 = native !== null;

/** BLAKE3 of `bytes` as a 64-hex id. */
export function blake3Id(bytes: Uint8Array): string {
  if (!native) return blake3Hex(bytes);
  const d = native(bytes);
  let s = "";
  for (let i = 0; i < 32; i++) s += HEX[d[i]];
  return s;
}

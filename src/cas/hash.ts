/**
 * BLAKE3 content ids. Every id in hd is the lowercase hex of a 32-byte BLAKE3 digest.
 *
 * Uses the native SIMD implementation of `@napi-rs/blake-hash` (measured here: 3.5 GB/s on 16 KiB
 * chunks) when it loads and agrees with the reference vector, else hash-wasm (0.4 GB/s).
 *
 * @example
 * ```ts
 * import { blake3Hex } from "./hash.ts";
 * blake3Hex(new TextEncoder().encode("hi")); // "…64 hex…"
 * ```
 * @module
 */
import type { IHasher } from "hash-wasm";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Each byte's two hex digits as ASCII, packed in the platform's byte order (a Uint16 a byte). */
const HEX_PAIRS = (() => {
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const [a, b] = le ? [0, 8] : [8, 0];
  return Uint16Array.from(HEX, (h) => (h.charCodeAt(0) << a) | (h.charCodeAt(1) << b));
})();
const ASCII = new TextDecoder();
let hexOut = new Uint16Array(64);
// (declared before loadNative, which runs at load time and calls toHex)

/** BLAKE3 of the empty input (the reference vector every implementation must reproduce). */
const EMPTY_ID = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

type Native = (b: Uint8Array) => Uint8Array;

/** The native module's incremental hasher (the part of its API used here). */
type NativeHasher = { update(b: Uint8Array): unknown; digest(format: string): string };
let NativeHasherClass: (new () => NativeHasher) | null = null;

async function loadNative(): Promise<Native | null> {
  if (Deno.env.get("HD_BLAKE3") === "wasm") return null;
  try {
    const mod = await import("@napi-rs/blake-hash");
    NativeHasherClass = (mod as unknown as { Blake3Hasher?: new () => NativeHasher })
      .Blake3Hasher ?? null;
    const f = mod.blake3 as unknown as Native;
    const d = f(new Uint8Array(0));
    return toHex(d) === EMPTY_ID ? f : null;
  } catch {
    return null;
  }
}

const native: Native | null = await loadNative();
// hash-wasm is loaded only where it is used (its module costs ~20 ms of every start-up)
const hasher: IHasher | null = native ? null : await (await import("hash-wasm")).createBLAKE3();

/** Which implementation computes ids in this process ("native" or "wasm"). */
export const BLAKE3_IMPL: "native" | "wasm" = native ? "native" : "wasm";

/** Length of a hex id (32 bytes). */
export const ID_HEX_LENGTH = 64;

/** BLAKE3 of `bytes` as 32 raw bytes. */
export function blake3(bytes: Uint8Array): Uint8Array {
  if (native) return native(bytes);
  hasher!.init();
  hasher!.update(bytes);
  return hasher!.digest("binary");
}

/** BLAKE3 of `bytes` as a 64-character lowercase hex id. */
export function blake3Hex(bytes: Uint8Array): string {
  if (native) return toHex(native(bytes));
  hasher!.init();
  hasher!.update(bytes);
  return hasher!.digest("hex");
}

/**
 * A synchronous incremental BLAKE3 (pieces in, hex out), or null when only the WASM hasher is
 * here (it is shared by {@link blake3Hex}: the caller then hashes one assembled buffer).
 */
export function blake3Pieces(): { update(b: Uint8Array): void; hex(): string } | null {
  if (!native || !NativeHasherClass) return null;
  const h = new NativeHasherClass();
  return { update: (b) => void h.update(b), hex: () => h.digest("hex") };
}

/** An incremental BLAKE3 over several pieces (a whole file read in blocks). */
export async function blake3Stream(): Promise<IHasher> {
  const { createBLAKE3 } = await import("hash-wasm");
  const h = await createBLAKE3();
  h.init();
  return h;
}

/**
 * Lowercase hex of `bytes`, as one flat string. (Appending digit pairs made a rope of 32 parts
 * for an id, about 1 KiB of heap where the flat string takes 80 bytes: it was most of the memory
 * of every decoded node a mount or a scan kept.)
 */
export function toHex(bytes: Uint8Array): string {
  const n = bytes.length;
  if (hexOut.length < n) hexOut = new Uint16Array(n);
  for (let i = 0; i < n; i++) hexOut[i] = HEX_PAIRS[bytes[i]];
  return ASCII.decode(new Uint8Array(hexOut.buffer, 0, n * 2));
}

const NIBBLE = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) (t[97 + i] = 10 + i, t[65 + i] = 10 + i);
  return t;
})();

/** Bytes of a hex string; throws on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  let bad = hex.length % 2 !== 0;
  for (let i = 0; i < out.length && !bad; i++) {
    const a = hex.charCodeAt(2 * i);
    const b = hex.charCodeAt(2 * i + 1);
    const hi = a < 128 ? NIBBLE[a] : -1;
    const lo = b < 128 ? NIBBLE[b] : -1;
    if (hi < 0 || lo < 0) bad = true;
    out[i] = (hi << 4) | lo;
  }
  if (bad) throw new Error(`Cannot parse hex: "${hex.slice(0, 16)}…" is not hex`);
  return out;
}

/** True when `s` is a full 64-hex id. */
export function isId(s: string): boolean {
  return s.length === ID_HEX_LENGTH && /^[0-9a-f]+$/.test(s);
}

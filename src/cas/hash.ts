/**
 * BLAKE3 content ids. Every id in hd is the lowercase hex of a 32-byte BLAKE3 digest.
 *
 * Uses the native SIMD implementation of `@napi-rs/blake-hash` (measured here: 3.5 GB/s on 16 KiB
 * chunks) when it loads and agrees with the reference vector, else hash-wasm (0.4 GB/s). On the
 * main thread the native module loads only once the process hashes more than a few small inputs
 * ({@link loadNativeBlake3}); before that, ids come from blake3_js.ts (the same ids).
 *
 * @example
 * ```ts
 * import { blake3Hex } from "./hash.ts";
 * blake3Hex(new TextEncoder().encode("hi")); // "…64 hex…"
 * ```
 * @module
 */
import type { IHasher } from "hash-wasm";
import { blake3Js } from "./blake3_js.ts";
import { blake3Wasm } from "./blake3_wasm.ts";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Each byte's two hex digits as ASCII, packed in the platform's byte order (a Uint16 a byte). */
const HEX_PAIRS = (() => {
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const [a, b] = le ? [0, 8] : [8, 0];
  return Uint16Array.from(HEX, (h) => (h.charCodeAt(0) << a) | (h.charCodeAt(1) << b));
})();
const ASCII = new TextDecoder();
let hexOut = new Uint16Array(64);
// (declared before importNative, which may run at load time and calls toHex)

/** BLAKE3 of the empty input (the reference vector every implementation must reproduce). */
const EMPTY_ID = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

type Native = (b: Uint8Array) => Uint8Array;

/** The native module's incremental hasher (the part of its API used here). */
type NativeHasher = { update(b: Uint8Array): unknown; digest(format: string): string };
let NativeHasherClass: (new () => NativeHasher) | null = null;

/** The native module, or null when it does not load or disagrees with the reference vector. */
async function importNative(): Promise<Native | null> {
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

const WASM = Deno.env.get("HD_BLAKE3") === "wasm";
// In a worker (the parallel ingest) everything hashed is file content: wait for the native module.
const IN_WORKER = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
  "undefined";
let native: Native | null = !WASM && IN_WORKER ? await importNative() : null;
// hash-wasm is loaded only where it is used (its module costs ~20 ms of every start-up)
const hasher: IHasher | null = WASM || (IN_WORKER && !native)
  ? await (await import("hash-wasm")).createBLAKE3()
  : null;

/**
 * The native module's load, once started (null before). On the main thread it starts only when
 * {@link loadNativeBlake3} is called or the process has hashed enough to need it (an input of
 * {@link LARGE} bytes or more, or {@link LARGE_TOTAL} bytes in all): until then ids come from the
 * plain-TypeScript BLAKE3, which costs nothing to load (a no-change `hd up` hashes a few small
 * tree nodes and used to wait ~10–50 ms for the native module).
 */
let loading: Promise<boolean> | null = WASM || IN_WORKER ? Promise.resolve(native !== null) : null;
const LARGE = 4096;
const LARGE_TOTAL = 64 * 1024;
let hashedTotal = 0;
let autoLoad = true;
let settled = loading !== null;

/**
 * Whether hashing much starts the native module's load by itself (the default). Loading it holds
 * the main thread ~40–80 ms (Deno's Node compatibility and the npm package): a process that must
 * not stall at an arbitrary moment (the FUSE server, whose first requests would wait for it)
 * turns this off and calls {@link loadNativeBlake3} when it chooses; ids are the same either way.
 */
export function autoLoadNativeBlake3(on: boolean): void {
  autoLoad = on;
}

/**
 * Loads the native BLAKE3 module now (once); resolves to true when ids come from it from then on.
 * A caller about to hash much can await it; everyone else need not (ids are identical either way).
 */
export function loadNativeBlake3(): Promise<boolean> {
  return loading ??= importNative().then((f) => {
    native = f;
    settled = true;
    return f !== null;
  });
}

/**
 * True while the native module's load has started and not finished. The load is a dynamic import
 * that advances only when the event loop turns: a caller that keeps the main thread busy (the
 * FUSE server's receive loop) yields more often meanwhile, or the load takes seconds.
 */
export function nativeBlake3Loading(): boolean {
  return loading !== null && !settled;
}

/** Which implementation computes ids in this process right now ("native", "js" or "wasm"). */
export function blake3Impl(): "native" | "js" | "wasm" {
  return native ? "native" : hasher || embedded ? "wasm" : "js";
}

/** Length of a hex id (32 bytes). */
export const ID_HEX_LENGTH = 64;

/**
 * Bytes hashed by blake3_js.ts before the embedded WebAssembly BLAKE3 (blake3_wasm.ts) takes
 * over: making it costs ~2 ms, which a few small tree nodes (a no-change `hd up`) do not repay,
 * and a FUSE server reading hundreds of Dir nodes before the native module is there does.
 */
const WASM_AFTER = 16 * 1024;
/** The embedded WebAssembly BLAKE3 once made (null: it failed; undefined: not yet). */
let embedded: ((b: Uint8Array) => Uint8Array) | null | undefined;

/** The slower implementations, and the start of the native one's load once it is worth it. */
function slow(bytes: Uint8Array): Uint8Array {
  if (hasher) {
    hasher.init();
    hasher.update(bytes);
    return hasher.digest("binary");
  }
  hashedTotal += bytes.length;
  if (loading === null && autoLoad && (bytes.length >= LARGE || hashedTotal >= LARGE_TOTAL)) {
    loadNativeBlake3();
  }
  if (embedded === undefined && hashedTotal >= WASM_AFTER) embedded = blake3Wasm();
  return embedded ? embedded(bytes) : blake3Js(bytes);
}

/** BLAKE3 of `bytes` as 32 raw bytes. */
export function blake3(bytes: Uint8Array): Uint8Array {
  return native ? native(bytes) : slow(bytes);
}

/** BLAKE3 of `bytes` as a 64-character lowercase hex id. */
export function blake3Hex(bytes: Uint8Array): string {
  return toHex(native ? native(bytes) : slow(bytes));
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

const HEX_DIGITS = "0123456789abcdef";
/** Each byte's two hex digits as char codes (high digit at 2b, low at 2b+1). */
const HEX_CODES = Uint16Array.from(
  { length: 512 },
  (_, i) => HEX_DIGITS.charCodeAt(i & 1 ? (i >> 1) & 15 : i >> 5),
);
const idHexOut = new Uint16Array(64);

/**
 * The 32 bytes of `b` from `at` as lowercase hex: what {@link toHex} gives for them, without a view
 * or a TextDecoder call (a node decoder reads thousands of ids from one buffer).
 */
export function idHexAt(b: Uint8Array, at: number): string {
  for (let i = 0; i < 32; i++) {
    const x = b[at + i] << 1;
    idHexOut[2 * i] = HEX_CODES[x];
    idHexOut[2 * i + 1] = HEX_CODES[x + 1];
  }
  return String.fromCharCode.apply(null, idHexOut as unknown as number[]);
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

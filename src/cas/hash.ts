/**
 * BLAKE3 content ids. Every id in hd is the lowercase hex of a 32-byte BLAKE3 digest.
 *
 * Uses the native SIMD implementation of `@napi-rs/blake-hash` (measured here: 3.5 GB/s on 16 KiB
 * chunks) when it loads and agrees with the reference vector, else hash-wasm (0.4 GB/s). When the
 * addon is in Deno's npm cache it is loaded on the first hash (~2 ms), not at start-up.
 *
 * @example
 * ```ts
 * import { blake3Hex } from "./hash.ts";
 * blake3Hex(new TextEncoder().encode("hi")); // "…64 hex…"
 * ```
 * @module
 */
import type { IHasher } from "hash-wasm";
import { createRequire } from "node:module";

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

/** The version of `@napi-rs/blake-hash` in deno.json's import map (a test keeps them equal). */
export const NAPI_BLAKE_VERSION = "1.3.4";

/**
 * Where Deno's npm cache keeps the native BLAKE3 addon of this platform, or null when it is not
 * there (a compiled binary, another platform, another cache layout).
 */
export function nativeAddonPath(
  env: (k: string) => string | undefined = Deno.env.get,
): string | null {
  if (Deno.build.os !== "linux") return null;
  const arch = Deno.build.arch === "x86_64" ? "x64" : Deno.build.arch === "aarch64" ? "arm64" : "";
  if (!arch) return null;
  const home = env("HOME");
  const cache = env("DENO_DIR") ??
    (env("XDG_CACHE_HOME") ? `${env("XDG_CACHE_HOME")}/deno` : home ? `${home}/.cache/deno` : "");
  if (!cache) return null;
  const pkg = `@napi-rs/blake-hash-linux-${arch}-gnu`;
  return `${cache}/npm/registry.npmjs.org/${pkg}/${NAPI_BLAKE_VERSION}/blake.linux-${arch}-gnu.node`;
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Loads the native addon synchronously (`require` of the .node file: ~2 ms, where importing the
 * npm package costs ~35 ms, most of it the package's own libc probe that runs `which ldd`).
 */
function requireNative(path: string): Native {
  let f: Native;
  try {
    f = createRequire(import.meta.url)(path).blake3 as Native;
  } catch (e) {
    throw new Error(
      `Cannot load the native BLAKE3 module ${path}: ${(e as Error).message} ` +
        "(set HD_BLAKE3=wasm to use hash-wasm)",
    );
  }
  if (typeof f !== "function" || toHex(f(new Uint8Array(0))) !== EMPTY_ID) {
    throw new Error(
      `Cannot use the native BLAKE3 module ${path}: it does not reproduce the reference vector ` +
        "(set HD_BLAKE3=wasm to use hash-wasm)",
    );
  }
  return f;
}

async function loadNative(): Promise<Native | null> {
  try {
    const mod = await import("@napi-rs/blake-hash");
    const f = mod.blake3 as unknown as Native;
    const d = f(new Uint8Array(0));
    return toHex(d) === EMPTY_ID ? f : null;
  } catch {
    return null;
  }
}

const wasmForced = Deno.env.get("HD_BLAKE3") === "wasm";
/**
 * The addon found in Deno's npm cache: loaded on the first hash, not at start-up (a mount server
 * or a command that hashes nothing never pays for it). Where it is not found, the package is
 * imported at start as before, and hash-wasm is the fallback.
 */
const addon: string | null = wasmForced ? null : (() => {
  const p = nativeAddonPath();
  return p && exists(p) ? p : null;
})();
let native: Native | null = addon || wasmForced ? null : await loadNative();
// hash-wasm is loaded only where it is used (its module costs ~20 ms of every start-up)
const hasher: IHasher | null = native || addon
  ? null
  : await (await import("hash-wasm")).createBLAKE3();

/** The native hash function, loading the addon on first use when it is deferred. */
function nativeFn(): Native | null {
  if (native || !addon) return native;
  return native = requireNative(addon);
}

/** Which implementation computes ids in this process ("native" or "wasm"). */
export function blake3Impl(): "native" | "wasm" {
  return native || addon ? "native" : "wasm";
}

/** True when the native addon is still to be loaded (it loads on the first hash). */
export function blake3Deferred(): boolean {
  return addon !== null && native === null;
}

/** Length of a hex id (32 bytes). */
export const ID_HEX_LENGTH = 64;

/** BLAKE3 of `bytes` as 32 raw bytes. */
export function blake3(bytes: Uint8Array): Uint8Array {
  const f = nativeFn();
  if (f) return f(bytes);
  hasher!.init();
  hasher!.update(bytes);
  return hasher!.digest("binary");
}

/** BLAKE3 of `bytes` as a 64-character lowercase hex id. */
export function blake3Hex(bytes: Uint8Array): string {
  const f = nativeFn();
  if (f) return toHex(f(bytes));
  hasher!.init();
  hasher!.update(bytes);
  return hasher!.digest("hex");
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

/**
 * BLAKE3 content ids (hash-wasm). Every id in hd is the lowercase hex of a 32-byte BLAKE3 digest.
 *
 * @example
 * ```ts
 * import { blake3Hex } from "./hash.ts";
 * blake3Hex(new TextEncoder().encode("hi")); // "…64 hex…"
 * ```
 * @module
 */
import { createBLAKE3, type IHasher } from "hash-wasm";

const hasher: IHasher = await createBLAKE3();

/** Length of a hex id (32 bytes). */
export const ID_HEX_LENGTH = 64;

/** BLAKE3 of `bytes` as 32 raw bytes. */
export function blake3(bytes: Uint8Array): Uint8Array {
  hasher.init();
  hasher.update(bytes);
  return hasher.digest("binary");
}

/** BLAKE3 of `bytes` as a 64-character lowercase hex id. */
export function blake3Hex(bytes: Uint8Array): string {
  hasher.init();
  hasher.update(bytes);
  return hasher.digest("hex");
}

/** An incremental BLAKE3 over several pieces (a whole file read in blocks). */
export async function blake3Stream(): Promise<IHasher> {
  const h = await createBLAKE3();
  h.init();
  return h;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

/** Bytes of a hex string; throws on odd length or a non-hex character. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) {
    throw new Error(`Cannot parse hex: "${hex.slice(0, 16)}…" is not lowercase hex`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/** True when `s` is a full 64-hex id. */
export function isId(s: string): boolean {
  return s.length === ID_HEX_LENGTH && /^[0-9a-f]+$/.test(s);
}

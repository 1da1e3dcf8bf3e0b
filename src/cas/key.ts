/**
 * Object keys: one string that names a stored thing of either kind, for the maps and sets that
 * hold objects and manifests together (the pack index, the ids this process has seen, a gc's
 * dead set, a repair's wanted set).
 *
 * An object (chunk or DAG node) and a manifest may have the same id (BLAKE3 of different
 * framings never collide in practice, but the store must not assume it), so a bare id does not
 * say which file it names. A key is the id for an object and `"m"` + id for a manifest: a branded
 * string, so it is as cheap as a string in a `Set` (the no-change re-scan checks thousands), yet
 * the type checker refuses a bare id where a key is wanted. Build keys with {@link objectKey} and
 * take them apart with {@link keyKind} / {@link keyId}; nothing else spells the encoding. Keys
 * live in memory only: nothing on disk holds one (a pack's index stores a kind byte and the id).
 *
 * @example
 * ```ts
 * import { keyId, keyKind, objectKey } from "./key.ts";
 * const id = "ab".repeat(32);
 * const k = objectKey("manifests", id);
 * console.log(keyKind(k), keyId(k) === id); // "manifests" true
 * const dead = new Set([objectKey("objects", id), k]); // both kinds, one set
 * console.log(dead.size); // 2
 * ```
 * @module
 */

/** Kinds of content files in the store (also their directory names). */
export type ObjectKind = "objects" | "manifests";

declare const keyBrand: unique symbol;

/** A stored object's or manifest's key: see the module doc. Make one with {@link objectKey}. */
export type ObjectKey = string & { readonly [keyBrand]: true };

/** The key of `id` stored as `kind`. */
export function objectKey(kind: ObjectKind, id: string): ObjectKey {
  return (kind === "objects" ? id : "m" + id) as ObjectKey;
}

/** What kind of file a key names. */
export function keyKind(key: ObjectKey): ObjectKind {
  return key.charCodeAt(0) === 0x6d /* "m": never a hex digit */ ? "manifests" : "objects";
}

/** The id a key names (without its kind). */
export function keyId(key: ObjectKey): string {
  return key.charCodeAt(0) === 0x6d ? key.slice(1) : key;
}

/**
 * Checks that a plain string is a key (a 64-hex id, or `"m"` + one) and types it as one; for
 * callers that hold keys as strings (tests, older code). Throws on anything else.
 */
export function toObjectKey(s: string): ObjectKey {
  if (!/^m?[0-9a-f]{64}$/.test(s)) {
    const shown = JSON.stringify(s.slice(0, 80));
    throw new Error(`Cannot use ${shown} as an object key: not a 64-hex id or "m" + id`);
  }
  return s as ObjectKey;
}

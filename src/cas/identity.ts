/**
 * The store's identity: a random secret made with the store (file `KEY`, 64 hex digits, mode
 * 0600, created atomically; an old store gets one on first use) and a public id derived from it.
 * Caches derived from the store (the stat cache) record the id and authenticate themselves with
 * the key, so that a cache is never trusted by another store. Kept apart from the store because
 * it is the one secret in it.
 *
 * @example
 * ```ts
 * import { readIdentity } from "./identity.ts";
 * const root = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${root}/tmp`);
 * const { id, key } = readIdentity(root);
 * console.log(id.length, key.length); // 32 32
 * ```
 * @module
 */
import { HdError } from "./errors.ts";
import { tempPath } from "./atomic.ts";
import { blake3Hex, fromHex, toHex } from "./hash.ts";

/** A store's identity: the public `id` (32 hex) and the secret `key` (32 bytes). */
export interface StoreIdentity {
  id: string;
  key: Uint8Array;
}

/**
 * Reads the identity of the store at `root`, making its key first when there is none (a
 * concurrent first use keeps one key). Throws when `KEY` is damaged.
 */
export function readIdentity(root: string): StoreIdentity {
  const p = `${root}/KEY`;
  let hex: string | null = null;
  for (let attempt = 0; attempt < 2 && hex === null; attempt++) {
    try {
      const t = Deno.readTextFileSync(p).trim();
      if (/^[0-9a-f]{64}$/.test(t)) hex = t;
      else {
        throw new HdError(
          `Cannot use store ${root}: ${p} is damaged (not 64 hex digits)`,
          "remove the file: a new key is made (stat caches of this store are then re-made)",
        );
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      const key = crypto.getRandomValues(new Uint8Array(32));
      const tmp = tempPath(`${root}/tmp`, "key");
      Deno.writeTextFileSync(tmp, toHex(key) + "\n", { mode: 0o600 });
      try {
        Deno.linkSync(tmp, p); // never replaces: a concurrent first use keeps one key
      } catch (e2) {
        if (!(e2 instanceof Deno.errors.AlreadyExists)) throw e2;
      } finally {
        Deno.removeSync(tmp);
      }
    }
  }
  const key = fromHex(hex!);
  const id = blake3Hex(new Uint8Array([...new TextEncoder().encode("hd-store-id\0"), ...key]))
    .slice(0, 32);
  return { id, key };
}

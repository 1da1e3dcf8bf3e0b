/**
 * A read-only view of a store: its refs and its secret key, without the store's codecs, packs and
 * hashing (whose BLAKE3 native module costs tens of ms of every start). For a command that may
 * answer from what it has already, as `hd status` does from a saved proof
 * (src/env/quick_status.ts); it opens the full {@link Store} only when it has to.
 *
 * @example
 * ```ts
 * import { StoreView } from "./view.ts";
 * const view = StoreView.open("/home/me/.hd");
 * console.log(view?.getRef("envs/app"));
 * ```
 * @module
 */
import { Refs } from "./refs.ts";

/** Refs and key of an existing store, read-only. */
export class StoreView {
  /** The store directory. */
  readonly root: string;
  readonly #refs: Refs;
  #key: Uint8Array | null | undefined;

  private constructor(root: string) {
    this.root = root;
    this.#refs = new Refs(root);
  }

  /** The view of the store at `root`, or null when there is no store there (yet). */
  static open(root: string): StoreView | null {
    try {
      if (Deno.readTextFileSync(`${root}/FORMAT`).trim() !== "hd-store 1") return null;
    } catch {
      return null;
    }
    return new StoreView(root);
  }

  /** The id ref `name` points at, or null. */
  getRef(name: string): string | null {
    return this.#refs.get(name);
  }

  /**
   * The store's secret key (`KEY`, 64 hex digits), as {@link Store.identity} reads it; null when
   * it is missing or damaged (the full store then makes or reports it).
   */
  secretKey(): Uint8Array | null {
    if (this.#key !== undefined) return this.#key;
    let t = "";
    try {
      t = Deno.readTextFileSync(`${this.root}/KEY`).trim();
    } catch { /* missing */ }
    if (!/^[0-9a-f]{64}$/.test(t)) return this.#key = null;
    const key = new Uint8Array(32);
    for (let i = 0; i < 32; i++) key[i] = parseInt(t.slice(2 * i, 2 * i + 2), 16);
    return this.#key = key;
  }
}

/**
 * The store's refs: named roots, `refs/<name>`, each file one hex id and a newline. A ref is what
 * keeps a tree alive across `hd cas gc`; names may nest (`trees/myproject`). Writes are atomic and
 * fsynced, because losing a ref loses everything only it reached. (Not to be confused with
 * src/dag/refs.ts, which lists the ids a DAG node refers to.)
 *
 * @example
 * ```ts
 * import { Refs } from "./refs.ts";
 * const root = Deno.makeTempDirSync();
 * const refs = new Refs(root);
 * refs.set("trees/app", "ab".repeat(32));
 * console.log(refs.get("trees/app"), refs.list()); // the id, [["trees/app", id]]
 * refs.delete("trees/app");
 * ```
 * @module
 */
import { HdError } from "./errors.ts";
import { writeAtomic } from "./atomic.ts";

/** The refs of the store at `root`. */
export class Refs {
  /** The store directory. */
  readonly root: string;

  /** `root` is the store directory (refs/ and tmp/ are under it). */
  constructor(root: string) {
    this.root = root;
  }

  /** Path of ref `name`; throws (exit 2) on a name that is not allowed. */
  path(name: string): string {
    if (
      !/^[A-Za-z0-9._@:+-]+(\/[A-Za-z0-9._@:+-]+)*$/.test(name) || name.split("/").includes("..")
    ) {
      throw new HdError(
        `Cannot use ref name "${name}": only letters, digits, . _ @ : + - and / are allowed`,
        "pick a name such as trees/myproject",
        2,
      );
    }
    return `${this.root}/refs/${name}`;
  }

  /** Points ref `name` at `id` (atomic, fsynced; no write when unchanged). */
  set(name: string, id: string): void {
    const p = this.path(name);
    if (this.get(name) === id) return;
    Deno.mkdirSync(p.slice(0, p.lastIndexOf("/")), { recursive: true });
    writeAtomic(`${this.root}/tmp`, p, new TextEncoder().encode(id + "\n"), { fsync: true });
  }

  /** The id a ref points at, or null. */
  get(name: string): string | null {
    try {
      return Deno.readTextFileSync(this.path(name)).trim();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  /** Removes a ref; true when it existed. */
  delete(name: string): boolean {
    try {
      Deno.removeSync(this.path(name));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  /** Every ref as [name, id], sorted by name. */
  list(): [string, string][] {
    const out: [string, string][] = [];
    const walk = (dir: string, prefix: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch {
        return;
      }
      for (const e of entries) {
        const name = prefix ? `${prefix}/${e.name}` : e.name;
        if (e.isDirectory) walk(`${dir}/${e.name}`, name);
        else if (e.isFile) out.push([name, Deno.readTextFileSync(`${dir}/${e.name}`).trim()]);
      }
    };
    walk(`${this.root}/refs`, "");
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }
}

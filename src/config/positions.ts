/**
 * Where keys and values sit in a TOML source text. smol-toml returns values without positions, so
 * this small scanner walks the (already valid) text again and records, for every key path, the
 * line and column of the key and of its value. Paths join keys with "." and index array items as
 * `[i]`: `services.web.depends_on`, `build.steps[1].inputs`, `build.steps[0]`. Dotted keys,
 * `[a.b]` headers, `[[a.b]]` arrays of tables, inline tables and multi-line arrays and strings are
 * understood.
 *
 * @example
 * ```ts
 * import { SourcePositions } from "./positions.ts";
 * const p = new SourcePositions('[services.web]\nport = "x"\n');
 * p.value("services.web.port"); // { line: 2, column: 8 }
 * ```
 * @module
 */

/** A 1-based line and column. */
export interface LineCol {
  line: number;
  column: number;
}

const BARE = /[A-Za-z0-9_-]/;

/** Deeper arrays and inline tables than this are not followed (smol-toml refuses them anyway). */
const MAX_DEPTH = 128;

/** Key and value positions of a TOML document. */
export class SourcePositions {
  #src: string;
  #i = 0;
  #lineStarts: number[] = [0];
  #keys = new Map<string, LineCol>();
  #values = new Map<string, LineCol>();
  #arrayTables = new Map<string, number>();

  #scanned = false;

  /**
   * Keeps `source`; it is scanned on the first question (most parses ask none: positions are for
   * messages, and the scan costs ~2 ms of every command that reads hd.toml).
   */
  constructor(source: string) {
    this.#src = source;
  }

  #scan(): void {
    if (this.#scanned) return;
    this.#scanned = true;
    const source = this.#src;
    if (source.startsWith("\ufeff")) this.#i = this.#lineStarts[0] = 1; // a BOM is not a column
    for (let i = 0; i < source.length; i++) if (source[i] === "\n") this.#lineStarts.push(i + 1);
    try {
      this.#document();
    } catch {
      // Positions are best effort: an unexpected construct leaves later keys unknown.
    }
  }

  /** Position of the key that defines `path` (its first occurrence), or null. */
  key(path: string): LineCol | null {
    this.#scan();
    return this.#keys.get(path) ?? null;
  }

  /** Position of the value of `path` (an array item's own position for `a[i]`), or null. */
  value(path: string): LineCol | null {
    this.#scan();
    return this.#values.get(path) ?? null;
  }

  /**
   * The best position for a message about `path`: its value (or, with `preferKey`, its key), else
   * the nearest enclosing key that exists, else 1:1.
   */
  nearest(path: string, preferKey = false): LineCol {
    this.#scan();
    let p = path;
    while (p !== "") {
      const hit = preferKey
        ? this.#keys.get(p) ?? this.#values.get(p)
        : this.#values.get(p) ?? this.#keys.get(p);
      if (hit) return hit;
      p = parentPath(p);
    }
    return { line: 1, column: 1 };
  }

  #pos(i: number): LineCol {
    let lo = 0;
    let hi = this.#lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#lineStarts[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: i - this.#lineStarts[lo] + 1 };
  }

  #recordKey(path: string, at: number): void {
    if (!this.#keys.has(path)) this.#keys.set(path, this.#pos(at));
  }

  #peek(n = 0): string {
    return this.#src[this.#i + n] ?? "";
  }

  /** Skips spaces and tabs; with `newlines`, also newlines and comments. */
  #skip(newlines: boolean): void {
    while (this.#i < this.#src.length) {
      const c = this.#src[this.#i];
      if (c === " " || c === "\t") this.#i++;
      else if (c === "#") {
        while (this.#i < this.#src.length && this.#src[this.#i] !== "\n") this.#i++;
      } else if (newlines && (c === "\n" || c === "\r")) this.#i++;
      else break;
    }
  }

  #document(): void {
    let table: string[] = [];
    while (true) {
      this.#skip(true);
      if (this.#i >= this.#src.length) return;
      if (this.#peek() === "[") {
        const arrayTable = this.#peek(1) === "[";
        this.#i += arrayTable ? 2 : 1;
        this.#skip(false);
        const at = this.#i;
        const keys = this.#keyPath();
        let prefix = "";
        for (const [n, k] of keys.entries()) {
          prefix = prefix ? `${prefix}.${k}` : k;
          if (n < keys.length - 1) this.#recordKey(prefix, at);
        }
        const name = keys.join(".");
        this.#recordKey(name, at);
        if (arrayTable) {
          const idx = this.#arrayTables.get(name) ?? 0;
          this.#arrayTables.set(name, idx + 1);
          const item = `${name}[${idx}]`;
          this.#recordKey(item, at);
          if (!this.#values.has(item)) this.#values.set(item, this.#pos(at));
          table = [item];
        } else {
          table = [name];
        }
        while (this.#i < this.#src.length && this.#src[this.#i] !== "\n") this.#i++;
        continue;
      }
      this.#keyValue(table.join("."));
      while (this.#i < this.#src.length && this.#src[this.#i] !== "\n") this.#i++;
    }
  }

  #keyValue(base: string, depth = 0): void {
    const at = this.#i;
    const keys = this.#keyPath();
    let path = base;
    for (const k of keys) {
      path = path ? `${path}.${k}` : k;
      this.#recordKey(path, at);
    }
    this.#skip(false);
    if (this.#peek() === "=") this.#i++;
    this.#skip(false);
    this.#value(path, depth);
  }

  #keyPath(): string[] {
    const keys: string[] = [];
    while (true) {
      this.#skip(false);
      const c = this.#peek();
      if (c === '"') keys.push(this.#basicString());
      else if (c === "'") keys.push(this.#literalString());
      else {
        const start = this.#i;
        while (this.#i < this.#src.length && BARE.test(this.#src[this.#i])) this.#i++;
        if (this.#i === start) throw new Error("no key");
        keys.push(this.#src.slice(start, this.#i));
      }
      this.#skip(false);
      if (this.#peek() === ".") this.#i++;
      else return keys;
    }
  }

  #basicString(): string {
    this.#i++; // opening quote
    let s = "";
    while (this.#i < this.#src.length) {
      const c = this.#src[this.#i++];
      if (c === "\\") s += this.#src[this.#i++] ?? "";
      else if (c === '"') return s;
      else s += c;
    }
    return s;
  }

  #literalString(): string {
    this.#i++;
    const end = this.#src.indexOf("'", this.#i);
    const s = this.#src.slice(this.#i, end < 0 ? this.#src.length : end);
    this.#i = end < 0 ? this.#src.length : end + 1;
    return s;
  }

  #multiline(quote: string): void {
    this.#i += 3;
    while (this.#i < this.#src.length) {
      if (quote === '"' && this.#src[this.#i] === "\\") {
        this.#i += 2;
        continue;
      }
      if (this.#src.startsWith(quote.repeat(3), this.#i)) {
        this.#i += 3;
        while (this.#src[this.#i] === quote) this.#i++; // up to two quotes before the closing ones
        return;
      }
      this.#i++;
    }
  }

  #value(path: string, depth = 0): void {
    if (depth > MAX_DEPTH) throw new Error("too deep");
    this.#values.set(path, this.#pos(this.#i));
    const c = this.#peek();
    if (c === '"') {
      if (this.#src.startsWith('"""', this.#i)) this.#multiline('"');
      else this.#basicString();
    } else if (c === "'") {
      if (this.#src.startsWith("'''", this.#i)) this.#multiline("'");
      else this.#literalString();
    } else if (c === "[") {
      this.#i++;
      let idx = 0;
      while (true) {
        this.#skip(true);
        if (this.#i >= this.#src.length) return;
        if (this.#peek() === "]") {
          this.#i++;
          return;
        }
        const item = `${path}[${idx++}]`;
        const before = this.#i;
        this.#recordKey(item, this.#i);
        this.#value(item, depth + 1);
        this.#skip(true);
        if (this.#peek() === ",") this.#i++;
        else if (this.#i === before) throw new Error("stuck"); // e.g. `[}`: invalid TOML
      }
    } else if (c === "{") {
      this.#i++;
      while (true) {
        this.#skip(false);
        if (this.#i >= this.#src.length) return;
        if (this.#peek() === "}") {
          this.#i++;
          return;
        }
        const before = this.#i;
        this.#keyValue(path, depth + 1);
        this.#skip(false);
        if (this.#peek() === ",") this.#i++;
        else if (this.#i === before) throw new Error("stuck");
      }
    } else {
      while (this.#i < this.#src.length && !",]}#\n\r".includes(this.#src[this.#i])) this.#i++;
    }
  }
}

/** The path one level up: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → "". */
export function parentPath(path: string): string {
  if (path.endsWith("]")) return path.slice(0, path.lastIndexOf("["));
  const dot = path.lastIndexOf(".");
  return dot < 0 ? "" : path.slice(0, dot);
}

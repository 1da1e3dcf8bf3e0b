/**
 * `Deno.dlopen` in groups: binding costs ~0.2–0.3 ms a symbol (Deno compiles a trampoline for
 * each), so a library whose callers need a few symbols at start and the rest later (libfuse3's
 * mount, then its serve loop; libzstd's reads, then its compression) binds the first group when it
 * opens and each other group the first time one of its symbols is used. The result has the shape of
 * one `Deno.DynamicLibrary` of every symbol.
 *
 * @example
 * ```ts
 * import { dlopenGroups } from "./dlopen_groups.ts";
 * const SYMBOLS = {
 *   getpid: { parameters: [], result: "i32" },
 *   getppid: { parameters: [], result: "i32" },
 * } as const;
 * const libc = dlopenGroups("libc.so.6", SYMBOLS, ["getpid"], [["getppid"]]);
 * libc.symbols.getppid(); // binds the group ["getppid"] now
 * libc.close();
 * ```
 * @module
 */

/**
 * Opens `path` with the symbols `first` bound now and each of `later` bound on the first use of
 * one of its symbols (symbols in no group are bound with the last group). Throws as `Deno.dlopen`
 * when the library cannot be opened.
 */
export function dlopenGroups<S extends Deno.ForeignLibraryInterface>(
  path: string,
  all: S,
  first: readonly (keyof S & string)[],
  later: readonly (readonly (keyof S & string)[])[],
): Deno.DynamicLibrary<S> {
  const pick = (names: readonly string[]): Deno.ForeignLibraryInterface =>
    Object.fromEntries(names.map((n) => [n, all[n]]));
  const eager = Deno.dlopen(path, pick(first));
  const grouped = new Set<string>([...first, ...later.flat()]);
  const rest = Object.keys(all).filter((k) => !grouped.has(k));
  const groups = later.map((g, i) => i === later.length - 1 ? [...g, ...rest] : [...g]);
  if (groups.length === 0 && rest.length > 0) groups.push(rest);
  const bound: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>[] = [];
  const symbols: Record<string, unknown> = { ...eager.symbols };
  for (const group of groups) {
    for (const k of group) {
      // a getter that binds the group on first use, then a plain value
      Object.defineProperty(symbols, k, {
        configurable: true,
        enumerable: true,
        get() {
          const lib = Deno.dlopen(path, pick(group));
          bound.push(lib);
          for (const r of group) {
            Object.defineProperty(symbols, r, { value: lib.symbols[r], enumerable: true });
          }
          return symbols[k];
        },
      });
    }
  }
  return {
    symbols,
    close() {
      eager.close();
      for (const lib of bound) lib.close();
    },
  } as unknown as Deno.DynamicLibrary<S>;
}

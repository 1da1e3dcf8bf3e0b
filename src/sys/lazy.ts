/**
 * `import()` that Deno does not follow ahead of time. A dynamic import with a literal specifier
 * puts its module, and everything that module imports, into the module graph Deno reads and
 * analyses before the program starts (about 170 files for `hd --version`, of which it runs 8).
 * Through this function the module is read only when the import runs. Type it at the call site:
 * `lazyImport<typeof import("./x.ts")>(new URL("./x.ts", import.meta.url))` (a type-only
 * reference, which `deno run` does not load). `deno task compile` embeds these modules with
 * `--include` (scripts/compile.ts).
 *
 * @example
 * ```ts
 * import { lazyImport } from "./lazy.ts";
 * const m = await lazyImport<typeof import("./errors.ts")>(new URL("./errors.ts", import.meta.url));
 * ```
 * @module
 */

/** Imports the module at `url` when called (not before the program starts). */
export function lazyImport<T>(url: URL): Promise<T> {
  return import(url.href);
}

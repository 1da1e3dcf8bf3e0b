/**
 * `import()` that Deno does not follow ahead of time. A dynamic import with a literal specifier
 * puts its module, and everything that module imports, into the module graph Deno reads and
 * analyses before the program starts (about 170 files for `hd --version`, of which it runs 8).
 * Through this function the module is read only when the import runs. Type it at the call site:
 * `lazyImport<typeof import("./x.ts")>(new URL("./x.ts", import.meta.url))` (a type-only
 * reference, which `deno run` does not load). `deno task compile` embeds these modules with
 * `--include` (scripts/compile.ts).
 *
 * {@link nodeBuiltin} is the synchronous counterpart for Node's built-in modules: a static
 * `import … from "node:module"` (for `createRequire`) costs every process that loads it about
 * 25 ms of Node-compatibility set-up, whether or not the module is then used.
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

/**
 * Node's built-in module `name` ("node:zlib", "node:v8" …), loaded when called, synchronously
 * (`process.getBuiltinModule`). Type it at the call site: `nodeBuiltin<typeof import("node:zlib")>`.
 * The first call pays the Node-compatibility set-up that importing any such module costs.
 */
export function nodeBuiltin<T>(name: string): T {
  const p = (globalThis as { process?: { getBuiltinModule?: (n: string) => unknown } }).process;
  const m = p?.getBuiltinModule?.(name);
  if (m === undefined) throw new Error(`Cannot load ${name}: process.getBuiltinModule is missing`);
  return m as T;
}

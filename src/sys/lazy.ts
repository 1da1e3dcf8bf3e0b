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

/**
 * The Node built-in module `name` (`"node:zlib"`), loaded synchronously on this call through
 * `process.getBuiltinModule`: unlike a static `import { createRequire } from "node:module"`, it
 * does not put Deno's Node compatibility layer (~30–40 ms to evaluate) into the start-up of every
 * process whose module graph holds the caller.
 */
export function nodeBuiltin<T>(name: `node:${string}`): T {
  const p = (globalThis as unknown as { process: { getBuiltinModule(n: string): unknown } })
    .process;
  return p.getBuiltinModule(name) as T;
}

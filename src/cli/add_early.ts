/**
 * The early start of `hd cas add PATH…`: cli.ts calls {@link startAddEarly} with the arguments
 * after `cas add`, before main.ts and the command's modules load. When the add will read a whole
 * directory (src/scan/ingest_pool.ts's `prestartDecision`: no stat cache for it, or
 * `--no-cache`), the ingest's worker threads start now and load their modules while this thread
 * loads its own, opens the store and walks; the ingest then takes them. Anything unusual in the
 * arguments (an unknown option, `--help`) leaves it to the ordinary path. No heavy imports here.
 * @module
 */
import { blake3Js } from "../cas/blake3_js.ts";
import { defaultStoreRoot } from "../cas/root.ts";
import { prestartDecision, startIngestPool } from "../scan/ingest_pool.ts";
import { trace } from "../sys/trace.ts";

/** What an early start reads of `hd cas add`'s arguments. */
export interface EarlyAdd {
  paths: string[];
  store?: string;
  noCache: boolean;
}

/**
 * The arguments of a `hd cas add` that may start early, or null: positionals and only the
 * options --no-cache, --json, --debug, --store V, --ref V.
 */
export function parseAddEarly(rest: string[]): EarlyAdd | null {
  const out: EarlyAdd = { paths: [], noCache: false };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--") return null;
    if (!a.startsWith("-") || a === "-") {
      out.paths.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name === "--store" || name === "--ref") {
      const v = eq > 0 ? a.slice(eq + 1) : rest[++i];
      if (v === undefined || v === "") return null;
      if (name === "--store") out.store = v;
    } else if (eq > 0) return null;
    else if (a === "--no-cache") out.noCache = true;
    else if (a !== "--json" && a !== "--debug") return null;
  }
  return out.paths.length > 0 ? out : null;
}

/** The stat cache file of the directory at `abs` in the store at `root` (src/cli/cas/add.ts). */
export function statCachePath(root: string, abs: string): string {
  // the first 12 bytes of the path's BLAKE3, in hex (the JS BLAKE3: src/cas/hash.ts's module,
  // with its native and WASM loaders, stays out of this early path)
  const id = blake3Js(new TextEncoder().encode(abs)).subarray(0, 12);
  return `${root}/cache/stat/${
    Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")
  }.json`;
}

/** Starts the ingest workers of a qualifying `hd cas add` (see the module doc). */
export function startAddEarly(rest: string[]): void {
  const args = parseAddEarly(rest);
  if (!args) return;
  const root = args.store ?? defaultStoreRoot();
  for (const p of args.paths) {
    let abs: string;
    try {
      if (!Deno.lstatSync(p).isDirectory) continue;
      abs = Deno.realPathSync(p);
    } catch {
      continue; // the ordinary path says what is wrong
    }
    let statCache = false;
    try {
      statCache = Deno.statSync(statCachePath(root, abs)).isFile;
    } catch { /* none */ }
    if (prestartDecision({ directory: true, noCache: args.noCache, statCache })) {
      startIngestPool(Math.max(1, Math.min(navigator.hardwareConcurrency ?? 2, 8)));
      trace("cas add: ingest workers started");
    }
    return; // the first directory takes the pool
  }
}

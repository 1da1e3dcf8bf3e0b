/**
 * The worker threads of a parallel ingest (src/scan/ingest_worker.ts), started ahead of time.
 *
 * A worker is ready only once its modules are loaded (chunking, libzstd, the native BLAKE3 module:
 * ~100 ms, most of it before the first file can be hashed). A cold `hd cas add` of a big tree
 * knows it will need them as soon as its arguments are read, long before its own modules are
 * loaded and the walk has found enough to read: {@link startIngestPool} starts them then (from
 * cli.ts, src/cli/add_early.ts), and {@link takeIngestPool} hands them to the ingest, already
 * loaded or nearly. Whether to start them early is {@link prestartDecision}: only when the add
 * will read everything (no stat cache for the tree), since a re-scan answered by the stat cache
 * reads nothing and two idle workers loading beside it would only take the cores from the walk.
 *
 * @example
 * ```ts
 * import { startIngestPool, takeIngestPool } from "./ingest_pool.ts";
 * startIngestPool(2);
 * const pool = takeIngestPool(); // { workers, ready } once, then null
 * pool?.workers.forEach((w) => w.terminate());
 * ```
 * @module
 */

/** Workers started ahead, and which of them have said they are ready. */
export interface IngestPool {
  workers: Worker[];
  /** `ready[i]`: worker i has posted `{ ready: true }` (its modules are loaded). */
  ready: boolean[];
}

let pool: IngestPool | null = null;

/** The module the workers run. */
export const INGEST_WORKER_URL = new URL("./ingest_worker.ts", import.meta.url);

/**
 * Starts `n` ingest workers now (once per process; a second call does nothing). Each one's
 * `ready` message is recorded until the ingest takes the pool and installs its own handlers.
 */
export function startIngestPool(n: number): void {
  if (pool !== null || n < 1) return;
  const p: IngestPool = { workers: [], ready: [] };
  for (let i = 0; i < n; i++) {
    const w = new Worker(INGEST_WORKER_URL, { type: "module" });
    p.ready.push(false);
    w.onmessage = (ev: MessageEvent<{ ready?: boolean }>) => {
      if (ev.data?.ready === true) p.ready[i] = true;
    };
    // an error before the ingest takes over (a module that does not load) is reported there:
    // the ingest starts its own workers when the pool is gone
    w.onerror = (e) => {
      e.preventDefault();
      dropIngestPool();
    };
    p.workers.push(w);
  }
  pool = p;
}

/** The pool started ahead, if any (once: the caller owns the workers from now on). */
export function takeIngestPool(): IngestPool | null {
  const p = pool;
  pool = null;
  if (p) { for (const w of p.workers) w.onerror = null; }
  return p;
}

/** Terminates the pool started ahead, if it was not taken (an ingest that did not need it). */
export function dropIngestPool(): void {
  const p = takeIngestPool();
  if (p) { for (const w of p.workers) w.terminate(); }
}

/** What {@link prestartDecision} looks at. */
export interface PrestartFacts {
  /** Some path to add is a directory. */
  directory: boolean;
  /** `--no-cache` was given (every file is read). */
  noCache: boolean;
  /** A stat cache file exists for that directory (a re-scan: the cache may answer it all). */
  statCache: boolean;
}

/**
 * Whether a `hd cas add` should start its ingest workers before it loads: when it adds a
 * directory that it will read in full (no stat cache for it, or `--no-cache`).
 */
export function prestartDecision(f: PrestartFacts): boolean {
  return f.directory && (f.noCache || !f.statCache);
}

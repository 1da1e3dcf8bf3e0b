/**
 * A debounced project watcher: Deno.watchFs on the project directory, events filtered by the
 * project's {@link PathFilter} (and extra ignored globs, e.g. build outputs), collected until the
 * tree has been quiet for `debounceMs` (so a `git checkout` of 500 files is one batch), then handed
 * over as one sorted set of project-relative paths. A batch is never cut short by more than
 * `maxWaitMs` of continuous events.
 *
 * @example
 * ```ts
 * import { ProjectWatcher } from "./watcher.ts";
 * const w = new ProjectWatcher("/proj", { debounceMs: 50, onBatch: (paths) => console.log(paths) });
 * w.start();
 * // …
 * w.close();
 * ```
 * @module
 */
import type { PathFilter } from "../scan/filter.ts";
import type { GlobSet } from "./pathmap.ts";

/** Options of a {@link ProjectWatcher}. */
export interface WatcherOptions {
  /** Quiet period that ends a batch. */
  debounceMs: number;
  /** Longest time a batch waits under continuous events (default 20 × debounce, ≥ 1 s). */
  maxWaitMs?: number;
  /** Which paths are tracked; others are ignored (default excludes always apply). */
  filter?: PathFilter;
  /** Paths ignored on top of the filter (build step outputs). */
  ignore?: GlobSet;
  /** Receives each batch; the next batch is not delivered before this resolves. */
  onBatch: (paths: string[]) => Promise<void> | void;
  /**
   * The kernel dropped events (its inotify queue overflowed: a checkout of thousands of files):
   * what changed must be found otherwise. Returns the project-relative paths that differ (a scan
   * against what was last applied), which go into the next batch. Without it, dropped events stay
   * unseen.
   */
  onRescan?: () => Promise<string[]> | string[];
}

/** Watches a directory tree and delivers debounced batches of changed paths. */
export class ProjectWatcher {
  #dir: string;
  #o: WatcherOptions;
  #fs: Deno.FsWatcher | null = null;
  /** Watched top-level directories: their watcher and inode. */
  #tops = new Map<string, { w: Deno.FsWatcher; ino: number }>();
  #pending = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #first = 0;
  #busy: Promise<void> | null = null;
  #closed = false;
  /** Events seen (before filtering). */
  events = 0;
  /** Paths seen that the filter keeps (a count that moves whenever a tracked path may have). */
  relevantEvents = 0;

  constructor(dir: string, opts: WatcherOptions) {
    this.#dir = dir.replace(/\/+$/, "");
    this.#o = opts;
  }

  /**
   * Starts watching (returns at once; the watch is active when this returns). The project root
   * is watched flat and the top-level directories recursively, except excluded ones: a large
   * `node_modules` or `.git` costs no inotify watches. New top-level directories are added as
   * they appear.
   */
  start(): void {
    this.#pump(Deno.watchFs(this.#dir, { recursive: false }), (ev) => {
      for (const p of ev.paths) {
        const rel = this.relevant(p);
        if (rel !== null && !rel.includes("/")) {
          // removed or renamed away: the watch of the old directory is dead even when a new one
          // with the same name (and, often, the same inode number) appears
          this.#checkTop(rel, true, ev.kind === "remove" || ev.kind === "rename");
        }
      }
    }, true);
    for (const e of Deno.readDirSync(this.#dir)) {
      if (e.isDirectory && this.relevant(`${this.#dir}/${e.name}`) !== null) {
        this.#checkTop(e.name, false);
      }
    }
  }

  /**
   * Keeps the recursive watch of top-level `name` in step with what is on disk now. (Deno shares
   * one inotify instance among all its watchers, so a watcher per directory is cheap; but it
   * also shares the kernel watch of a path, so an old watcher must be closed before a new one on
   * the same path is made. What changes in between is covered by the walk of the reported
   * directory.)
   */
  #checkTop(name: string, report = true, renew = false): void {
    let ino: number | null = null;
    try {
      const st = Deno.lstatSync(`${this.#dir}/${name}`);
      if (st.isDirectory) ino = st.ino ?? 0;
    } catch { /* gone */ }
    const cur = this.#tops.get(name);
    if (cur && cur.ino === ino && !renew) return;
    if (cur) {
      this.#tops.delete(name);
      try {
        cur.w.close();
      } catch { /* closed */ }
    }
    if (ino === null || this.#closed) return;
    let w: Deno.FsWatcher;
    try {
      w = Deno.watchFs(`${this.#dir}/${name}`, { recursive: true });
    } catch {
      return; // vanished meanwhile
    }
    this.#tops.set(name, { w, ino });
    this.#pump(w);
    // files created before the watch was in place are found by the update's walk of the
    // directory, which this reports
    if (report) this.#add(`${this.#dir}/${name}`);
  }

  #pump(w: Deno.FsWatcher, extra?: (ev: Deno.FsEvent) => void, root = false): void {
    if (root) this.#fs = w;
    (async () => {
      try {
        for await (const ev of w) {
          this.events++;
          if (ev.flag === "rescan") this.#needRescan();
          extra?.(ev);
          for (const p of ev.paths) this.#add(p);
        }
      } catch (e) {
        if (!this.#closed && root) console.error(`hd: watcher stopped: ${(e as Error).message}`);
      }
    })();
  }

  /** Project-relative form of an absolute path, or null when outside or ignored. */
  relevant(abs: string): string | null {
    if (!abs.startsWith(this.#dir + "/")) return null;
    const rel = abs.slice(this.#dir.length + 1);
    if (this.#o.filter?.excluded(rel)) return null;
    if (this.#o.ignore?.matches(rel)) return null;
    return rel;
  }

  /** Events were dropped: the next batch starts with what {@link WatcherOptions.onRescan} finds. */
  #rescan = false;

  #needRescan(): void {
    if (this.#o.onRescan === undefined || this.#closed) return;
    if (!this.#rescan && this.#pending.size === 0) this.#first = performance.now();
    this.#rescan = true;
    this.relevantEvents++;
    this.#schedule();
  }

  #add(abs: string): void {
    const rel = this.relevant(abs);
    if (rel === null) return;
    this.relevantEvents++;
    if (this.#pending.size === 0) this.#first = performance.now();
    this.#pending.add(rel);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    const maxWait = this.#o.maxWaitMs ?? Math.max(1000, this.#o.debounceMs * 20);
    const left = this.#first + maxWait - performance.now();
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, Math.min(this.#o.debounceMs, left)));
  }

  async #fire(): Promise<void> {
    this.#timer = null;
    if (this.#closed || (this.#pending.size === 0 && !this.#rescan)) return;
    // a batch is being handled: what piles up is delivered when it is done
    if (this.#busy) return;
    const rescan = this.#rescan;
    this.#rescan = false;
    const run = (async () => {
      try {
        if (rescan) { for (const p of await this.#o.onRescan!()) this.#pending.add(p); }
        const batch = [...this.#pending].sort();
        this.#pending.clear();
        if (batch.length > 0) await this.#o.onBatch(batch);
      } catch (e) {
        console.error(`hd: update failed: ${(e as Error).message}`);
      }
    })();
    this.#busy = run;
    await run;
    this.#busy = null;
    if ((this.#pending.size > 0 || this.#rescan) && this.#timer === null) this.#schedule();
  }

  /**
   * Hands `paths` (absolute) to the next batch as if their events had come: what changed before
   * the watch was in place (src/services/loop.ts's check after the start).
   */
  report(paths: Iterable<string>): void {
    for (const p of paths) this.#add(p);
  }

  /** Stops watching; a batch being handled finishes. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    for (const w of [this.#fs, ...[...this.#tops.values()].map((t) => t.w)]) {
      try {
        w?.close();
      } catch { /* closed */ }
    }
    this.#tops.clear();
    await this.#busy;
  }
}

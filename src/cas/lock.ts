/**
 * The store lock and the gc generation. Writers hold `lock` (an flock) shared while they write,
 * gc holds it exclusive while it marks and sweeps; so a gc never sees half of a writer's work.
 * `GENERATION` changes whenever a gc deletes anything: a process that remembers which objects
 * exist (its own caches, a stat cache on disk) checks it each time it takes the lock and starts
 * over when it moved.
 *
 * Two ways to hold the shared lock: {@link StoreLock.run} around a piece of work (re-entrant
 * within a process), and {@link StoreLock.hold}, taken by a leased write made outside `run` and
 * kept until the lease is written out ({@link StoreLock.letGo}): between the write and the lease
 * file no gc may start. What is flushed before the lock goes (leases) is the caller's business,
 * through the hooks of `run`.
 *
 * @example
 * ```ts
 * import { StoreLock } from "./lock.ts";
 * const root = Deno.makeTempDirSync();
 * Deno.mkdirSync(`${root}/tmp`);
 * const lock = new StoreLock(root, () => console.log("a gc ran: forget what you know"));
 * await lock.run("shared", () => console.log("writing, generation", lock.generation()));
 * await lock.run("exclusive", () => lock.bumpGeneration());
 * ```
 * @module
 */
import { writeAtomic } from "./atomic.ts";

/** The store's flock and gc generation. */
export class StoreLock {
  /** The store directory. */
  readonly root: string;
  readonly #onNewGeneration: () => void;
  #depth = 0;
  /** The shared lock taken by {@link hold}, held until {@link letGo}. */
  #held: Deno.FsFile | null = null;
  #seen: string | null = null;

  /**
   * `onNewGeneration` runs when the lock is taken and the generation moved since this process
   * last looked (another process's gc deleted something).
   */
  constructor(root: string, onNewGeneration: () => void) {
    this.root = root;
    this.#onNewGeneration = onNewGeneration;
  }

  /** True inside {@link run} (shared or exclusive). */
  get inRun(): boolean {
    return this.#depth > 0;
  }

  #open(): Deno.FsFile {
    return Deno.openSync(`${this.root}/lock`, { read: true, write: true, create: true });
  }

  /**
   * Runs `fn` holding the lock: shared for writers that add, exclusive for gc. Re-entrant within
   * one process for shared holders. `beforeExclusive` runs before an exclusive lock is waited
   * for (then the {@link hold} is let go: our own shared lock would block us forever);
   * `beforeUnlock` runs before a shared lock is given up.
   */
  async run<T>(
    mode: "shared" | "exclusive",
    fn: () => Promise<T> | T,
    hooks: { beforeExclusive?: () => void; beforeUnlock?: () => void } = {},
  ): Promise<T> {
    if (mode === "shared" && this.#depth > 0) {
      this.#depth++;
      try {
        return await fn();
      } finally {
        this.#depth--;
      }
    }
    if (mode === "exclusive") {
      hooks.beforeExclusive?.();
      this.letGo();
    }
    const f = this.#open();
    await f.lock(mode === "exclusive");
    this.#depth = 1;
    this.#checkGeneration();
    try {
      return await fn();
    } finally {
      this.#depth = 0;
      try {
        if (mode === "shared") hooks.beforeUnlock?.();
      } finally {
        try {
          f.unlockSync();
        } finally {
          f.close();
        }
      }
    }
  }

  /** Takes the shared lock outside {@link run} unless this process holds the lock already. */
  hold(): void {
    if (this.#depth > 0 || this.#held !== null) return;
    const f = this.#open();
    f.lockSync(false);
    this.#held = f;
    this.#checkGeneration();
  }

  /** Gives up the lock taken by {@link hold}, if any. */
  letGo(): void {
    const f = this.#held;
    if (!f) return;
    this.#held = null;
    try {
      f.unlockSync();
    } finally {
      f.close();
    }
  }

  /**
   * The gc generation: changes whenever a gc deletes anything, so caches that remember which
   * objects exist (the stat cache) know to start over.
   */
  generation(): string {
    try {
      return Deno.readTextFileSync(`${this.root}/GENERATION`).trim();
    } catch {
      return "0";
    }
  }

  /** Starts a new gc generation (called by gc before it deletes). */
  bumpGeneration(): void {
    const g = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    writeAtomic(`${this.root}/tmp`, `${this.root}/GENERATION`, new TextEncoder().encode(g + "\n"), {
      fsync: true,
    });
  }

  #checkGeneration(): void {
    const gen = this.generation();
    if (this.#seen !== null && gen !== this.#seen) this.#onNewGeneration();
    this.#seen = gen;
  }
}

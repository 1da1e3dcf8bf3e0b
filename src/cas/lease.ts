/**
 * Leases: what keeps objects that a writer has stored but not yet reached from a ref alive across
 * a concurrent `hd cas gc` (containerd's model).
 *
 * A writer opens a lease before its first write and releases it once the ref that reaches what it
 * wrote is set. While the lease is open, the store records in it every id the writer stores or
 * finds already stored (a dedup hit is a reference too). The record lives in memory and is
 * written to `leases/<id>.json` (temp file + rename) whenever the writer gives up the store's
 * shared lock, i.e. before a gc can get the exclusive lock. A gc marks from every live lease's ids
 * as from refs.
 *
 * A lease names its process (pid, the kernel's start time of that pid, the boot id): a gc treats a
 * lease whose process is gone, or whose pid now belongs to another process, as expired and removes
 * it, so a writer killed with SIGKILL never pins garbage for long.
 *
 * Why ids and not "everything newer than the oldest lease": a writer that dedups against an
 * object already in the store (an edit reverted to an older version, a cached file) does not
 * rewrite it, so its age says nothing about who still needs it; recording ids is exact, and
 * costs one small file write per lock release.
 *
 * @example
 * ```ts
 * import { Store } from "./store.ts";
 * const store = Store.open("/tmp/s");
 * const bytes = new TextEncoder().encode("hello");
 * {
 *   using _lease = store.lease("import");
 *   const id = await store.withLock("shared", () => store.putObject(bytes));
 *   store.setRef("imports/x", id);
 * }
 * ```
 * @module
 */
import { isId } from "./hash.ts";
import { bootId, readStat } from "../sys/proc.ts";

/** The version of the lease file format. */
export const LEASE_VERSION = 1;

/** A lease as stored in `leases/<id>.json`. */
export interface LeaseRecord {
  version: number;
  /** Random id (also the file name). */
  id: string;
  /** What the writer is doing, for `hd cas gc` reports. */
  why: string;
  pid: number;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  start: number | null;
  /** /proc/sys/kernel/random/boot_id when the lease was made. */
  boot: string | null;
  /** Creation time (ms since the epoch). */
  created: number;
  /** Object ids the lease keeps. */
  objects: string[];
  /** Manifest ids the lease keeps. */
  manifests: string[];
}

/** What is known of a process now, for {@link leaseVerdict}. */
export interface ProcProbe {
  /** The current boot id, or null when unknown. */
  boot: string | null;
  /** Start time of `pid` now: a number, "gone" when no such process, null when unknown. */
  start(pid: number): number | "gone" | null;
}

/**
 * Decides whether a lease still protects anything. Dangerous decision (an expired lease's objects
 * may be deleted), so only positive evidence expires a lease: the machine rebooted, the pid is
 * gone, or the pid now belongs to a process that started at another time. Anything unknown keeps
 * the lease live.
 */
export function leaseVerdict(
  lease: Pick<LeaseRecord, "pid" | "start" | "boot">,
  probe: ProcProbe,
): { live: boolean; why: string } {
  if (lease.boot !== null && probe.boot !== null && lease.boot !== probe.boot) {
    return { live: false, why: "made before the last reboot" };
  }
  if (!Number.isInteger(lease.pid) || lease.pid <= 0) {
    return { live: false, why: `invalid pid ${lease.pid}` };
  }
  const now = probe.start(lease.pid);
  if (now === "gone") return { live: false, why: `process ${lease.pid} is gone` };
  if (now !== null && lease.start !== null && now !== lease.start) {
    return { live: false, why: `pid ${lease.pid} now belongs to another process` };
  }
  return { live: true, why: `held by process ${lease.pid}` };
}

/**
 * The start time of `pid` in clock ticks since boot, "gone" when it does not exist, null when it
 * cannot be told. A zombie is not gone: its pid is still taken, and the lease stays live.
 */
export function procStart(pid: number): number | "gone" | null {
  const s = readStat(pid);
  return s === null || s === "gone" ? s : s.startTime;
}

/** The probe of the running system. */
export function systemProbe(): ProcProbe {
  return { boot: bootId(), start: procStart };
}

/**
 * Parses a lease file's text (untrusted: anything may be there); null when it is not a lease of
 * this format.
 */
export function parseLease(text: string): LeaseRecord | null {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof j !== "object" || j === null) return null;
  const o = j as Record<string, unknown>;
  const ids = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string" && isId(x));
  if (
    o.version !== LEASE_VERSION || typeof o.id !== "string" || !/^[0-9a-z-]{1,80}$/.test(o.id) ||
    typeof o.why !== "string" || typeof o.pid !== "number" ||
    !(o.start === null || typeof o.start === "number") ||
    !(o.boot === null || typeof o.boot === "string") || typeof o.created !== "number" ||
    !ids(o.objects) || !ids(o.manifests)
  ) return null;
  return o as unknown as LeaseRecord;
}

/** One lease file found in a store. */
export interface FoundLease {
  path: string;
  /** The parsed record, or null when the file is not a readable lease. */
  lease: LeaseRecord | null;
}

/** Lists the lease files of the store at `root`. */
export function listLeases(root: string): FoundLease[] {
  const out: FoundLease[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(`${root}/leases`)];
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.endsWith(".json")) continue;
    const path = `${root}/leases/${e.name}`;
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch {
      continue; // released meanwhile
    }
    out.push({ path, lease: parseLease(text) });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

let selfStart: number | null | undefined;
let selfBoot: string | null | undefined;

/** Writes a lease file atomically (provided by the store). */
export type LeaseWriter = (path: string, bytes: Uint8Array) => void;

/**
 * An open lease (see the module doc). Made by `Store.lease`; the store records what the writer
 * stores into it. Release it (or let `using` dispose it) once the writer's ref is set.
 */
export class Lease implements Disposable {
  /** Random id, also the file name. */
  readonly id: string;
  /** What the writer is doing. */
  readonly why: string;
  /** Path of the lease file. */
  readonly path: string;
  readonly #created = Date.now();
  readonly #objects = new Set<string>();
  readonly #manifests = new Set<string>();
  #dirty = true;
  #released = false;
  readonly #write: LeaseWriter;
  readonly #onRelease: (l: Lease) => void;

  /** Used by the store; writers call `store.lease(why)`. */
  constructor(dir: string, why: string, write: LeaseWriter, onRelease: (l: Lease) => void) {
    const rnd = crypto.getRandomValues(new Uint8Array(10));
    this.id = `${Date.now().toString(36)}-${[...rnd].map((b) => b.toString(36)).join("")}`;
    this.why = why;
    this.path = `${dir}/${this.id}.json`;
    this.#write = write;
    this.#onRelease = onRelease;
    selfStart ??= (() => {
      const s = procStart(Deno.pid);
      return typeof s === "number" ? s : null;
    })();
    this.flush();
  }

  /** True once released. */
  get released(): boolean {
    return this.#released;
  }

  /** Number of ids the lease keeps. */
  get size(): number {
    return this.#objects.size + this.#manifests.size;
  }

  /**
   * Keeps `id` (and everything it reaches) until release. The store calls this for every id
   * stored or found while the lease is open; a writer that references an id it got elsewhere
   * (a remote cache) calls it too.
   */
  keep(id: string, kind: "objects" | "manifests" = "objects"): void {
    if (this.#released) return;
    const set = kind === "objects" ? this.#objects : this.#manifests;
    if (set.has(id)) return;
    set.add(id);
    this.#dirty = true;
  }

  /** Writes the lease file if anything changed since it was last written. */
  flush(): void {
    if (this.#released || !this.#dirty) return;
    const rec: LeaseRecord = {
      version: LEASE_VERSION,
      id: this.id,
      why: this.why,
      pid: Deno.pid,
      start: selfStart ?? null,
      boot: selfBoot ??= bootId(),
      created: this.#created,
      objects: [...this.#objects],
      manifests: [...this.#manifests],
    };
    this.#write(this.path, new TextEncoder().encode(JSON.stringify(rec)));
    this.#dirty = false;
  }

  /** Removes the lease file: what it kept is now up to refs alone. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      Deno.removeSync(this.path);
    } catch { /* already gone (expired by a gc) */ }
    this.#onRelease(this);
  }

  /** Same as {@link release}. */
  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * `hd cas verify --repair`: finds every corrupt or missing object (verify.ts) and asks sources
 * that may still hold its bytes to supply them. Nothing offered is trusted: an offer is hashed
 * and written only when it hashes to a wanted id (Store.repair), so a wrong source costs time,
 * never data.
 *
 * Sources: project directories (a file that still has the content: its chunks and its manifest
 * are recomputed exactly as the ingest cuts them; paths the stat caches name for a wanted id are
 * read first), and whatever a higher layer adds (an image's registry: oci/).
 *
 * @example
 * ```ts
 * import { projectSource, repairStore } from "./repair.ts";
 * import type { ReferenceFn } from "./gc.ts";
 * import type { Store } from "./store.ts";
 * declare const store: Store;
 * declare const references: ReferenceFn;
 * const r = await repairStore(store, references, [projectSource(["/src/app"])]);
 * ```
 * @module
 */
import { chunkBoundaries } from "./chunk.ts";
import type { ReferenceFn } from "./gc.ts";
import { blake3Hex } from "./hash.ts";
import { objectKey as keyOf } from "./key.ts";
import { encodeManifest } from "./manifest.ts";
import type { ObjectKind, Store } from "./store.ts";
import { type VerifyReport, verifyStore } from "./verify.ts";

/** Offers bytes that may be a wanted object (kind, decoded bytes, where they came from). */
export type Offer = (kind: ObjectKind, bytes: Uint8Array, from: string) => void;

/**
 * Says why a source that should hold a wanted key could not supply it (the registry is down, the
 * image record is damaged); shown with the key when it stays unrepaired.
 */
export type Explain = (key: string, why: string) => void;

/** Somewhere the bytes of lost objects may still be. */
export interface RepairSource {
  /** Shown in the report. */
  name: string;
  /**
   * Offers what it can for `wanted` (object keys, src/cas/key.ts); stop when empty.
   * `explain` records why a key it knows of could not be supplied.
   */
  supply(wanted: ReadonlySet<string>, offer: Offer, explain: Explain): void | Promise<void>;
}

/** What {@link repairStore} did. */
export interface RepairReport {
  /** Damage found before repairing. */
  before: VerifyReport;
  repaired: { id: string; kind: ObjectKind; from: string }[];
  /** What is still damaged afterwards, with why. */
  unrepaired: { id: string; kind: ObjectKind | "pack"; why: string }[];
  /** The store after repair. */
  after: VerifyReport;
}

/**
 * Verifies the store, asks `sources` (in order) for every corrupt or missing id, writes what
 * hashes right, then verifies again. Holds the exclusive lock while it writes.
 */
export async function repairStore(
  store: Store,
  references: ReferenceFn,
  sources: RepairSource[],
  onProgress?: (checked: number) => void,
): Promise<RepairReport> {
  const before = verifyStore(store, references, onProgress);
  const wanted = new Set<string>();
  for (const c of before.corrupt) if (c.id !== "(pack index)") wanted.add(keyOf(c.kind, c.id));
  const mm = new Set(before.missingManifests);
  for (const id of before.missing) wanted.add(keyOf(mm.has(id) ? "manifests" : "objects", id));
  const repaired: RepairReport["repaired"] = [];
  const notes = new Map<string, string[]>();
  const explain: Explain = (key, why) => {
    const l = notes.get(key);
    if (!l) notes.set(key, [why]);
    else if (!l.includes(why)) l.push(why);
  };
  if (wanted.size) {
    await store.withLock("exclusive", async () => {
      const offer: Offer = (kind, bytes, from) => {
        if (wanted.size === 0) return;
        const id = blake3Hex(bytes);
        const k = keyOf(kind, id);
        if (!wanted.has(k)) return;
        store.repair(kind, id, bytes);
        wanted.delete(k);
        repaired.push({ id, kind, from });
      };
      for (const s of sources) {
        if (wanted.size === 0) break;
        await s.supply(wanted, offer, explain);
      }
    });
  }
  const after = verifyStore(store, references);
  const why = new Map<string, string>();
  for (const c of before.corrupt) why.set(c.id, `corrupt at ${c.path} (${c.why})`);
  const unrepaired: RepairReport["unrepaired"] = [];
  const amm = new Set(after.missingManifests);
  const reason = (kind: ObjectKind, id: string) =>
    notes.get(keyOf(kind, id))?.join("; ") ?? "no source holds its bytes";
  for (const c of after.corrupt) {
    const pack = c.id === "(pack index)";
    unrepaired.push({
      id: pack ? c.path : c.id,
      kind: pack ? "pack" : c.kind,
      why: pack
        ? `pack index unreadable (${c.why}): its objects read as missing`
        : `corrupt at ${c.path} (${c.why}); ${reason(c.kind, c.id)}`,
    });
  }
  for (const id of after.missing) {
    const kind = amm.has(id) ? "manifests" : "objects";
    unrepaired.push({ id, kind, why: `${why.get(id) ?? "missing"}; ${reason(kind, id)}` });
  }
  return { before, repaired, unrepaired, after };
}

function* walkFiles(dir: string, skip: Set<string>): Generator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return;
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`;
    if (skip.has(p)) continue;
    if (e.isDirectory) yield* walkFiles(p, skip);
    else if (e.isFile) yield p;
  }
}

/** Largest file a project source reads whole (bigger ones are skipped). */
export const REPAIR_MAX_FILE = 1 << 30;

/**
 * Offers the chunks and the manifest of files under `dirs`, cut exactly as the ingest cuts them.
 * `hints` (wanted id → paths, from stat caches) are read first; then every file under `dirs`.
 * `skip` excludes paths (the store itself when it lives inside a project).
 */
export function projectSource(
  dirs: string[],
  hints: Map<string, string[]> = new Map(),
  skip: string[] = [],
): RepairSource {
  return {
    name: "project files",
    supply(wanted, offer) {
      const seen = new Set<string>();
      const readOne = (path: string) => {
        if (seen.has(path) || wanted.size === 0) return;
        seen.add(path);
        let bytes: Uint8Array;
        try {
          const st = Deno.lstatSync(path);
          if (!st.isFile || st.size > REPAIR_MAX_FILE) return;
          bytes = Deno.readFileSync(path);
        } catch {
          return;
        }
        const ids: string[] = [];
        for (const [a, b] of chunkBoundaries(bytes)) {
          const c = bytes.subarray(a, b);
          const id = blake3Hex(c);
          ids.push(id);
          if (wanted.has(id)) offer("objects", c.slice(), path);
        }
        if (ids.length > 1) {
          offer("manifests", encodeManifest({ size: bytes.length, chunks: ids }), path);
        }
      };
      for (const key of [...wanted]) for (const p of hints.get(key) ?? []) readOne(p);
      const skipSet = new Set(skip);
      for (const d of dirs) {
        for (const p of walkFiles(d, skipSet)) {
          if (wanted.size === 0) return;
          readOne(p);
        }
      }
    },
  };
}

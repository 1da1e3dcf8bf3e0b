/**
 * The sweep of a gc: removes dead objects and manifests from loose files and packs, and reclaims
 * duplicates. Concurrent adds of the same files each write their own pack, so one id may be
 * stored in several packs, or loose and packed; the sweep keeps one copy that verifies (the
 * biggest pack's, else the loose file) and drops the others. A pack holding anything to drop is
 * rewritten without it, or deleted when nothing of it is left. Apart from gc.ts (which decides
 * what is dead) because it works on the store's files, and apart from the store because it is
 * the one place that deletes them.
 *
 * @example
 * ```ts
 * import { sweepStore } from "./sweep.ts";
 * import { LooseObjects } from "./loose.ts";
 * import { Packs } from "./packs.ts";
 * import { objectKey } from "./key.ts";
 * const root = Deno.makeTempDirSync();
 * const dead = new Set([objectKey("objects", "ab".repeat(32))]);
 * const r = sweepStore(new LooseObjects(root), new Packs(root), dead, { dryRun: true });
 * console.log(r.freed, r.duplicates); // 0 0: nothing there
 * ```
 * @module
 */
import { keyId, keyKind, type ObjectKey, objectKey, type ObjectKind } from "./key.ts";
import type { LooseObjects } from "./loose.ts";
import type { PackEntry } from "./pack.ts";
import type { Packs } from "./packs.ts";

/** What {@link sweepStore} did (or, dry, would do). */
export interface SweepResult {
  /** Bytes freed on disk. */
  freed: number;
  /** Copies dropped because the same id is stored elsewhere. */
  duplicates: number;
  /** Packs deleted (nothing of them left). */
  packsRemoved: number;
  /** Packs rewritten without what they lost. */
  packsRewritten: number;
}

/**
 * Removes `dead` and the duplicate copies (gc only, under the exclusive lock). With `dryRun`,
 * only counts. `beforeChange` runs once, before the first file is written or deleted. Leaves
 * `packs`' index stale when anything changed: the caller forgets what it knew.
 */
export function sweepStore(
  loose: LooseObjects,
  packs: Packs,
  dead: ReadonlySet<ObjectKey>,
  opts: { dryRun?: boolean; beforeChange?: () => void } = {},
): SweepResult {
  let changed = false;
  const change = () => {
    if (!changed) (changed = true, opts.beforeChange?.());
  };
  const r: SweepResult = { freed: 0, duplicates: 0, packsRemoved: 0, packsRewritten: 0 };
  const all = packs.entries();
  // The biggest packs own their ids; smaller packs holding the same ids are the duplicates.
  all.sort((a, b) => b.entries.length - a.entries.length || (a.pack < b.pack ? -1 : 1));
  const copies = new Map<ObjectKey, { pack: string; e: PackEntry }[]>();
  for (const { pack, entries } of all) {
    for (const e of entries) {
      const k = objectKey(e.kind, e.id);
      if (dead.has(k)) continue;
      const c = copies.get(k);
      if (c) c.push({ pack, e });
      else copies.set(k, [{ pack, e }]);
    }
  }
  const looseFiles: { kind: ObjectKind; id: string; key: ObjectKey }[] = [];
  for (const kind of ["objects", "manifests"] as const) {
    for (const id of loose.list(kind)) looseFiles.push({ kind, id, key: objectKey(kind, id) });
  }
  // owner: the pack whose copy of a duplicated id is kept ("" = the loose copy).
  const owner = new Map<ObjectKey, string>();
  const looseKeys = new Set(looseFiles.map((l) => l.key));
  for (const [k, c] of copies) {
    if (c.length === 1 && !looseKeys.has(k)) continue;
    const good = c.find((x) => packs.verifies(x.e, x.pack));
    if (good) owner.set(k, good.pack);
    else if (looseKeys.has(k) && loose.verifies(keyKind(k), keyId(k))) owner.set(k, "");
    else owner.set(k, "*"); // no copy verifies: touch none of them
  }
  for (const l of looseFiles) {
    const o = owner.get(l.key);
    const drop = dead.has(l.key) || (o !== undefined && o !== "" && o !== "*");
    if (!drop) continue;
    if (!dead.has(l.key)) r.duplicates++;
    const p = loose.path(l.kind, l.id);
    try {
      r.freed += Deno.lstatSync(p).size;
      if (!opts.dryRun) (change(), Deno.removeSync(p));
    } catch { /* gone */ }
  }
  for (const { pack, entries } of all) {
    const keep = (e: PackEntry) => {
      const k = objectKey(e.kind, e.id);
      if (dead.has(k)) return false;
      const o = owner.get(k);
      return o === undefined || o === "*" || o === pack;
    };
    const live = entries.filter(keep);
    if (live.length === entries.length) continue;
    for (const e of entries) if (!dead.has(objectKey(e.kind, e.id)) && !keep(e)) r.duplicates++;
    const size = packs.fileSize(pack);
    if (live.length > 0) {
      r.packsRewritten++;
      if (opts.dryRun) {
        r.freed += size - live.reduce((n, e) => n + e.length, 0);
        continue;
      }
      change();
      r.freed -= packs.rewrite(pack, live);
    } else r.packsRemoved++;
    r.freed += size;
    if (opts.dryRun) continue;
    change();
    packs.remove(pack);
  }
  return r;
}

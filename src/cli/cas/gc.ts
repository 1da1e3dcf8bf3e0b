/**
 * `hd cas gc [--dry-run]`: removes everything not reachable from a ref.
 * @module
 */
import { collectGarbage } from "../../cas/gc.ts";
import { dagReferences } from "../../dag/refs.ts";
import { sweepLayerDirs } from "../../sandbox/layers.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";

/** `hd cas gc`. */
export const casGc: Command = {
  name: "cas gc",
  summary: "delete objects no ref reaches (--dry-run to only report)",
  usage: "hd cas gc [--dry-run]",
  options: { "dry-run": { type: "boolean", help: "report what would be removed; remove nothing" } },
  async run(ctx) {
    const store = ctx.store();
    let layers = { removed: 0, kept: 0, inUse: 0 };
    const r = await collectGarbage(store, {
      dryRun: !!ctx.values["dry-run"],
      references: dagReferences,
      sweepDerived: (isLive, dry) => (layers = sweepLayerDirs(store, isLive, dry)),
    });
    ctx.out.result(
      { ...r, layerDirs: layers },
      () =>
        `${
          r.dryRun ? "would remove" : "removed"
        } ${r.removedObjects} objects and ${r.removedManifests} manifests (${
          formatBytes(r.removedBytes)
        }); kept ${r.reachableObjects} objects reachable from ${r.roots} refs` +
        (layers.removed || layers.inUse
          ? `\n${r.dryRun ? "would remove" : "removed"} ${layers.removed} materialized layer dirs` +
            (layers.inUse ? ` (${layers.inUse} unreferenced but still mounted: kept)` : "")
          : "") +
        (r.duplicates.copies
          ? `\n${
            r.dryRun ? "would drop" : "dropped"
          } ${r.duplicates.copies} duplicate copies (${r.duplicates.packsRemoved} packs removed, ${r.duplicates.packsRewritten} rewritten)`
          : "") +
        r.leases.map((l) =>
          `\nlease ${l.id} (${l.why}, process ${l.pid}) keeps what it names: ${l.ids} ids`
        ).join("") +
        (r.keptByLeases ? `\nkept ${r.keptByLeases} ids that only open leases reach` : "") +
        r.expiredLeases.map((e) =>
          `\n${r.dryRun ? "would expire" : "expired"} lease ${e.path}: ${e.why}`
        ).join("") +
        (r.missing.length
          ? `\nwarning: ${r.missing.length} referenced ids are missing (run hd cas verify)`
          : ""),
    );
    return 0;
  },
};

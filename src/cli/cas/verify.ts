/**
 * `hd cas verify [--repair [--from DIR…] [--offline]]`: re-reads everything; exit 1 when anything
 * is missing or corrupt. With --repair, re-supplies damaged objects from project files that still
 * hold their content (the directories the stat caches of this store describe, and each --from
 * DIR), then from where pulled images came from (their registries, OCI layouts, archives: the
 * layers that hold the damage are fetched and unpacked again), then says what it repaired, from
 * where, and what it could not and why (exit 1 if anything remains).
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { isId } from "../../cas/hash.ts";
import { projectSource, repairStore } from "../../cas/repair.ts";
import type { Store } from "../../cas/store.ts";
import { verifyStore } from "../../cas/verify.ts";
import { dagReferences } from "../../dag/refs.ts";
import type { Command } from "../command.ts";
import { imageSource } from "../../oci/repair.ts";
import { formatBytes } from "../output.ts";

/**
 * Project directories and id → paths hints from stat cache files (`$HD_HOME/cache/stat/*.json`,
 * `<dir>/.hd/statcache.json`). Only hints: every byte offered is hashed before it is used, so
 * these files need no authentication here.
 */
export function statCacheHints(
  files: string[],
): { dirs: string[]; hints: Map<string, string[]> } {
  const dirs: string[] = [];
  const hints = new Map<string, string[]>();
  for (const f of files) {
    let j: { dir?: unknown; rows?: unknown };
    try {
      j = JSON.parse(Deno.readTextFileSync(f));
    } catch {
      continue;
    }
    if (typeof j?.dir !== "string" || typeof j.rows !== "object" || j.rows === null) continue;
    dirs.push(j.dir);
    for (const [rel, row] of Object.entries(j.rows as Record<string, unknown>)) {
      if (!Array.isArray(row)) continue;
      const c = row[5];
      const ids = typeof c === "string" ? [`m${c}`] : Array.isArray(c) ? c : [];
      for (const id of ids) {
        if (typeof id !== "string" || !isId(id.startsWith("m") ? id.slice(1) : id)) continue;
        const l = hints.get(id);
        if (l) l.push(`${j.dir}/${rel}`);
        else hints.set(id, [`${j.dir}/${rel}`]);
      }
    }
  }
  return { dirs, hints };
}

function cacheFiles(store: Store, from: string[]): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(`${store.root}/cache/stat`)) {
      if (e.isFile && e.name.endsWith(".json")) out.push(`${store.root}/cache/stat/${e.name}`);
    }
  } catch { /* none */ }
  for (const d of from) out.push(`${d}/.hd/statcache.json`);
  return out;
}

/** `hd cas verify`. */
export const casVerify: Command = {
  name: "cas verify",
  summary: "re-read and re-hash every object; report (--repair: re-supply) missing or corrupt ones",
  usage: "hd cas verify [--repair [--from DIR…] [--offline] [--insecure-registry HOST…]]\n\n" +
    "--repair looks for the bytes of what is damaged in project files (the projects this store\n" +
    "has seen, and each --from DIR), then re-fetches the layers of pulled images that hold it\n" +
    "from where they were pulled (registry, OCI layout, archive). Only bytes that hash to a\n" +
    "damaged id are written.",
  options: {
    repair: {
      type: "boolean",
      help: "re-supply damaged objects from project files and the sources of pulled images",
    },
    from: {
      type: "string",
      multiple: true,
      help: "with --repair: also look in DIR (a project or a copy of the files)",
    },
    offline: {
      type: "boolean",
      help: "with --repair: fetch nothing from registries (only say which image holds what)",
    },
    "insecure-registry": {
      type: "string",
      multiple: true,
      help: "with --repair: reach HOST over plain http (loopback hosts always are)",
    },
  },
  async run(ctx) {
    const store = ctx.store(false);
    const from = (ctx.values.from as string[] | undefined) ?? [];
    const insecure = (ctx.values["insecure-registry"] as string[] | undefined) ?? [];
    if ((from.length || ctx.values.offline || insecure.length) && !ctx.values.repair) {
      const opt = from.length ? "--from" : ctx.values.offline ? "--offline" : "--insecure-registry";
      throw new HdError(
        `Cannot use ${opt} without --repair`,
        `hd cas verify --repair ${opt}${opt === "--offline" ? "" : " …"}`,
        2,
      );
    }
    const progress = (n: number) => ctx.out.progress(`verifying: ${n} checked`);
    if (ctx.values.repair) {
      const abs = from.map((d) => {
        try {
          return Deno.realPathSync(d);
        } catch (e) {
          throw new HdError(`Cannot repair from ${d}: ${(e as Error).message}`, "check the path");
        }
      });
      const { dirs, hints } = statCacheHints(cacheFiles(store, abs));
      const source = projectSource([...new Set([...abs, ...dirs])], hints, [store.root]);
      const images = imageSource(store, {
        insecure,
        offline: ctx.values.offline === true,
        onFetch: (what) => ctx.out.progress(what),
      });
      const r = await repairStore(store, dagReferences, [source, images], progress);
      const ok = r.unrepaired.length === 0;
      ctx.out.result(
        { ok, repaired: r.repaired, unrepaired: r.unrepaired, before: r.before, after: r.after },
        () =>
          [
            ...r.repaired.map((x) => `repaired ${x.kind.slice(0, -1)} ${x.id} from ${x.from}`),
            ...r.unrepaired.map((x) =>
              `not repaired ${x.kind === "pack" ? "pack" : x.kind.slice(0, -1)} ${x.id}: ${x.why}`
            ),
            `${ok ? "ok" : "damaged"}: ${
              r.before.corrupt.length + r.before.missing.length
            } damaged before, ${r.repaired.length} repaired, ${r.unrepaired.length} remain`,
          ].join("\n"),
      );
      return ok ? 0 : 1;
    }
    const r = verifyStore(store, dagReferences, progress);
    const ok = r.corrupt.length === 0 && r.missing.length === 0;
    ctx.out.result({ ok, ...r }, () =>
      [
        ...r.corrupt.map((c) => `corrupt ${c.id} at ${c.path}: ${c.why}`),
        ...r.missing.map((m) => `missing ${m}`),
        `${
          ok ? "ok" : "damaged"
        }: checked ${r.checkedObjects} objects, ${r.checkedManifests} manifests, ${
          formatBytes(r.checkedBytes)
        }; ${r.corrupt.length} corrupt, ${r.missing.length} missing` +
        (ok
          ? ""
          : "\nhint: hd cas verify --repair re-supplies what project files and image registries " +
            "still hold"),
      ].join("\n"));
    return ok ? 0 : 1;
  },
};

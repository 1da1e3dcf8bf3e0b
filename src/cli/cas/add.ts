/**
 * `hd cas add PATH…`: ingests trees (or files) into the store and prints the root id. With several
 * paths, the root is a directory holding each under its base name.
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { blake3Hex } from "../../cas/hash.ts";
import { putNode } from "../../dag/dag.ts";
import type { FileNode } from "../../dag/node.ts";
import { MemDir, Tree } from "../../dag/tree.ts";
import { ingestFile, ingestTreeParallel } from "../../scan/ingest.ts";
import { StatCache } from "../../scan/statcache.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";

/** `hd cas add`. */
export const casAdd: Command = {
  name: "cas add",
  summary: "store files or directories; print the root hash",
  usage: "hd cas add PATH… [--ref NAME] [--no-cache]\n\n" +
    "Each added directory's latest root is kept as a gc root (refs/paths/…) until that directory\n" +
    "is added again; --ref NAME records the root under refs/NAME instead.",
  options: {
    ref: { type: "string", help: "record the root under refs/NAME (a gc root)" },
    "no-cache": { type: "boolean", help: "re-read every file (ignore the stat cache)" },
  },
  async run(ctx) {
    const paths = ctx.positionals;
    if (paths.length === 0) {
      throw new HdError("Cannot add: no path given", "usage: hd cas add PATH…", 2);
    }
    const store = ctx.store();
    const t0 = performance.now();
    // No lease: the shared lock is held from the first write to the refs that reach what was
    // written (set below, inside the lock), so no gc can run in between. A lease would record
    // every id of the add in memory (~10 MB for 100k files) and write them all out at unlock.
    return await store.withLock("shared", async () => {
      const totals = { files: 0, dirs: 0, bytes: 0, bytesRead: 0, cacheHits: 0 };
      const skipped: { path: string; why: string }[] = [];
      const results: { path: string; root: string; file?: FileNode }[] = [];
      for (const p of paths) {
        let st: Deno.FileInfo;
        try {
          st = Deno.lstatSync(p);
        } catch (e) {
          throw new HdError(`Cannot add ${p}: ${(e as Error).message}`, "check the path");
        }
        if (st.isDirectory) {
          const abs = Deno.realPathSync(p);
          const cachePath = `${store.root}/cache/stat/${
            blake3Hex(new TextEncoder().encode(abs)).slice(0, 24)
          }.json`;
          const cache = ctx.values["no-cache"]
            ? StatCache.empty(store)
            : StatCache.load(cachePath, store);
          cache.dir = abs; // for `hd cas verify --repair`
          const r = await ingestTreeParallel(store, p, {
            cache,
            onProgress: (pr) =>
              ctx.out.progress(
                `adding ${p}: ${pr.files} files, ${formatBytes(pr.bytes)} (${
                  formatBytes(pr.bytesRead)
                } read)`,
              ),
          });
          cache.save(cachePath);
          results.push({ path: p, root: r.root });
          // The latest tree of each added directory stays a gc root until that path is re-added.
          if (ctx.values.ref === undefined) {
            store.setRef(`paths/${cachePath.split("/").pop()!.slice(0, 24)}`, r.root);
          }
          totals.files += r.files;
          totals.dirs += r.dirs;
          totals.bytes += r.bytes;
          totals.bytesRead += r.bytesRead;
          totals.cacheHits += r.cacheHits;
          skipped.push(...r.skipped);
        } else {
          const f = ingestFile(store, p, st);
          results.push({ path: p, root: putNode(store, f), file: f });
          totals.files++;
          totals.bytes += f.size;
          totals.bytesRead += f.size;
        }
      }
      let root = results[0].root;
      if (results.length > 1) {
        const t = new Tree(new MemDir());
        for (const [i, r] of results.entries()) {
          const base = paths[i].replace(/\/+$/, "").split("/").pop() || "root";
          if (r.file) t.setFile(base, r.file);
          else t.setDir(base, Tree.load(store, r.root).root);
        }
        root = t.commit(store);
      }
      if (typeof ctx.values.ref === "string") store.setRef(ctx.values.ref, root);
      const ms = performance.now() - t0;
      ctx.out.result(
        {
          root,
          paths: results,
          ...totals,
          skipped,
          ms: Math.round(ms),
          ref: ctx.values.ref ?? null,
        },
        () => {
          const lines = [root];
          if (ctx.out.interactive) {
            lines.push(
              ctx.out.paint(
                `${totals.files} files, ${formatBytes(totals.bytes)}, ${
                  formatBytes(totals.bytesRead)
                } read, ${Math.round(ms)} ms`,
                "dim",
              ),
            );
          }
          for (const s of skipped) ctx.out.note(`skipped ${s.path}: ${s.why}`);
          return lines.join("\n");
        },
      );
      return 0;
    });
  },
};

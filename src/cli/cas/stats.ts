/**
 * `hd cas stats`: counts and sizes of what the store holds.
 * @module
 */
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";

/** `hd cas stats`. */
export const casStats: Command = {
  name: "cas stats",
  summary: "show how many objects, manifests and refs the store holds",
  usage: "hd cas stats",
  options: {},
  run(ctx) {
    const store = ctx.store();
    const count = (kind: "objects" | "manifests") => {
      let n = 0;
      let bytes = 0;
      for (const id of store.list(kind)) {
        n++;
        try {
          bytes += Deno.lstatSync(store.path(kind, id)).size;
        } catch { /* removed meanwhile */ }
      }
      return { count: n, bytes };
    };
    const objects = count("objects");
    const manifests = count("manifests");
    const refs = store.listRefs();
    const data = { store: store.root, objects, manifests, refs: refs.length, format: "hd-store 1" };
    ctx.out.result(data, () =>
      [
        `store      ${store.root}`,
        `objects    ${objects.count} (${formatBytes(objects.bytes)} on disk)`,
        `manifests  ${manifests.count} (${formatBytes(manifests.bytes)})`,
        `refs       ${refs.length}`,
      ].join("\n"));
    return 0;
  },
};

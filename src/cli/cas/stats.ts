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
    let objects = 0;
    let manifests = 0;
    for (const _ of store.list("objects")) objects++;
    for (const _ of store.list("manifests")) manifests++;
    const usage = store.usage();
    const refs = store.listRefs();
    const data = {
      store: store.root,
      objects,
      manifests,
      refs: refs.length,
      ...usage,
      format: "hd-store 1",
    };
    ctx.out.result(data, () =>
      [
        `store      ${store.root}`,
        `objects    ${objects} (${usage.looseObjects} loose, the rest in ${usage.packs} packs)`,
        `manifests  ${manifests}`,
        `on disk    ${formatBytes(usage.bytes)}`,
        `refs       ${refs.length}`,
      ].join("\n"));
    return 0;
  },
};

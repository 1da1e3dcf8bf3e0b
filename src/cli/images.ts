/**
 * `hd images`: lists the pulled images (name, digest, rootfs hash, size, when).
 * @module
 */
import { listImages } from "../oci/image.ts";
import type { Command } from "./command.ts";
import { formatBytes } from "./output.ts";

/** `hd images`. */
export const images: Command = {
  name: "images",
  summary: "list pulled images",
  usage: "hd images",
  options: {},
  run(ctx) {
    const store = ctx.store(false);
    const list = listImages(store);
    ctx.out.result(
      list.map((i) => ({
        name: i.name,
        source: i.source,
        digest: i.digest,
        manifestDigest: i.manifestDigest,
        platform: i.platform,
        rootfs: i.rootfs,
        layers: i.layers.length,
        size: i.size,
        pulledAt: i.pulledAt,
      })),
      () => {
        if (list.length === 0) return "no images (hd pull REF)";
        const rows = [["NAME", "DIGEST", "ROOTFS", "SIZE", "PULLED"]];
        for (const i of list) {
          rows.push([
            i.name,
            i.digest.slice(0, 19),
            i.rootfs.slice(0, 12),
            formatBytes(i.size),
            i.pulledAt.replace("T", " ").slice(0, 19),
          ]);
        }
        const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
        return rows.map((r) => r.map((x, c) => x.padEnd(w[c])).join("  ").trimEnd()).join("\n");
      },
    );
    return 0;
  },
};

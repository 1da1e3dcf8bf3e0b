/**
 * `hd images rm REF…`: forgets pulled images. The image record goes, and so do the layer refs no
 * remaining image uses; the bytes are freed by the next `hd cas gc` (which also removes their
 * materialized layer directories), unless a build or another image still reaches them.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { imageName, layerRef, listImages, loadImage } from "../oci/image.ts";
import type { Command } from "./command.ts";

/** `hd images rm`. */
export const imagesRm: Command = {
  name: "images rm",
  summary: "forget pulled images (then `hd cas gc` frees what nothing else uses)",
  usage: "hd images rm REF…",
  options: {},
  async run(ctx) {
    if (ctx.positionals.length === 0) {
      throw new HdError("Cannot remove images: no image named", "usage: hd images rm REF…", 2);
    }
    const store = ctx.store(false);
    return await store.withLock("shared", () => {
      const removed: { name: string; layerRefs: string[] }[] = [];
      for (const ref of ctx.positionals) {
        const img = loadImage(store, ref);
        if (!img) {
          const names = listImages(store).map((i) => i.name);
          throw new HdError(
            `Cannot remove image ${ref}: not pulled (no record images/${imageName(ref)})`,
            names.length ? `pulled images: ${names.join(", ")}` : "no image is pulled",
          );
        }
        store.deleteRef(`images/${img.name}`);
        const stillUsed = new Set(listImages(store).flatMap((i) => i.layers.map((l) => l.diffId)));
        const layerRefs = img.layers.filter((l) => !stillUsed.has(l.diffId)).map((l) =>
          layerRef(l.diffId)
        );
        for (const r of layerRefs) store.deleteRef(r);
        removed.push({ name: img.name, layerRefs });
      }
      ctx.out.result(
        { removed },
        () =>
          removed.map((r) =>
            `removed ${r.name} (${r.layerRefs.length} layer${
              r.layerRefs.length === 1 ? "" : "s"
            } no other image uses); \`hd cas gc\` frees the space`
          ).join("\n"),
      );
      return 0;
    });
  },
};

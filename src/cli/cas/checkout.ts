/**
 * `hd cas checkout HASH DIR`: materializes a stored tree (or file) into a new directory.
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import { checkoutTree } from "../../dag/checkout.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";
import { resolveId } from "./resolve.ts";

/** `hd cas checkout`. */
export const casCheckout: Command = {
  name: "cas checkout",
  summary: "write a stored tree into a new directory",
  usage: "hd cas checkout HASH|REF DIR",
  options: {},
  run(ctx) {
    const [hash, dir, ...extra] = ctx.positionals;
    if (!hash || !dir || extra.length) {
      throw new HdError(
        "Cannot check out: expected HASH and DIR",
        "usage: hd cas checkout HASH DIR",
        2,
      );
    }
    const store = ctx.store(false);
    const id = resolveId(store, hash);
    const t0 = performance.now();
    const s = checkoutTree(store, id, dir);
    const ms = Math.round(performance.now() - t0);
    ctx.out.result({ id, dir, ...s, ms }, () => {
      for (const k of s.skipped) ctx.out.note(`skipped ${k.path}: ${k.why}`);
      return `${dir}: ${s.files} files, ${s.dirs} dirs, ${s.symlinks} symlinks, ${
        formatBytes(s.bytes)
      }`;
    });
    return 0;
  },
};

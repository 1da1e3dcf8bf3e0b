/**
 * `hd snapshot DIR [--ref NAME]`: stores the current view of a `hd mount --rw` directory (the
 * tree plus its write overlay) and prints the new root. It asks the mount's process over its
 * control socket, so only changed directories are re-encoded and unchanged files are not re-read.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { absMountDir, mountKey, requestMount } from "../mount/manager.ts";
import type { Command } from "./command.ts";

/** `hd snapshot`. */
export const snapshot: Command = {
  name: "snapshot",
  summary: "store the view of a writable mount; print its root",
  usage: "hd snapshot DIR [--ref NAME]\n\n" +
    "The root is kept as a gc root under refs/NAME (default refs/snapshots/<mount key>).",
  options: {
    ref: { type: "string", help: "record the root under refs/NAME" },
  },
  async run(ctx) {
    const [dir, ...extra] = ctx.positionals;
    if (!dir || extra.length) {
      throw new HdError("Cannot snapshot: expected one DIR", "usage: hd snapshot DIR", 2);
    }
    const store = ctx.store(false);
    const ref = (ctx.values.ref as string | undefined) ??
      `snapshots/${mountKey(absMountDir(dir))}`;
    store.getRef(ref); // validates the name before asking the mount
    const r = await requestMount(store, dir, { op: "snapshot", ref });
    ctx.out.result(r, () => String(r.root));
    return 0;
  },
};

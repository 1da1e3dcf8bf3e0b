/**
 * `hd unmount DIR`: stops serving DIR and detaches the mount (a stale one too).
 * `hd unmount --all`: every mount of the store, and the store's mount server.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { listMounts, unmountDir } from "../mount/manager.ts";
import { stopMountServer } from "../mount/host.ts";
import type { Command } from "./command.ts";

/** `hd unmount`. */
export const unmount: Command = {
  name: "unmount",
  summary: "unmount a directory mounted with `hd mount`",
  usage: "hd unmount DIR\n" +
    "hd unmount --all              every mount of this store, and its mount server",
  options: {
    all: { type: "boolean", help: "unmount every mount of this store and stop its mount server" },
  },
  async run(ctx) {
    const [dir, ...extra] = ctx.positionals;
    if (ctx.values.all) {
      if (dir) {
        throw new HdError(
          "Cannot unmount: --all takes no DIR",
          "usage: hd unmount DIR, or hd unmount --all",
          2,
        );
      }
      const store = ctx.store(false);
      const dirs: string[] = [];
      // the deepest first: a mount inside another is detached before the one it lies in
      for (const m of listMounts(store).reverse()) {
        if (m.state === "gone") continue;
        dirs.push((await unmountDir(store, m.dir)).dir);
      }
      // once its mounts are gone, the server (lingering or not) is told to exit
      const server = await stopMountServer(store.root);
      ctx.out.result(
        { unmounted: dirs, server },
        () =>
          [
            ...dirs.map((d) => `unmounted ${d}`),
            server ? `stopped the mount server (pid ${server})` : "",
          ].filter((l) => l).join("\n") || "nothing was mounted",
      );
      return 0;
    }
    if (!dir || extra.length) {
      throw new HdError(
        "Cannot unmount: expected one DIR",
        "usage: hd unmount DIR, or hd unmount --all",
        2,
      );
    }
    const r = await unmountDir(ctx.store(false), dir);
    ctx.out.result(r, () => `unmounted ${r.dir}`);
    return 0;
  },
};

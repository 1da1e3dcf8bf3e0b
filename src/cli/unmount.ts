/**
 * `hd unmount DIR`: stops the hd process serving DIR and detaches the mount (a stale one too).
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { unmountDir } from "../mount/manager.ts";
import type { Command } from "./command.ts";

/** `hd unmount`. */
export const unmount: Command = {
  name: "unmount",
  summary: "unmount a directory mounted with `hd mount`",
  usage: "hd unmount DIR",
  options: {},
  async run(ctx) {
    const [dir, ...extra] = ctx.positionals;
    if (!dir || extra.length) {
      throw new HdError("Cannot unmount: expected one DIR", "usage: hd unmount DIR", 2);
    }
    const r = await unmountDir(ctx.store(false), dir);
    ctx.out.result(r, () => `unmounted ${r.dir}`);
    return 0;
  },
};

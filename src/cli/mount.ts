/**
 * `hd mount HASH|REF DIR [--rw] [--foreground]`: projects a stored tree on DIR through FUSE,
 * lazily from the store. Without --foreground it starts a background hd process that serves the
 * mount and returns once the mount is live. `hd mount` alone lists this store's mounts.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { loadFuse } from "../mount/fuse.ts";
import {
  absMountDir,
  listMounts,
  mountKey,
  READY_LINE,
  recoverStale,
  serveMount,
  spawnMountServer,
} from "../mount/manager.ts";
import type { Command } from "./command.ts";
import { resolveId } from "./cas/resolve.ts";

/** `hd mount`. */
export const mount: Command = {
  name: "mount",
  summary: "project a stored tree on a directory (FUSE, lazy from the store)",
  usage: "hd mount HASH|REF DIR [--rw] [--foreground]\n" +
    "hd mount                      list the mounts of this store\n\n" +
    "Read-only unless --rw, which adds an in-memory write overlay (`hd snapshot DIR` stores it).\n" +
    "Without --foreground a background hd serves the mount; `hd unmount DIR` ends it.",
  options: {
    rw: { type: "boolean", help: "writable: keep writes in an in-memory overlay" },
    foreground: { type: "boolean", help: "serve in this process until unmounted or Ctrl-C" },
    log: { type: "string", help: "append the server's log to this file" },
    ready: {
      type: "boolean",
      hidden: true,
      help: "with --foreground: print a line on stdout once serving, then close stdout",
    },
    layers: {
      type: "boolean",
      help: "serve whiteouts as overlayfs reads them (a lazy environment's layers)",
    },
  },
  async run(ctx) {
    const [ref, dir, ...extra] = ctx.positionals;
    if (!ref) {
      const mounts = listMounts(ctx.store(false));
      ctx.out.result(
        { mounts },
        () =>
          mounts.length
            ? mounts.map((m) =>
              `${m.dir}  ${m.root.slice(0, 12)}  ${m.rw ? "rw" : "ro"}  pid ${m.pid}  ${m.state}`
            ).join("\n")
            : "no mounts",
      );
      return 0;
    }
    if (!dir || extra.length) {
      throw new HdError(
        "Cannot mount: expected HASH|REF and DIR",
        "usage: hd mount HASH|REF DIR [--rw]",
        2,
      );
    }
    const store = ctx.store(false);
    const id = resolveId(store, ref);
    const rw = !!ctx.values.rw;
    loadFuse().close();
    const abs = absMountDir(dir);
    if (ctx.values.foreground) {
      await serveMount(store, id, abs, {
        rw,
        layerView: !!ctx.values.layers,
        log: ctx.values.log as string | undefined,
        onReady: (rec) => {
          ctx.out.note(`mounted ${rec.root} on ${rec.dir} (pid ${rec.pid})`);
          if (ctx.values.ready) {
            // for spawnMountServer: the parent waits for this line; nothing else goes to stdout
            Deno.stdout.writeSync(new TextEncoder().encode(`${READY_LINE}\n`));
            Deno.stdout.close();
          }
        },
      });
      return 0;
    }
    recoverStale(store, abs);
    try {
      if (!Deno.statSync(abs).isDirectory) throw new Error("not a directory");
    } catch (e) {
      throw new HdError(
        `Cannot mount on ${abs}: ${(e as Error).message}`,
        "create an empty directory to mount on (mkdir -p DIR)",
      );
    }
    const key = mountKey(abs);
    const log = (ctx.values.log as string | undefined) ?? `${store.root}/mounts/${key}.log`;
    const flags = [...(rw ? ["--rw"] : []), ...(ctx.values.layers ? ["--layers"] : [])];
    const r = await spawnMountServer(store, id, abs, log, flags);
    if ("failed" in r) {
      throw new HdError(
        `Cannot mount ${id.slice(0, 12)} on ${abs}: the mount process ${r.failed}`,
        `see ${log}; \`hd mount … --foreground\` shows errors directly`,
      );
    }
    ctx.out.result(
      { root: id, dir: abs, pid: r.pid, rw, log },
      () => `mounted ${id.slice(0, 12)} on ${abs}${rw ? " (rw)" : ""} (pid ${r.pid})`,
    );
    return 0;
  },
};

/**
 * `hd mount HASH|REF DIR [--rw] [--foreground]`: projects a stored tree on DIR through FUSE,
 * lazily from the store. Without --foreground it starts a background hd process that serves the
 * mount and returns once the mount is live. `hd mount` alone lists this store's mounts.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Command } from "./command.ts";
import type { Store } from "../cas/store.ts";
import { failureOf, waitMountServer } from "../mount/spawn.ts";
import { lazyImport } from "../sys/lazy.ts";
import { takeMountEarly } from "./mount_early.ts";
import { LINGER_HINT, mountServerInfo, parseLinger } from "../mount/host.ts";

// The registry, the server and ref resolution load only on the paths that use them: a background
// mount whose server started early (the usual `hd mount REF DIR`) reports what the server said
// and loads neither them nor the store.
const managerMod = () =>
  lazyImport<typeof import("../mount/manager.ts")>(
    new URL("../mount/manager.ts", import.meta.url),
  );
const fuseMod = () =>
  lazyImport<typeof import("../mount/fuse.ts")>(new URL("../mount/fuse.ts", import.meta.url));
const resolveMod = () =>
  lazyImport<typeof import("./cas/resolve.ts")>(new URL("./cas/resolve.ts", import.meta.url));

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
  lazyStore: true,
  async run(ctx) {
    // a background mount whose server main.ts already started (mount_early.ts)
    const early = takeMountEarly();
    const [ref, dir, ...extra] = ctx.positionals;
    if (!ref) {
      const { listMounts } = await managerMod();
      const store = await ctx.openStore(false);
      const mounts = listMounts(store);
      const server = await mountServerInfo(store.root);
      ctx.out.result(
        { mounts, server },
        () =>
          [
            ...(mounts.length
              ? mounts.map((m) =>
                `${m.dir}  ${m.root.slice(0, 12)}  ${m.rw ? "rw" : "ro"}  pid ${m.pid}  ${m.state}`
              )
              : ["no mounts"]),
            ...(server
              ? [
                `mount server: pid ${server.pid}, ${server.mounts.length} mount(s)` +
                (server.mounts.length ? "" : " (idle: exits after HD_MOUNT_LINGER)"),
              ]
              : []),
          ].join("\n"),
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
    const linger = parseLinger(Deno.env.get("HD_MOUNT_LINGER"));
    if (linger.error && !ctx.values.foreground) {
      throw new HdError(`Cannot mount ${ref}: ${linger.error}`, LINGER_HINT, 2);
    }
    const rw = !!ctx.values.rw;
    if (early && !ctx.values.foreground) {
      const start = await early.start; // the store's mount server's refusal is thrown here
      if ("served" in start) {
        const { root: id, dir: abs, pid, log } = start.served;
        ctx.out.result(
          { root: id, dir: abs, pid, rw, log },
          () => `mounted ${id.slice(0, 12)} on ${abs}${rw ? " (rw)" : ""} (pid ${pid})`,
        );
        return 0;
      }
      // The server checks what the steps below check; it is waited for first, so that this
      // process never races it (recovering a stale mount it is about to replace).
      const r = await waitMountServer(start.child);
      if ("pid" in r && r.info) {
        const { root: id, dir: abs, log } = r.info;
        ctx.out.result(
          { root: id, dir: abs, pid: r.pid, rw, log },
          () => `mounted ${id.slice(0, 12)} on ${abs}${rw ? " (rw)" : ""} (pid ${r.pid})`,
        );
        return 0;
      }
      const { absMountDir, mountKey, recoverStale } = await managerMod();
      const { resolveId } = await resolveMod();
      const abs = absMountDir(dir);
      const store = await ctx.openStore(false);
      const log = (ctx.values.log as string | undefined) ??
        `${store.root}/mounts/${mountKey(abs)}.log`;
      if ("exited" in r) {
        // say why the way the ordinary path would (the server's stderr is not kept)
        resolveId(store, ref);
        (await fuseMod()).loadFuse().close();
        recoverStale(store, abs);
        checkMountDir(abs);
        throw new HdError(
          `Cannot mount ${ref} on ${abs}: the mount process ${failureOf(r, log)}`,
          `see ${log}; \`hd mount … --foreground\` shows errors directly`,
        );
      }
      const id = resolveId(store, ref);
      ctx.out.result(
        { root: id, dir: abs, pid: r.pid, rw, log },
        () => `mounted ${id.slice(0, 12)} on ${abs}${rw ? " (rw)" : ""} (pid ${r.pid})`,
      );
      return 0;
    }
    // the three load side by side (a server started loading them in mount_early.ts)
    const [manager, { resolveId }, store] = await Promise.all([
      managerMod(),
      resolveMod(),
      ctx.openStore(false),
    ]);
    const { absMountDir, mountKey, recoverStale, spawnMountServer } = manager;
    const abs = absMountDir(dir);
    const defaultLog = (store: Store) => `${store.root}/mounts/${mountKey(abs)}.log`;
    const id = resolveId(store, ref);
    // (the server checks for libfuse3 as it mounts: binding its symbols costs ~5-10 ms)
    if (!ctx.values.foreground) (await fuseMod()).loadFuse().close();
    if (ctx.values.foreground) {
      // (--ready: started by spawnMountServer / mount_early, logs to the default file)
      const { serveForeground } = await lazyImport<typeof import("./mount_server.ts")>(
        new URL("./mount_server.ts", import.meta.url),
      );
      await serveForeground(store, id, abs, {
        rw,
        layers: !!ctx.values.layers,
        log: ctx.values.log as string | undefined,
        ready: !!ctx.values.ready,
      });
      return 0;
    }
    recoverStale(store, abs);
    checkMountDir(abs);
    const log = (ctx.values.log as string | undefined) ?? defaultLog(store);
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

/** Throws when `abs` is not an existing directory. */
function checkMountDir(abs: string): void {
  try {
    if (!Deno.statSync(abs).isDirectory) throw new Error("not a directory");
  } catch (e) {
    throw new HdError(
      `Cannot mount on ${abs}: ${(e as Error).message}`,
      "create an empty directory to mount on (mkdir -p DIR)",
    );
  }
}

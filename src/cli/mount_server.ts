/**
 * A mount server's own start: the process `hd mount REF DIR` spawns
 * (`hd mount REF DIR --foreground --ready …`, see src/mount/spawn.ts) goes from cli.ts straight
 * to {@link serveSpawned}, without main.ts, the command table, option parsing or up_early.ts:
 * about a dozen modules fewer on the path every background mount waits for. Anything else
 * (`hd mount … --foreground` typed by a user, an option this does not know) takes the ordinary
 * path; a failure is reported as main.ts reports any command's. {@link serveForeground} is the
 * serving itself, shared with src/cli/mount.ts.
 * @module
 */
import type { Store } from "../cas/store.ts";
import type { EarlyMount } from "./mount_early.ts";
import { lazyImport } from "../sys/lazy.ts";
import { trace } from "../sys/trace.ts";

const managerMod = () =>
  lazyImport<typeof import("../mount/manager.ts")>(
    new URL("../mount/manager.ts", import.meta.url),
  );

/** What {@link serveForeground} serves, and how it reports. */
export interface ForegroundOptions {
  rw: boolean;
  layers: boolean;
  /** Log file (default: none, or the registry's `<key>.log` with `ready`). */
  log?: string;
  /** Print the ready line on stdout once serving (for the parent that spawned this process). */
  ready: boolean;
  /** Called once serving, before the ready line (if any) goes out. */
  beforeReady?: () => void;
  /** Called once the ready line (if any) is out. */
  onReady?: () => void;
  /** This process may serve other mounts too (it is the store's mount server). */
  shared?: boolean;
  /** Stops the mount when aborted. */
  abort?: AbortSignal;
}

/**
 * Serves the stored tree `id` on `dir` in this process until it is unmounted or signalled
 * (`hd mount … --foreground`): logs to `opts.log` (with `ready`, by default to the registry's
 * log file), says `mounted …` on stderr once serving and, with `ready`, prints the ready line on
 * stdout and closes it.
 */
export async function serveForeground(
  store: Store,
  id: string,
  dir: string,
  opts: ForegroundOptions,
): Promise<void> {
  const { absMountDir, mountKey, readyLine, serveMount } = await managerMod();
  const abs = absMountDir(dir);
  const log = opts.log ??
    (opts.ready ? `${store.root}/mounts/${mountKey(abs)}.log` : undefined);
  if (log) Deno.mkdirSync(`${store.root}/mounts`, { recursive: true });
  await serveMount(store, id, abs, {
    rw: opts.rw,
    layerView: opts.layers,
    log,
    shared: opts.shared,
    abort: opts.abort,
    onReady: (rec) => {
      opts.beforeReady?.();
      Deno.stderr.writeSync(
        new TextEncoder().encode(`mounted ${rec.root} on ${rec.dir} (pid ${rec.pid})\n`),
      );
      if (opts.ready) {
        // the parent waits for this line; nothing else goes to stdout
        const info = { root: rec.root, dir: rec.dir, log: log ?? null };
        Deno.stdout.writeSync(new TextEncoder().encode(readyLine(info)));
        Deno.stdout.close();
      }
      opts.onReady?.();
    },
  });
}

/**
 * Serves a mount the way a spawned server was asked to (`args` from parseMountServer; `argv` is
 * the whole command line, for the trace) and resolves to the exit code once it is unmounted.
 */
export async function serveSpawned(args: EarlyMount, argv: string[]): Promise<number> {
  trace("process start", 0);
  trace(`main ${argv.join(" ")}`);
  let ready = false;
  try {
    // the modules serveMount needs, side by side with these
    for (const m of ["../mount/fuse.ts", "../mount/projected.ts"]) {
      lazyImport(new URL(m, import.meta.url)).catch(() => {});
    }
    const [{ Store }, { defaultStoreRoot }, { resolveId }, { absMountDir }, { MountHost }] =
      await Promise.all([
        lazyImport<typeof import("../cas/store.ts")>(new URL("../cas/store.ts", import.meta.url)),
        lazyImport<typeof import("../cas/root.ts")>(new URL("../cas/root.ts", import.meta.url)),
        lazyImport<typeof import("./cas/resolve.ts")>(
          new URL("./cas/resolve.ts", import.meta.url),
        ),
        managerMod(),
        lazyImport<typeof import("../mount/host_server.ts")>(
          new URL("../mount/host_server.ts", import.meta.url),
        ),
      ]);
    trace("command loaded");
    const store = Store.open(args.store ?? defaultStoreRoot(), { create: false });
    const id = resolveId(store, args.ref);
    // The first background server of a store becomes its mount server: later mounts are asked of
    // it instead of starting a process each (src/mount/host.ts). The lock is taken before the
    // first mount so that its record says the process is shared.
    // (not a writable one: its writes live in this process, which then serves it alone)
    const host = args.flags.includes("--rw")
      ? null
      : MountHost.claim(store, { resolve: (ref) => resolveId(store, ref) });
    let live!: () => void;
    const liveP = new Promise<void>((r) => live = r);
    const abort = new AbortController();
    const first: Promise<void> = serveForeground(store, id, args.dir, {
      rw: args.flags.includes("--rw"),
      layers: args.flags.includes("--layers"),
      log: args.log,
      ready: true,
      shared: host !== null,
      abort: abort.signal,
      // the store's mount server listens before its first mount is reported: a `hd mount` right
      // after that one finds the socket (else it started a server of its own)
      beforeReady: () => {
        if (host) (host.track(absMountDir(args.dir), first, abort), host.listen());
      },
      onReady: () => (ready = true, live()),
    });
    if (!host) {
      await first;
      return 0;
    }
    try {
      await Promise.race([first, liveP]);
    } catch (e) {
      await host.close();
      throw e;
    }
    if (!ready) {
      await host.close();
      return 0;
    }
    await host.done;
    return 0;
  } catch (e) {
    if (ready) throw e;
    // said the way main.ts says any command's failure (a spawned server's stderr is not kept:
    // its parent reads the log, then checks what failed itself)
    const [{ reportError }, { Output }] = await Promise.all([
      lazyImport<typeof import("./main.ts")>(new URL("./main.ts", import.meta.url)),
      lazyImport<typeof import("./output.ts")>(new URL("./output.ts", import.meta.url)),
    ]);
    return reportError(e, new Output({ json: false }), false, false);
  }
}

/**
 * The early start of `hd mount HASH|REF DIR` (background): cli.ts calls {@link startMountEarly}
 * with the command's arguments before loading main.ts, the command's modules and the store (and
 * main.ts again, for callers of `main`; the second call does nothing), so the server
 * process starts while this one is still loading; `hd mount` then only waits for it
 * ({@link takeMountEarly}). Only plain invocations qualify (two positionals, known options, no
 * --foreground or --help); anything else takes the ordinary path. No heavy imports here.
 *
 * The server such a start spawns (`hd mount REF DIR --foreground --ready …`) skips main.ts too:
 * cli.ts hands its command line to {@link serveMountEarly} (src/cli/mount_server.ts).
 * @module
 */
import { startMountServer } from "../mount/spawn.ts";
import { askMountServer, mountRequest, mountServerSocket, parseLinger } from "../mount/host.ts";
import { defaultStoreRoot } from "../cas/root.ts";
import { lazyImport } from "../sys/lazy.ts";
import { trace } from "../sys/trace.ts";

/** What an early start was given. */
export interface EarlyMount {
  ref: string;
  dir: string;
  store?: string;
  log?: string;
  /** `--rw` / `--layers`, passed on to the server. */
  flags: string[];
  /** `--json` was given. */
  json?: boolean;
}

/**
 * The arguments of a background `hd mount` that may start early, or null: exactly two
 * positionals, and only the options --rw, --layers, --json, --debug, --store V, --log V.
 */
export function parseMountEarly(rest: string[]): EarlyMount | null {
  const pos: string[] = [];
  const out: EarlyMount = { ref: "", dir: "", flags: [] };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === "--") return null;
    if (!a.startsWith("-") || a === "-") {
      pos.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (name === "--store" || name === "--log") {
      const v = eq > 0 ? a.slice(eq + 1) : rest[++i];
      if (v === undefined || v === "") return null;
      if (name === "--store") out.store = v;
      else out.log = v;
    } else if (eq > 0) return null;
    else if (a === "--rw" || a === "--layers") out.flags.push(a);
    else if (a === "--json") out.json = true;
    else if (a !== "--debug") return null;
  }
  if (pos.length !== 2) return null;
  [out.ref, out.dir] = pos;
  return out;
}

/**
 * The arguments of a server started by `hd mount` (src/mount/spawn.ts: two positionals,
 * `--foreground --ready`, and only --store V, --log V, --rw, --layers besides), or null for any
 * other command line.
 */
export function parseMountServer(rest: string[]): EarlyMount | null {
  const fg = rest.indexOf("--foreground");
  const ready = rest.indexOf("--ready");
  if (fg < 0 || ready < 0 || rest.includes("--json") || rest.includes("--debug")) return null;
  const others = rest.filter((_, i) => i !== fg && i !== ready);
  if (others.includes("--foreground") || others.includes("--ready")) return null;
  return parseMountEarly(others);
}

/**
 * In a server spawned by `hd mount` ({@link parseMountServer}), serves the mount without loading
 * main.ts and resolves to the exit code; null for any other command line (the ordinary path).
 */
export function serveMountEarly(rest: string[]): Promise<number> | null {
  const args = parseMountServer(rest);
  if (!args) return null;
  return lazyImport<typeof import("./mount_server.ts")>(
    new URL("./mount_server.ts", import.meta.url),
  ).then((m) => m.serveSpawned(args, ["mount", ...rest]));
}

/** What the store's mount server served ({@link askMountServer}). */
export interface Served {
  pid: number;
  root: string;
  dir: string;
  log: string | null;
}

/** An early start: the store's mount server served it, or a server process was started. */
export type EarlyStart = { served: Served } | { child: Deno.ChildProcess };

let early: { args: EarlyMount; start: Promise<EarlyStart>; asked: boolean } | null = null;

/**
 * Starts the server of a qualifying background `hd mount` (see the module doc): asks the store's
 * mount server when its socket is there (src/mount/host.ts), and starts a server process when
 * there is none or it cannot take the mount. In the server itself (`--foreground`), starts
 * loading the modules it will need (the FUSE server, the registry, the store, ref resolution)
 * beside main.ts's instead.
 */
export function startMountEarly(rest: string[]): void {
  if (rest.includes("--foreground")) {
    // through lazyImport: a literal import() would put these into every command's module graph
    for (const m of ["../mount/fuse.ts", "../mount/projected.ts", "../mount/manager.ts"]) {
      lazyImport(new URL(m, import.meta.url)).catch(() => {});
    }
    for (const m of ["../cas/store.ts", "./cas/resolve.ts", "../mount/host_server.ts"]) {
      lazyImport(new URL(m, import.meta.url)).catch(() => {});
    }
    return;
  }
  const args = parseMountEarly(rest);
  // a bad HD_MOUNT_LINGER: the ordinary path refuses it (src/cli/mount.ts), before any start
  if (!args || early || parseLinger(Deno.env.get("HD_MOUNT_LINGER")).error) return;
  const spawn = (): EarlyStart => ({
    child: startMountServer(args.ref, args.dir, {
      store: args.store,
      log: args.log,
      flags: args.flags,
    }),
  });
  try {
    const storeRoot = args.store ?? defaultStoreRoot();
    let start: Promise<EarlyStart>;
    // (a writable mount is served by a process of its own: host.ts's admits)
    const asked = !args.flags.includes("--rw") && hasSocket(mountServerSocket(storeRoot));
    if (asked) {
      const abs = (p: string) => p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
      start = askMountServer(
        storeRoot,
        mountRequest(args.ref, abs(args.dir), {
          rw: args.flags.includes("--rw"),
          layers: args.flags.includes("--layers"),
          log: args.log ? abs(args.log) : null,
        }),
      ).then((served) => served ? { served } : spawn());
      trace("mount: asked the mount server");
    } else {
      start = Promise.resolve(spawn());
      trace("mount: server spawned");
    }
    start.catch(() => {}); // awaited (and reported) by the command
    early = { args, start, asked };
  } catch {
    early = null; // the ordinary path will say what is wrong
  }
}

function hasSocket(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/**
 * When this invocation asked the store's mount server and it served the mount: prints what
 * `hd mount` prints (`--json` too) and resolves to 0, so that cli.ts exits without loading
 * main.ts and the command's modules; otherwise null (the command then takes the early start,
 * and says any error the server gave).
 */
export async function finishServedEarly(): Promise<number | null> {
  if (!early?.asked) return null;
  let got: EarlyStart;
  try {
    got = await early.start;
  } catch {
    return null; // said by the command
  }
  if (!("served" in got)) return null;
  const { args } = early;
  early = null;
  Deno.stdout.writeSync(new TextEncoder().encode(servedText(got.served, args)));
  return 0;
}

/** What `hd mount` prints for a mount the store's mount server serves (as src/cli/mount.ts). */
export function servedText(s: Served, args: Pick<EarlyMount, "flags" | "json">): string {
  const rw = args.flags.includes("--rw");
  if (args.json) {
    return JSON.stringify({ root: s.root, dir: s.dir, pid: s.pid, rw, log: s.log }, null, 2) +
      "\n";
  }
  return `mounted ${s.root.slice(0, 12)} on ${s.dir}${rw ? " (rw)" : ""} (pid ${s.pid})\n`;
}

/** The server started early for this invocation, if any (once). */
export function takeMountEarly(): { args: EarlyMount; start: Promise<EarlyStart> } | null {
  const e = early;
  early = null;
  return e;
}

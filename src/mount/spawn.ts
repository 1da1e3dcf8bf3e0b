/**
 * Starting a background mount server (`hd mount … --foreground --ready`) and waiting until it
 * serves. Kept apart from manager.ts and free of heavy imports so that `hd mount` can start its
 * server before its own modules (the store, BLAKE3, libfuse3) have loaded: the two processes then
 * load side by side instead of one after the other.
 *
 * The server prints {@link READY_LINE} on its stdout (a pipe) once it is mounted, registered and
 * serving, followed by what it mounted as JSON ({@link readyLine}), then closes stdout; the parent
 * waits for that line instead of polling the registry, and needs no store of its own to report.
 *
 * @example
 * ```ts
 * import { startMountServer, waitMountServer } from "./spawn.ts";
 * const child = startMountServer("REF", "/mnt/x", { store: "/tmp/store", flags: ["--rw"] });
 * const r = await waitMountServer(child);
 * if ("pid" in r) console.log(`serving (pid ${r.pid})`);
 * ```
 * @module
 */
import { isAlive } from "../sys/proc.ts";
import { v8FlagsArg } from "../sys/v8_flags.ts";

/** The line a server started by {@link startMountServer} prints on stdout once it serves. */
export const READY_LINE = "hd-mount-ready";

/** What a server says it serves, on its ready line. */
export interface ReadyInfo {
  /** Id of the mounted tree (the ref resolved). */
  root: string;
  /** The absolute mount directory. */
  dir: string;
  /** Its log file, or null. */
  log: string | null;
}

/** The ready line a server prints ({@link READY_LINE}, a space, `info` as JSON, a newline). */
export function readyLine(info: ReadyInfo): string {
  return `${READY_LINE} ${JSON.stringify(info)}\n`;
}

/**
 * What a ready line in `text` (a server's stdout so far) says: `info` null when the line has no
 * JSON (an older server), undefined while no complete ready line is there.
 */
export function parseReady(text: string): { info: ReadyInfo | null } | undefined {
  for (const line of text.split("\n").slice(0, -1)) {
    if (line === READY_LINE) return { info: null };
    if (!line.startsWith(`${READY_LINE} `)) continue;
    try {
      const v = JSON.parse(line.slice(READY_LINE.length + 1));
      if (
        typeof v?.root === "string" && typeof v.dir === "string" &&
        (v.log === null || typeof v.log === "string")
      ) return { info: { root: v.root, dir: v.dir, log: v.log } };
    } catch { /* not JSON */ }
    return { info: null };
  }
  return undefined;
}

/** The argv that runs hd itself: the compiled binary, or deno with this checkout's cli.ts. */
export function hdArgv(): string[] {
  const exe = Deno.execPath();
  const base = exe.slice(exe.lastIndexOf("/") + 1);
  if (!base.startsWith("deno")) return [exe];
  return [
    exe,
    "run",
    "-A",
    "--quiet",
    v8FlagsArg(), // a compiled hd has them built in

    new URL("../../cli.ts", import.meta.url).pathname,
  ];
}

/**
 * V8 flags of a mount server (DENO_V8_FLAGS: comma-separated): the caller's, plus a 1 MiB
 * semi-space unless they set one.
 *
 * Tried and dropped: `--no-turbofan` (Maglev as the top tier). It saved ~13 ms of server CPU
 * per cold `find` of a 760-directory node_modules (126 vs 139 ms with the other changes of the
 * day, 12 alternated rounds), but a cold cat of every file took 1038 vs 890 ms (8 rounds: the
 * read path and the JS BLAKE3 run long enough for Turbofan to pay), and a flag the CLI does not
 * share makes V8 refuse the CLI's code cache: mount → serving 117 vs 106 ms (12 rounds).
 */
export function mountServerV8Flags(inherited: string | undefined): string {
  const flags = (inherited ?? "").split(",").map((f) => f.trim()).filter((f) => f);
  if (flags.some((f) => f.startsWith("--max-semi-space-size"))) return flags.join(",");
  return [...flags, "--max-semi-space-size=1"].join(",");
}

/** Where a server started by {@link startMountServer} goes, and with which flags. */
export interface StartOptions {
  /** Store directory (`--store`); the server's default when absent. */
  store?: string;
  /** Log file (`--log`); the server's default (`<store>/mounts/<key>.log`) when absent. */
  log?: string;
  /** More flags of `hd mount` (`--rw`, `--layers`). */
  flags?: string[];
}

/** Starts `hd mount REF DIR --foreground --ready` as a detached process (see the module doc). */
export function startMountServer(
  ref: string,
  dir: string,
  opts: StartOptions = {},
): Deno.ChildProcess {
  const argv = hdArgv();
  // the server runs in / (it may outlive this command and serve other mounts: it must not keep
  // the caller's directory busy), so the paths it is given are made absolute here
  const abs = (p: string) => p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  return new Deno.Command(argv[0], {
    args: [
      ...argv.slice(1),
      "mount",
      ref,
      abs(dir),
      "--foreground",
      "--ready",
      ...(opts.store ? ["--store", abs(opts.store)] : []),
      ...(opts.log ? ["--log", abs(opts.log)] : []),
      ...(opts.flags ?? []),
    ],
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    // A small young generation: the server's garbage (decoded chunks, reply buffers) is freed
    // by frequent cheap scavenges instead of piling up (peak RSS after a cold cat of a 6.2k-file
    // node_modules: 151 → 93 MiB).
    env: { DENO_V8_FLAGS: mountServerV8Flags(Deno.env.get("DENO_V8_FLAGS")) },
    detached: true,
  }).spawn();
}

/**
 * Waits for a started server's ready line: its pid and what it said it serves (`info`), or how it
 * ended (`exited` with its code, or null when it did not become ready within `timeoutMs`; then it
 * is sent SIGTERM, being hd's own child).
 */
export async function waitMountServer(
  child: Deno.ChildProcess,
  timeoutMs = 20000,
): Promise<{ pid: number; info: ReadyInfo | null } | { exited: number | null }> {
  const reader = child.stdout.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  let text = "";
  let ended: "ready" | "eof" | "timeout" = "eof";
  let ready: { info: ReadyInfo | null } | undefined;
  const dec = new TextDecoder();
  while (true) {
    const got = await Promise.race([reader.read(), timeout]);
    if (got === "timeout") {
      ended = "timeout";
      break;
    }
    if (got.done) break;
    text += dec.decode(got.value, { stream: true });
    if ((ready = parseReady(text))) {
      ended = "ready";
      break;
    }
  }
  clearTimeout(timer);
  reader.cancel().catch(() => {});
  if (ended === "ready") {
    child.unref();
    return { pid: child.pid, info: ready!.info };
  }
  if (ended === "timeout" && isAlive(child.pid, { zombies: "dead" })) {
    child.kill("SIGTERM");
    return { exited: null };
  }
  return { exited: (await child.status).code };
}

/** Why a server did not come up, with the last lines of its log. */
export function failureOf(r: { exited: number | null }, log: string): string {
  let tail = "";
  try {
    tail = Deno.readTextFileSync(log).trim().split("\n").slice(-3).join(" | ");
  } catch { /* no log */ }
  const why = r.exited !== null ? `exited (${r.exited})` : "did not become ready";
  return `${why}${tail ? `: ${tail}` : ""}`;
}

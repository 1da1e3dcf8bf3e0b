/**
 * Running a command in a container: hd writes an OCI bundle (src/sandbox/oci_config.ts: Docker's
 * default capabilities, no new privileges, a seccomp allowlist, masked /proc and /sys paths, a
 * devices cgroup, pivot_root into the assembled root) and runs it with runc (src/sandbox/runc.ts),
 * tini as the container's PID 1. The bundle is removed when the container ends; a state runc
 * could not remove (runc killed) is deleted by the id hd gave it.
 *
 * @example
 * ```ts
 * import { runSandbox } from "./container.ts";
 * declare const root: string; // an assembled root filesystem
 * const r = await runSandbox({ root, argv: ["sh", "-c", "id"], cwd: "/", env: {}, binds: [] });
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { exists } from "../sys/fs.ts";
import {
  type BindSpec,
  type ContainerSpec,
  type KeptPath,
  ociConfig,
  type OverlaySpec,
  type ProcessUser,
  type RuntimeOptions,
} from "./oci_config.ts";
import { resolveInRoot } from "./inroot.ts";
import { containerId, deleteContainer, runcRunArgv, sweepContainers, tiniPath } from "./runc.ts";
import { signalChild } from "./process.ts";
import { procChildren, readStat } from "../sys/proc.ts";

export type { BindSpec, OverlaySpec, ProcessUser } from "./oci_config.ts";

/** What to run and where. */
export interface SandboxOptions {
  /** The assembled root filesystem (an overlay mount or a hardlink farm). */
  root: string;
  argv: string[];
  env: Record<string, string>;
  /** Working directory inside the sandbox. */
  cwd: string;
  binds: BindSpec[];
  /** "host" shares the host's network (default); "none" gives a network namespace with only lo. */
  network?: "host" | "none";
  hostname?: string;
  /** Mount the host's CA certificates (/etc/ssl/certs, /usr/local/share/ca-certificates). */
  caCerts?: boolean;
  /** Bind the host's /etc/resolv.conf (default true with the host network). */
  resolvConf?: boolean;
  readonlyRoot?: boolean;
  /** Overlays mounted inside the sandbox (before the binds). */
  overlays?: OverlaySpec[];
  /** Root paths kept visible over the bind mounts (see ContainerSpec.keep). */
  keep?: string[];
  /**
   * The project directory whose `.hd/` (hd's state: up.json, logs, runc state, bundles, the
   * mounted root) must stay invisible inside: wherever a bind or an overlay lower shows it, an
   * empty read-only tmpfs covers it (see {@link stateMasks}).
   */
  project?: string;
  /**
   * Where runc's state and the bundles live (`<runDir>/runc`, `<runDir>/bundles/<id>`); default
   * a private directory of the user (`/run/hd` for root).
   */
  runDir?: string;
  /** Container kind in its id (default "run"). */
  kind?: "step" | "exec" | "run";
  /** Who the command runs as (default root). */
  user?: ProcessUser;
  /** Paths inside that get a fresh tmpfs. */
  tmpfs?: string[];
  /** Join this network namespace (a service on the environment's bridge, see network.ts). */
  netnsPath?: string;
}

/** Where the host's CA bundle is, when there is one. */
export const HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** The default run directory (see SandboxOptions.runDir). */
export function defaultRunDir(): string {
  if (Deno.uid() === 0) return "/run/hd";
  const xdg = Deno.env.get("XDG_RUNTIME_DIR");
  return xdg ? `${xdg}/hd` : `/tmp/hd-${Deno.uid()}`;
}

/** The container's view for `opts` (binds for resolv.conf and CA certificates added). */
export function containerSpec(opts: SandboxOptions): ContainerSpec {
  const binds = [...opts.binds];
  const net = opts.network ?? "host";
  if ((opts.resolvConf ?? net === "host") && exists("/etc/resolv.conf")) {
    binds.push({ src: "/etc/resolv.conf", dst: "/etc/resolv.conf", readonly: true });
  }
  const env = { ...opts.env };
  if (opts.caCerts) {
    for (const d of ["/etc/ssl/certs", "/usr/local/share/ca-certificates"]) {
      if (exists(d)) binds.push({ src: d, dst: d, readonly: true });
    }
    if (exists(HOST_CA_BUNDLE)) {
      env.NODE_EXTRA_CA_CERTS ??= HOST_CA_BUNDLE;
      env.SSL_CERT_FILE ??= HOST_CA_BUNDLE;
    }
  }
  return {
    root: opts.root,
    argv: opts.argv,
    env,
    cwd: opts.cwd,
    binds,
    hostname: opts.hostname,
    netns: net === "none",
    readonlyRoot: opts.readonlyRoot,
    overlays: opts.overlays,
    keep: keptPaths(opts.root, opts.keep ?? []),
    ...(opts.user ? { user: opts.user } : {}),
    ...(opts.tmpfs?.length ? { tmpfs: opts.tmpfs } : {}),
    netnsPath: opts.netnsPath,
    masks: opts.project ? stateMasks(opts.project, binds, opts.overlays ?? []) : undefined,
  };
}

/**
 * Where `project`'s `.hd/` would appear inside a container with these binds and overlays: below
 * every bind whose source is the project or one of its parents, and every overlay with the project
 * as a lower. Each gets an empty read-only tmpfs over it, so a process inside can neither read
 * hd's state nor rewrite what hd reads back on the host (bundles, runc state, up.json).
 *
 * @example
 * ```ts
 * import { stateMasks } from "./container.ts";
 * stateMasks("/p", [{ src: "/p", dst: "/app" }], []); // ["/app/.hd"]
 * ```
 */
export function stateMasks(
  project: string,
  binds: readonly BindSpec[],
  overlays: readonly OverlaySpec[],
): string[] {
  const proj = project.replace(/\/+$/, "");
  const out = new Set<string>();
  const below = (dst: string, src: string): void => {
    const s = src.replace(/\/+$/, "");
    if (s === proj) out.add(`${dst.replace(/\/+$/, "")}/.hd`);
    else if (proj.startsWith(`${s}/`) || s === "") {
      out.add(`${dst.replace(/\/+$/, "")}${proj.slice(s.length)}/.hd`);
    }
  };
  for (const b of binds) below(b.dst, b.src);
  for (const o of overlays) for (const l of o.lowers) below(o.dst, l);
  return [...out];
}

/** The kept paths of `root` that exist, resolved inside the root (see ContainerSpec.keep). */
function keptPaths(root: string, paths: string[]): KeptPath[] {
  const dev = resolveInRoot(root, "/dev");
  const out: KeptPath[] = [];
  for (const path of paths) {
    const source = resolveInRoot(root, path);
    if (!exists(source)) continue;
    const stash = `/dev/.hd-keep-${out.length}`;
    out.push({ path, source, stash, stashSource: `${dev}/.hd-keep-${out.length}` });
  }
  return out;
}

/** The runtime options of container `id` on this host (tini, cgroup path, rootless mode). */
export function runtimeOptions(id: string): RuntimeOptions {
  return {
    init: tiniPath(),
    cgroupsPath: `/hd/${id}`,
    rootless: Deno.uid() === 0 ? undefined : { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 },
  };
}

/** Writes `<bundle>/config.json` for `opts` as container `id` (temp file + rename). */
export function writeBundle(bundle: string, opts: SandboxOptions, id: string): void {
  Deno.mkdirSync(bundle, { recursive: true, mode: 0o700 });
  const cfg = ociConfig(containerSpec(opts), runtimeOptions(id));
  const tmp = `${bundle}/config.json.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(cfg));
  Deno.renameSync(tmp, `${bundle}/config.json`);
}

/** The host-side variables of the runtime process (PATH, HOME), plus `extra`. */
export function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
  };
  for (const k of ["HOME", "HD_RUNC", "HD_TINI"]) {
    const v = Deno.env.get(k);
    if (v) out[k] = v;
  }
  return { ...out, ...extra };
}

/** A running sandbox. `status` resolves once the container's leftovers are removed too. */
export interface SandboxProcess {
  /** Pid of the host process started (setpriv/unshare; runc is below it). */
  readonly pid: number;
  /** The container's id. */
  readonly id: string;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<Deno.CommandStatus>;
  kill(signal?: Deno.Signal): void;
}

/** Starts `opts.argv` in a sandbox; stdio as given (inherit by default). */
export function spawnSandbox(
  opts: SandboxOptions,
  stdio: { stdin?: "inherit" | "null" | "piped"; stdout?: "inherit" | "piped" | "null" } = {},
): SandboxProcess {
  const runDir = opts.runDir ?? defaultRunDir();
  const state = `${runDir}/runc`;
  const id = containerId(opts.runDir ?? opts.root, opts.kind ?? "run");
  const bundle = `${runDir}/bundles/${id}`;
  // leftovers of hd processes that died mid-run (fire and forget: ids never collide)
  void sweepContainers(state, false);
  writeBundle(bundle, opts, id);
  const argv = runcRunArgv(state, bundle, id);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: hostEnv(),
      clearEnv: true,
      stdin: stdio.stdin ?? "inherit",
      stdout: stdio.stdout ?? "inherit",
      stderr: stdio.stdout ?? "inherit",
    }).spawn();
  } catch (e) {
    Deno.removeSync(bundle, { recursive: true });
    throw new HdError(
      `Cannot start the sandbox: ${
        e instanceof Deno.errors.NotFound ? "`setpriv` is not installed" : (e as Error).message
      }`,
      "install util-linux (setpriv, unshare) and runc",
    );
  }
  const status = child.status.then(async (st) => {
    await deleteContainer(state, id);
    try {
      Deno.removeSync(bundle, { recursive: true });
    } catch { /* gone */ }
    return st;
  });
  const empty = () => new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  return {
    pid: child.pid,
    id,
    stdout: stdio.stdout === "piped" ? child.stdout : empty(),
    stderr: stdio.stdout === "piped" ? child.stderr : empty(),
    status,
    kill: (s) => child.kill(s),
  };
}

/** Runs `opts.argv` in a sandbox and collects its output (for tests and build steps). */
export async function runSandbox(
  opts: SandboxOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawnSandbox(opts, { stdin: "null", stdout: "piped" });
  const read = async (s: ReadableStream<Uint8Array>) => await new Response(s).text();
  const [st, stdout, stderr] = await Promise.all([
    child.status,
    read(child.stdout),
    read(child.stderr),
  ]);
  return { code: st.code, stdout, stderr };
}

/** Pid (on the host) of runc below the wrapper `pid` started, or null when it is gone. */
export function runcPid(pid: number): number | null {
  let p = pid;
  // setpriv execs unshare, which forks runc: one level down (none when not root)
  for (let i = 0; i < 2; i++) {
    const s = readStat(p);
    if (s === null || s === "gone") return null;
    if (s.comm.startsWith("runc")) return p;
    const c = procChildren(p);
    if (!c.length) return null;
    p = c[0];
  }
  return null;
}

/**
 * Stops a sandbox: SIGTERM to runc (which forwards it to tini, which forwards it to the command's
 * process group), SIGKILL to runc after `graceMs` (its PID namespace, the container's included,
 * dies with it). Resolves with the sandbox's status.
 */
export async function stopSandbox(
  child: SandboxProcess,
  graceMs = 2000,
): Promise<Deno.CommandStatus> {
  const r = runcPid(child.pid);
  // runc is the child of hd's own child `unshare`: signalChild refuses pid <= 1 and hd itself
  if (r !== null) signalChild(r, "SIGTERM");
  const timer = setTimeout(() => {
    const p = runcPid(child.pid);
    if (p !== null) signalChild(p, "SIGKILL");
    else {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
  }, graceMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}

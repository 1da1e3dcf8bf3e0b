/**
 * Running a command in Linux namespaces: util-linux `unshare` makes new mount, pid, ipc and uts
 * namespaces (plus a network namespace for `network = "none"`, and a user namespace mapping the
 * caller to root when hd does not run as root), and hd's own init (src/sandbox/init.ts) becomes
 * PID 1 there: it mounts /proc, /dev, /tmp and the bind mounts, chroots into the assembled root
 * and runs the command. `setpriv --pdeathsig KILL` and `unshare --kill-child` end the namespace
 * when the caller goes away.
 *
 * @example
 * ```ts
 * import { sandboxArgv, spawnSandbox } from "./sandbox.ts";
 * const child = spawnSandbox({ root, argv: ["sh", "-c", "id"], cwd: "/", env: {}, binds: [] });
 * await child.status;
 * ```
 * @module
 */
import { HdError } from "../cas/errors.ts";
import type { BindSpec, InitConfig } from "./init.ts";
import { exists } from "../cas/fs.ts";
import { signalChild } from "./process.ts";

export type { BindSpec } from "./init.ts";

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
  /** Overlays mounted inside the sandbox (see InitConfig.overlays). */
  overlays?: InitConfig["overlays"];
  /** Root paths kept visible over the bind mounts (see InitConfig.keep). */
  keep?: string[];
}

const INIT = new URL("./init.ts", import.meta.url);

/** Where the host's CA bundle is, when there is one. */
export const HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** The init configuration for `opts` (binds for resolv.conf and CA certificates added). */
export function initConfig(opts: SandboxOptions): InitConfig {
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
    keep: opts.keep,
  };
}

/** The host command line that starts the sandbox: `unshare … -- deno run … init.ts`. */
export function unshareArgv(network: "host" | "none" = "host"): string[] {
  const ns = ["--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child"];
  ns.push("--propagation", "private");
  if (network === "none") ns.push("--net");
  if (Deno.uid() !== 0) ns.push("--user", "--map-root-user");
  const exe = Deno.execPath();
  const base = exe.slice(exe.lastIndexOf("/") + 1);
  const init = base.startsWith("deno")
    ? [exe, "run", "-A", "--quiet", "--no-config", "--cached-only", INIT.href]
    : [exe, "run", "-A", "--quiet", INIT.href];
  // setpriv: unshare gets SIGKILL when hd goes away (its --kill-child then ends the namespace)
  return ["setpriv", "--pdeathsig", "KILL", "--", "unshare", ...ns, "--", ...init];
}

/** The host-side variables of the sandbox process (PATH, HOME, DENO_DIR), plus `extra`. */
export function hostEnv(extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
  };
  for (const k of ["HOME", "DENO_DIR"]) {
    const v = Deno.env.get(k);
    if (v) out[k] = v;
  }
  return { ...out, ...extra };
}

/** The host command line (unshare … deno run init.ts) and its environment. */
export function sandboxArgv(opts: SandboxOptions): { argv: string[]; env: Record<string, string> } {
  return {
    argv: unshareArgv(opts.network ?? "host"),
    env: hostEnv({ HD_SANDBOX_INIT: JSON.stringify(initConfig(opts)) }),
  };
}

/** Starts `opts.argv` in a sandbox; stdio as given (inherit by default). */
export function spawnSandbox(
  opts: SandboxOptions,
  stdio: { stdin?: "inherit" | "null" | "piped"; stdout?: "inherit" | "piped" | "null" } = {},
): Deno.ChildProcess {
  const { argv, env } = sandboxArgv(opts);
  try {
    return new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      clearEnv: true,
      stdin: stdio.stdin ?? "inherit",
      stdout: stdio.stdout ?? "inherit",
      stderr: stdio.stdout ?? "inherit",
    }).spawn();
  } catch (e) {
    throw new HdError(
      `Cannot start the sandbox: ${
        e instanceof Deno.errors.NotFound ? "`unshare` is not installed" : (e as Error).message
      }`,
      "install util-linux (it provides unshare)",
    );
  }
}

/** Runs `opts.argv` in a sandbox and collects its output (for tests and build steps). */
export async function runSandbox(
  opts: SandboxOptions,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawnSandbox(opts, { stdin: "null", stdout: "piped" });
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Pid (on the host) of the sandbox's init: the child of `unshare`, or null when it is gone. */
export function initPid(unsharePid: number): number | null {
  try {
    const c = Deno.readTextFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`).trim();
    return c ? Number(c.split(" ")[0]) : null;
  } catch {
    return null;
  }
}

/**
 * Stops a sandbox: SIGTERM to its init (which forwards it to the command; `unshare` itself
 * ignores SIGTERM), SIGKILL to the init after `graceMs`. Resolves with the sandbox's status.
 */
export async function stopSandbox(
  child: Deno.ChildProcess,
  graceMs = 2000,
): Promise<Deno.CommandStatus> {
  const init = initPid(child.pid);
  // init is the child of hd's own child `unshare`: signalChild refuses pid <= 1 and hd itself
  if (init !== null) signalChild(init, "SIGTERM");
  const timer = setTimeout(() => {
    const p = initPid(child.pid);
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

/**
 * runc as hd drives it: container ids derived from what hd started, a private state root, the
 * command line that runs a bundle, and the removal of leftovers.
 *
 * `runc run` is started as PID 1 of a fresh PID namespace (`unshare --pid --fork --kill-child
 * --mount-proc`, under `setpriv --pdeathsig KILL`): when runc dies — even by SIGKILL, even when its
 * parent dies — the kernel kills every process of that namespace, the container (a nested PID
 * namespace) included. Container processes therefore never outlive the process group the
 * supervisor signals, although runc's init puts them in a session of their own. What can be left
 * is runc's state directory (runc had no time to remove it); {@link deleteContainer} removes it by
 * the id hd recorded, itself inside a fresh PID namespace, so that the pid runc stored (a pid of
 * the namespace that is gone) can never name a live process.
 *
 * Ids: `hd-<tag>-svc-<service>` for services (one per project and service; a restart replaces
 * it), `hd-<tag>-<kind>-<pid>-<n>` for steps and `hd exec`/`hd shell` (pid = the hd process that
 * started it; once that pid is gone the state is a leftover). The tag is a hash of the project
 * directory (or the root), so that cgroup paths (`/hd/<id>`) never collide between projects.
 *
 * @example
 * ```ts
 * import { containerId, runcRunArgv } from "./runc.ts";
 * declare const bundleDir: string;
 * const id = containerId("/home/me/app", "exec");
 * const argv = runcRunArgv("/home/me/app/.hd/sandbox/run/runc", bundleDir, id);
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { isAlive } from "../sys/proc.ts";

/** FNV-1a (32 bits) of `s` as 8 hex digits. */
export function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

let counter = 0;

/** A fresh container id for a step or exec started by this process (`kind`: step, exec, run). */
export function containerId(scope: string, kind: "step" | "exec" | "run"): string {
  return `hd-${shortHash(scope)}-${kind}-${Deno.pid}-${++counter}`;
}

/** The container id of service `name` of the project at `projectDir`. */
export function serviceContainerId(projectDir: string, name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64);
  return `hd-${shortHash(projectDir)}-svc-${safe}`;
}

/** What an id says about its owner: the hd pid for steps/exec, or the service name. */
export function parseContainerId(
  id: string,
): { tag: string; kind: string; pid?: number; service?: string } | null {
  let m = /^hd-([0-9a-f]{8})-(step|exec|run)-(\d+)-\d+$/.exec(id);
  if (m) return { tag: m[1], kind: m[2], pid: Number(m[3]) };
  m = /^hd-([0-9a-f]{8})-svc-([A-Za-z0-9_.-]+)$/.exec(id);
  if (m) return { tag: m[1], kind: "svc", service: m[2] };
  return null;
}

/**
 * Which entries of a runc state root are leftovers to delete: step/exec containers whose hd
 * process is gone, and — only when `servicesStopped` (no `hd up` runs) — service containers.
 * Entries hd did not name are never touched.
 */
export function leftoverContainers(
  entries: string[],
  pidAlive: (pid: number) => boolean,
  servicesStopped: boolean,
): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const p = parseContainerId(e);
    if (!p) continue;
    if (p.pid !== undefined) {
      if (p.pid > 1 && p.pid !== Deno.pid && !pidAlive(p.pid)) out.push(e);
    } else if (servicesStopped) out.push(e);
  }
  return out.sort();
}

/** Path of runc: `$HD_RUNC`, else `runc` from PATH. */
export function runcPath(): string {
  return Deno.env.get("HD_RUNC") || "runc";
}

/** Path of the static tini that becomes PID 1 in the container (`$HD_TINI` or tini-static). */
export function tiniPath(): string {
  const env = Deno.env.get("HD_TINI");
  if (env) return env;
  for (const p of ["/usr/bin/tini-static", "/usr/local/bin/tini-static", "/sbin/tini-static"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  throw new HdError(
    "Cannot start the sandbox: tini-static is not installed",
    "install Debian's `tini` package (it provides /usr/bin/tini-static), or set HD_TINI",
  );
}

/** The PID-namespace wrapper runc runs in (see the module doc); empty when hd is not root. */
function pidnsWrapper(): string[] {
  if (Deno.uid() !== 0) return [];
  return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"];
}

/** The host command line that runs bundle `bundle` as container `id` in the foreground. */
export function runcRunArgv(stateRoot: string, bundle: string, id: string): string[] {
  return [
    "setpriv",
    "--pdeathsig",
    "KILL",
    "--",
    ...pidnsWrapper(),
    runcPath(),
    "--root",
    stateRoot,
    "run",
    "--no-new-keyring",
    "--bundle",
    bundle,
    id,
  ];
}

/** The command line that deletes container `id` (in a fresh PID namespace, see the module doc). */
export function runcDeleteArgv(stateRoot: string, id: string): string[] {
  return [...pidnsWrapper(), runcPath(), "--root", stateRoot, "delete", "--force", id];
}

/** Deletes container `id` of `stateRoot` when its state is there; the error text, or null. */
export async function deleteContainer(stateRoot: string, id: string): Promise<string | null> {
  try {
    Deno.statSync(`${stateRoot}/${id}`);
  } catch {
    return null;
  }
  const argv = runcDeleteArgv(stateRoot, id);
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return null;
    return new TextDecoder().decode(out.stderr).trim() || `exit ${out.code}`;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The hd process `pid` still holds what it made: a zombie too (deleting is the riskier answer). */
const holderAlive = (pid: number) => isAlive(pid, { zombies: "alive" });

/**
 * Deletes the leftovers of `stateRoot` (see {@link leftoverContainers}); returns the ids deleted.
 */
export async function sweepContainers(
  stateRoot: string,
  servicesStopped: boolean,
): Promise<string[]> {
  let entries: string[];
  try {
    entries = [...Deno.readDirSync(stateRoot)].map((e) => e.name);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const id of leftoverContainers(entries, holderAlive, servicesStopped)) {
    if ((await deleteContainer(stateRoot, id)) === null) out.push(id);
  }
  return out;
}

/**
 * True when `entries` (a state root's) hold a container other than `self` that may still run: a
 * service's, or a step's/exec's whose hd process lives.
 */
export function othersRunning(
  entries: string[],
  self: string,
  pidAlive: (pid: number) => boolean,
): boolean {
  return entries.some((e) => {
    if (e === self) return false;
    const p = parseContainerId(e);
    if (!p) return false;
    return p.pid === undefined || pidAlive(p.pid);
  });
}

/** {@link othersRunning} for the state root `stateRoot` (false when it does not exist). */
export function othersRunningIn(stateRoot: string, self: string): boolean {
  let entries: string[];
  try {
    entries = [...Deno.readDirSync(stateRoot)].map((e) => e.name);
  } catch {
    return false;
  }
  return othersRunning(entries, self, holderAlive);
}

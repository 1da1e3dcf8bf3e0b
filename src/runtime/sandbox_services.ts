/**
 * Services of a sandboxed environment, for the unchanged service supervisor: each ServiceSpec is
 * rewritten so that its command runs the service's OCI bundle with runc
 * (`.hd/sandbox/services/<name>/config.json`, container id `hd-<project>-svc-<name>`), which
 * {@link writeServiceConfigs} rewrites whenever the environment's root changes — runc reads it at
 * every (re)start, so a restart always enters the current root. A state left by a runc that was
 * killed is deleted first. The supervisor's SIGTERM reaches runc (tini, then the command's group);
 * its SIGKILL of the group kills runc, the PID 1 of the namespace the container lives in, so
 * nothing of the container survives (src/sandbox/runc.ts).
 *
 * @example
 * ```ts
 * import { sandboxedServices, writeServiceConfigs } from "./sandbox_services.ts";
 * import { mountEnv, type SandboxEnv } from "./sandbox_steps.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const env: SandboxEnv;
 * declare const spec: EnvSpec;
 * const root = mountEnv(env);
 * writeServiceConfigs(env, root.target);
 * // what `hd up` hands to the Supervisor of src/services as its `services`:
 * const services = sandboxedServices(spec);
 * ```
 * @module
 */
import type { EnvSpec, ServiceSpec } from "../config/types.ts";
import { hostEnv, writeBundle } from "../sandbox/container.ts";
import { runcDeleteArgv, runcRunArgv, serviceContainerId } from "../sandbox/runc.ts";
import {
  envRunDir,
  envSandbox,
  envSandboxDir,
  type SandboxEnv,
  sandboxWorkdir,
} from "./sandbox_steps.ts";
import { serviceMounts } from "./volumes.ts";
import { resolveUserInRoot } from "./image_services.ts";
import type { EnvNetwork } from "./network.ts";
import { shQuote } from "../sys/shell.ts";

export { shQuote } from "../sys/shell.ts";

/** The bundle directory of service `name` (its `config.json` is the container's configuration). */
export function serviceBundle(spec: EnvSpec, name: string): string {
  return `${envSandboxDir(spec)}/services/${name}`;
}

/** Path of the runtime configuration of service `name`. */
export function serviceConfigPath(spec: EnvSpec, name: string): string {
  return `${serviceBundle(spec, name)}/config.json`;
}

/** The sh script that starts service `name`: delete a leftover state, then exec runc run. */
export function serviceScript(spec: EnvSpec, name: string): string {
  return runScript(spec, serviceBundle(spec, name), serviceContainerId(spec.dir, name));
}

/** The sh script that deletes a leftover state of container `id`, then execs runc run of `bundle`. */
function runScript(spec: EnvSpec, bundle: string, id: string): string {
  const state = `${envRunDir(spec)}/runc`;
  const q = (a: string[]) => a.map(shQuote).join(" ");
  return `[ ! -e ${shQuote(`${state}/${id}`)} ] || ${q(runcDeleteArgv(state, id))} ` +
    `>/dev/null 2>&1; exec ${q(runcRunArgv(state, bundle, id))}`;
}

/** Where a sandboxed warm service's loader and records appear inside its containers. */
export const WARM_MOUNT = "/dev/.hd-warm";

/**
 * The two standby slots of a service of the environment's base that keeps a standby container — a
 * warm one (`reload = "warm"`) or a held one (see {@link sandboxHeld}): one may run while the
 * other waits.
 */
export const WARM_SLOTS = ["a", "b"] as const;

/** The bundle of standby slot `slot` of service `name` (a container id and cgroup of its own). */
export function standbyBundle(spec: EnvSpec, name: string, slot: string): string {
  return `${envSandboxDir(spec)}/standby/${name}/${slot}`;
}

/**
 * hd's directory of a sandboxed warm service's loader and records, on the host:
 * `in/` (the loader and the standby's preload list, bound read-only at {@link WARM_MOUNT}) and
 * `record.json` and `loaded.json`, each bound as a single file over `in/`'s empty placeholder of
 * the same name — the container can write their contents but can neither replace them by a link
 * nor reach anything else of hd's.
 */
export function warmDir(spec: EnvSpec, name: string): string {
  return `${envRunDir(spec)}/warm/${name}`;
}

/** A `node …` command line (what NODE_OPTIONS's `--require` of the warm loader applies to). */
function nodeLine(command: string): boolean {
  return /^\s*(exec\s+)?(\S*\/)?node(\s|$)/.test(command);
}

/** Whether service `s` of a sandboxed environment runs warm (`reload = "warm"`, `node …`). */
export function sandboxWarm(s: ServiceSpec): boolean {
  return s.reload === "warm" && s.image === undefined && s.argv === undefined &&
    nodeLine(s.command);
}

/**
 * Whether service `s` of a sandboxed environment keeps a held container for its plain restarts:
 * it restarts on edits (`watch`), runs on the environment's root (no `image`) as a shell command,
 * and is not warm. hd creates the next container ahead (runc's namespaces, mounts and cgroup
 * made, its shell waiting on stdin before the service's command) so that a restart after an edit
 * only starts the command in it: what runc costs is paid while nobody waits.
 */
export function sandboxHeld(s: ServiceSpec): boolean {
  return !sandboxWarm(s) && s.image === undefined && s.argv === undefined && s.watch.length > 0;
}

/**
 * The arguments of a held container: a shell that waits for hd's go (the second line on its
 * stdin; end of input: it exits) and then becomes the service's own `argv`.
 *
 * @example
 * ```ts
 * import { heldArgv } from "./sandbox_services.ts";
 * heldArgv(["sh", "-c", "node web/server.js"]);
 * // ["sh", "-c", 'read -r HD_GO || exit 0; exec "$@"', "hd-held", "sh", "-c", "node web/server.js"]
 * ```
 */
export function heldArgv(argv: string[]): string[] {
  return ["sh", "-c", 'read -r HD_GO || exit 0; exec "$@"', "hd-held", ...argv];
}

/** The container id of standby slot `slot` of service `name`. */
export function standbyContainerId(spec: EnvSpec, name: string, slot: string): string {
  return `${serviceContainerId(spec.dir, name)}.standby-${slot}`;
}

/**
 * The standby script of a slot: delete a leftover state of its container, then exec runc run
 * with the slot's bundle (as {@link serviceScript}).
 */
function standbyScript(spec: EnvSpec, name: string, slot: string): string {
  return runScript(spec, standbyBundle(spec, name, slot), standbyContainerId(spec, name, slot));
}

/**
 * What the supervisor needs to keep a standby of a sandboxed warm service (in the wrapped spec's
 * env, which only the host shell sees): the host directory of its records, the project's path
 * inside, the service's own command, and the start script of each standby slot.
 */
function warmEnv(spec: EnvSpec, s: ServiceSpec): Record<string, string> {
  if (!sandboxWarm(s)) return {};
  const out: Record<string, string> = {
    HD_SANDBOX_WARM_DIR: warmDir(spec, s.name),
    HD_SANDBOX_WARM_ROOT: sandboxWorkdir(spec),
    HD_SANDBOX_WARM_MOUNT: WARM_MOUNT,
    HD_SANDBOX_WARM_CMD: s.command.trim(),
  };
  return { ...out, ...slotEnv(spec, s.name, "HD_SANDBOX_WARM_") };
}

/** `<prefix>A`, `<prefix>B`: the start script of each standby slot of service `name`. */
function slotEnv(spec: EnvSpec, name: string, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const slot of WARM_SLOTS) {
    out[`${prefix}${slot.toUpperCase()}`] = standbyScript(spec, name, slot);
  }
  return out;
}

/**
 * What the supervisor needs to keep a held container of a plain service (see {@link sandboxHeld}):
 * its command (what the container holds) and the start script of each standby slot.
 */
function heldEnv(spec: EnvSpec, s: ServiceSpec): Record<string, string> {
  if (!sandboxHeld(s)) return {};
  return { HD_SANDBOX_HELD_CMD: s.command.trim(), ...slotEnv(spec, s.name, "HD_SANDBOX_HELD_") };
}

/** Service `s` wrapped to start its bundle with runc; `shown` is the command its lines show. */
export function wrapService(spec: EnvSpec, s: ServiceSpec, shown = s.command): ServiceSpec {
  // the sandbox command line sits in a variable so that the supervisor's "started" line shows
  // the service's own command (after the shell comment sign)
  const original = shown.replace(/\s*\n\s*/g, " ");
  return {
    ...s,
    command: `eval "$HD_SANDBOX" # in the sandbox: ${original}`,
    env: hostEnv({ HD_SANDBOX: serviceScript(spec, s.name) }),
    workdir: ".",
  };
}

/** The services of `spec`, each wrapped to start in the sandbox (see the module doc). */
export function sandboxedServices(
  spec: EnvSpec,
  net?: EnvNetwork | null,
): Record<string, ServiceSpec> {
  const out: Record<string, ServiceSpec> = {};
  for (const [name, s] of Object.entries(spec.services)) {
    // readiness checks the service's own address on the environment's network
    const addr = net?.address(name);
    const w = wrapService(spec, s);
    w.env = { ...w.env, ...warmEnv(spec, s), ...heldEnv(spec, s) };
    out[name] = { ...w, ...(addr ? { readyHost: addr } : {}) };
  }
  return out;
}

/** Writes the runtime configuration of every service for the root mounted at `root`. */
export function writeServiceConfigs(
  env: SandboxEnv,
  root: string,
  net?: EnvNetwork | null,
): void {
  for (const [name, s] of Object.entries(env.spec.services)) {
    if (s.image !== undefined) continue; // its own root: image_services.ts
    const cwd = s.workdir && s.workdir !== "." ? `${env.workdir}/${s.workdir}` : env.workdir;
    // `user` (else [environment].user) resolved through the root's /etc/passwd; absent: root
    const who = s.user ?? env.spec.environment.user;
    const u = who === undefined ? null : resolveUserInRoot(root, who, `service "${s.name}"`);
    const opts = envSandbox(env, root, s.argv ?? ["sh", "-c", s.command], {
      env: { ...env.env, ...(u ? { HOME: u.home } : {}), ...s.env },
      cwd,
      ...(u ? { user: { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids } } : {}),
    });
    const m = serviceMounts(env.store, env.spec, s, root); // volumes.ts
    (opts.binds.push(...m.binds), opts.tmpfs = m.tmpfs);
    const netns = net?.netnsPath(name);
    if (net && netns) {
      // its own namespace on the environment's bridge; names of the others in /etc/hosts
      opts.netnsPath = netns;
      opts.resolvConf = true;
      opts.binds.push({ src: net.hostsPath, dst: "/etc/hosts", readonly: true });
    }
    const id = serviceContainerId(env.spec.dir, name);
    if (!sandboxWarm(s)) {
      writeBundle(serviceBundle(env.spec, name), opts, id);
      if (!sandboxHeld(s)) continue;
      // held: the same container (root, mounts, user, network namespace) waiting before argv
      const held = { ...opts, argv: heldArgv(opts.argv) };
      for (const slot of WARM_SLOTS) {
        writeBundle(
          standbyBundle(env.spec, name, slot),
          held,
          standbyContainerId(env.spec, name, slot),
        );
      }
      continue;
    }
    // warm: node loads hd's loader (NODE_OPTIONS; the loader puts the service's own back)
    const wd = warmFiles(env.spec, name, u?.uid ?? null);
    const bind = (f: string, readonly = false) => ({
      src: `${wd}/${f}`,
      dst: `${WARM_MOUNT}/${f}`,
      readonly,
    });
    const node = opts.env.NODE_OPTIONS ?? "";
    const main = {
      ...opts,
      env: {
        ...opts.env,
        NODE_OPTIONS: `${node} --require ${WARM_MOUNT}/loader.cjs`.trim(),
        HD_WARM_NODE_OPTIONS: node,
        HD_WARM_RECORD: `${WARM_MOUNT}/record.json`,
      },
      binds: [
        ...opts.binds,
        { src: `${wd}/in`, dst: WARM_MOUNT, readonly: true },
        bind("record.json"),
      ],
    };
    writeBundle(serviceBundle(env.spec, name), main, id);
    // a standby: the same container (root, mounts, user, network namespace) preloading and
    // waiting for hd's go on its stdin; its own id and cgroup per slot
    const standby = {
      ...main,
      env: {
        ...main.env,
        HD_WARM_PRELOAD: `${WARM_MOUNT}/preload.json`,
        HD_WARM_LOADED: `${WARM_MOUNT}/loaded.json`,
        HD_WARM_HOLD: "1",
      },
      binds: [...main.binds, bind("loaded.json")],
    };
    for (const slot of WARM_SLOTS) {
      writeBundle(
        standbyBundle(env.spec, name, slot),
        standby,
        standbyContainerId(env.spec, name, slot),
      );
    }
  }
}

/** The files of {@link warmDir} that must be hd's own regular files (the rest is written later). */
const WARM_FILES = ["in/record.json", "in/loaded.json", "record.json", "loaded.json"];

/**
 * Makes {@link warmDir} of service `name` (kept when it is already hd's: a running container's
 * record goes on being written there), else made anew: a project may ship a `.hd/` whose links
 * would otherwise be bound into the container. The two record files go to `uid` when hd is root.
 */
export function warmFiles(spec: EnvSpec, name: string, uid: number | null): string {
  const wd = warmDir(spec, name);
  const mine = (p: string, dir: boolean) => {
    try {
      const st = Deno.lstatSync(p);
      return (dir ? st.isDirectory : st.isFile && st.nlink === 1) && !st.isSymlink &&
        (Deno.uid() === 0 || st.uid === Deno.uid());
    } catch {
      return false;
    }
  };
  const ok = mine(wd, true) && mine(`${wd}/in`, true) &&
    WARM_FILES.every((f) => mine(`${wd}/${f}`, false));
  if (!ok) {
    try {
      Deno.removeSync(wd, { recursive: true });
    } catch { /* none */ }
    Deno.mkdirSync(`${wd}/in`, { recursive: true, mode: 0o700 });
    Deno.chmodSync(`${wd}/in`, 0o755); // the service's user reads the loader
    for (const f of WARM_FILES) {
      Deno.writeTextFileSync(`${wd}/${f}`, "", { createNew: true, mode: 0o644 });
    }
  }
  // whatever mode a container gave them (it can chmod what is bound), they are plain data again
  for (const f of ["record.json", "loaded.json"]) Deno.chmodSync(`${wd}/${f}`, 0o644);
  if (uid !== null && Deno.uid() === 0) {
    for (const f of ["record.json", "loaded.json"]) Deno.chownSync(`${wd}/${f}`, uid, null);
  }
  return wd;
}

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
import { envRunDir, envSandbox, envSandboxDir, type SandboxEnv } from "./sandbox_steps.ts";
import { serviceMounts } from "./volumes.ts";
import { resolveUserInRoot } from "./image_services.ts";
import type { EnvNetwork } from "./network.ts";

/** Quotes `s` for sh. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

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
  const state = `${envRunDir(spec)}/runc`;
  const id = serviceContainerId(spec.dir, name);
  const q = (a: string[]) => a.map(shQuote).join(" ");
  return `[ ! -e ${shQuote(`${state}/${id}`)} ] || ${q(runcDeleteArgv(state, id))} ` +
    `>/dev/null 2>&1; exec ${q(runcRunArgv(state, serviceBundle(spec, name), id))}`;
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
    out[name] = { ...wrapService(spec, s), ...(addr ? { readyHost: addr } : {}) };
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
    writeBundle(serviceBundle(env.spec, name), opts, serviceContainerId(env.spec.dir, name));
  }
}

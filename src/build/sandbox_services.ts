/**
 * Services of a sandboxed environment, for the unchanged service supervisor: each ServiceSpec is
 * rewritten so that its command starts the sandbox (`exec unshare … init`); the init reads the
 * real command, variables, working directory and mounts from
 * `.hd/sandbox/services/<name>.json`, which {@link writeServiceConfigs} rewrites whenever the
 * environment's root changes — so a restart always enters the current root. The supervisor's
 * process-group signals reach the init, which forwards them, and the command.
 *
 * @example
 * ```ts
 * import { sandboxedServices, writeServiceConfigs } from "./sandbox_services.ts";
 * writeServiceConfigs(env, root.target);
 * new Supervisor({ services: sandboxedServices(spec), dir: spec.dir, env: {}, graceMs: 1000 });
 * ```
 * @module
 */
import type { EnvSpec, ServiceSpec } from "../spec/types.ts";
import { hostEnv, initConfig, unshareArgv } from "../sandbox/sandbox.ts";
import { envSandbox, envSandboxDir, type SandboxEnv } from "./run_sandbox.ts";

/** Quotes `s` for sh. */
export function shQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Path of the init configuration of service `name`. */
export function serviceConfigPath(spec: EnvSpec, name: string): string {
  return `${envSandboxDir(spec)}/services/${name}.json`;
}

/** The services of `spec`, each wrapped to start in the sandbox (see the module doc). */
export function sandboxedServices(spec: EnvSpec): Record<string, ServiceSpec> {
  const out: Record<string, ServiceSpec> = {};
  const argv = unshareArgv("host").map(shQuote).join(" ");
  for (const [name, s] of Object.entries(spec.services)) {
    // the sandbox command line sits in a variable so that the supervisor's "started" line shows
    // the service's own command (after the shell comment sign)
    const original = s.command.replace(/\s*\n\s*/g, " ");
    out[name] = {
      ...s,
      command: `eval exec "$HD_SANDBOX" # in the sandbox: ${original}`,
      env: hostEnv({ HD_SANDBOX: argv, HD_SANDBOX_INIT_FILE: serviceConfigPath(spec, name) }),
      workdir: ".",
    };
  }
  return out;
}

/** Writes the init configuration of every service for the root mounted at `root`. */
export function writeServiceConfigs(env: SandboxEnv, root: string): void {
  for (const [name, s] of Object.entries(env.spec.services)) {
    const cwd = s.workdir && s.workdir !== "." ? `${env.workdir}/${s.workdir}` : env.workdir;
    const cfg = initConfig(
      envSandbox(env, root, ["sh", "-c", s.command], { env: { ...env.env, ...s.env }, cwd }),
    );
    const path = serviceConfigPath(env.spec, name);
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const tmp = `${path}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(cfg));
    Deno.renameSync(tmp, path);
  }
}

/**
 * Secrets of services: `[secrets.NAME]` is a project file or a variable; a service listing it in
 * `secrets` gets it as a read-only file.
 *
 * - **Sandboxed** services (an `image`, or any service of a `base`) see it at `/run/secrets/NAME`,
 *   a read-only bind mount (nosuid, nodev) of the file.
 * - **Host** services have no mount namespace: they get the variable `HD_SECRET_<NAME>` (the name
 *   upper-cased, `.`/`-` as `_`) holding the absolute path of the file: an app reads the file
 *   there instead of `/run/secrets/NAME` (the value itself never goes into the environment).
 *
 * A file secret is the project file itself (every existing component below the project must not
 * be a symbolic link: the bind would follow it). A variable's value is read when the service's
 * configuration is written (process environment, then the project's `.env`) and written to
 * `<run dir>/secrets/<project hash>/NAME` — on `/run` (a tmpfs) when hd runs as root, so it never
 * reaches a disk — in a directory only the owner can enter, mode 0444 inside it (a container's
 * non-root user must read its own bind of it), temp file + rename. The value is never kept in the
 * spec, printed, or put in a process's environment.
 *
 * @example
 * ```ts
 * import type { EnvSpec } from "../config/types.ts";
 * import { secretBinds } from "./secrets.ts";
 * declare const spec: EnvSpec;
 * const binds = secretBinds(spec, spec.services.db); // [{ src, dst: "/run/secrets/db_password", readonly: true }]
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { EnvSpec, ServiceSpec } from "../config/types.ts";
import { dotEnv } from "../config/env_files.ts";
import { type BindSpec, defaultRunDir } from "../sandbox/container.ts";
import { shortHash } from "../sandbox/runc.ts";

/** Where a sandboxed service sees its secrets. */
export const SECRETS_DIR = "/run/secrets";

/** The variable that tells a host service where secret `name` is. */
export function secretVar(name: string): string {
  return `HD_SECRET_${name.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
}

/** The directory of the variable secrets of the project at `dir`. */
export function secretsRunDir(dir: string): string {
  return `${defaultRunDir()}/secrets/${shortHash(dir)}`;
}

/** Creates `dir` (mode 0700) refusing a symlink anywhere below `root`; `dir` is below `root`. */
function privateDir(root: string, dir: string): void {
  Deno.mkdirSync(root, { recursive: true, mode: 0o700 });
  let cur = root;
  for (const c of dir.slice(root.length + 1).split("/")) {
    cur = `${cur}/${c}`;
    try {
      Deno.mkdirSync(cur, { mode: 0o700 });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const st = Deno.lstatSync(cur);
    if (!st.isDirectory || (Deno.uid() !== null && st.uid !== Deno.uid())) {
      throw new HdError(
        `Cannot write secrets in ${cur}: it is not a directory of this user`,
        `remove ${cur}`,
      );
    }
    Deno.chmodSync(cur, 0o700);
  }
}

/** The host path of secret `name` of `spec` (a variable's value is written now). */
export function secretFile(spec: EnvSpec, name: string): string {
  const sec = spec.secrets?.[name];
  if (!sec) throw new HdError(`Cannot find secret "${name}"`, `declare [secrets.${name}]`);
  if (sec.file !== undefined) {
    let cur = spec.dir;
    for (const c of sec.file.split("/")) {
      cur = `${cur}/${c}`;
      let st: Deno.FileInfo;
      try {
        st = Deno.lstatSync(cur);
      } catch {
        throw new HdError(
          `Cannot read secret "${name}": ${sec.file} does not exist`,
          `create it, or change [secrets.${name}].file`,
        );
      }
      if (st.isSymlink) {
        throw new HdError(
          `Cannot use secret "${name}": ${cur.slice(spec.dir.length + 1)} is a symbolic link`,
          "a secret is bound into the sandbox and a link could lead out of the project",
        );
      }
    }
    if (!Deno.statSync(cur).isFile) {
      throw new HdError(`Cannot use secret "${name}": ${sec.file} is not a file`, "name a file");
    }
    return cur;
  }
  const env = Deno.env.toObject();
  const value = env[sec.environment!] ?? dotEnv(spec.dir, env)[sec.environment!];
  if (value === undefined) {
    throw new HdError(
      `Cannot read secret "${name}": the variable ${sec.environment} is not set`,
      `set ${sec.environment} in the environment or in the project's .env`,
    );
  }
  const dir = secretsRunDir(spec.dir);
  privateDir(defaultRunDir(), dir);
  const file = `${dir}/${name}`;
  const tmp = `${file}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, value, { mode: 0o444 });
  Deno.chmodSync(tmp, 0o444);
  Deno.renameSync(tmp, file);
  return file;
}

/** The read-only binds of the secrets of sandboxed service `s`. */
export function secretBinds(spec: EnvSpec, s: ServiceSpec): BindSpec[] {
  return (s.secrets ?? []).map((n) => ({
    src: secretFile(spec, n),
    dst: `${SECRETS_DIR}/${n}`,
    readonly: true,
  }));
}

/** The variables of host service `s`: `HD_SECRET_<NAME>` = the file's host path. */
export function hostSecretEnv(spec: EnvSpec, s: ServiceSpec): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of s.secrets ?? []) out[secretVar(n)] = secretFile(spec, n);
  return out;
}

/** Removes the variable secrets written for the project at `dir` (`hd down`). */
export function removeSecrets(dir: string): void {
  try {
    Deno.removeSync(secretsRunDir(dir), { recursive: true });
  } catch { /* none */ }
}

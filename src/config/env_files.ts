/**
 * The variables hd.toml draws on besides its own text: the project's `.env` (for interpolation
 * only, as in compose — list it in `env_file` to pass its variables to processes) and the
 * `env_file` keys of `[environment]` and `[services.NAME]`, whose variables go under the table's
 * own `env` (which wins). The file format and the interpolation rules are in interpolate.ts.
 *
 * @example
 * ```ts
 * import { dotEnv } from "./env_files.ts";
 * const vars = dotEnv("/work/app", Deno.env.toObject()); // the project's .env, or {}
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { readBeneath } from "../sys/nofollow.ts";
import { EnvFileError, parseEnvFile } from "./interpolate.ts";
import type { VolumeReader } from "./volume_keys.ts";

/** The key this module reads in [environment] and [services.NAME]. */
export const ENV_FILE_KEYS = ["env_file"] as const;

/** Largest env file hd reads (a guard against naming a huge file by mistake). */
export const ENV_FILE_MAX = 1 << 20;

function readEnvFile(
  dir: string,
  rel: string,
  lookup: (n: string) => string | undefined,
  what: string,
): Record<string, string> | null {
  let text: string;
  try {
    // a project file: a symlink may lead elsewhere in the project, never out of it (a cloned
    // project must not hand a host file's variables to its services: src/sys/nofollow.ts)
    const bytes = readBeneath(dir, rel, ENV_FILE_MAX);
    if (bytes === null) return null;
    text = new TextDecoder().decode(bytes);
  } catch (e) {
    throw new HdError(
      `Cannot load ${what}: ${(e as Error).message}`,
      "an env file is a regular file of the project, of KEY=VALUE lines",
    );
  }
  try {
    return parseEnvFile(text, lookup).vars;
  } catch (e) {
    if (e instanceof EnvFileError) {
      throw new HdError(
        `Cannot load ${what}: ${rel}:${e.line}:${e.column}: ${e.message}`,
        "lines are KEY=VALUE; quote values with spaces or #; $$ is a literal $",
      );
    }
    throw e;
  }
}

/** The project's `.env` (`dir/.env`) read with `env` (the process environment); {} when none. */
export function dotEnv(dir: string, env: Record<string, string>): Record<string, string> {
  return readEnvFile(dir, ".env", (n) => env[n], "hd.toml") ?? {};
}

/**
 * The variables of an `env_file` value at `path` — a project path, or an array of them (or of
 * `{ path, required }` tables; `required = false` lets the file be missing) — later files winning.
 */
export function envFileVars(
  v: VolumeReader,
  path: string,
  value: unknown,
  dir: string,
  lookup: (n: string) => string | undefined,
  onFile: (rel: string) => void = () => {},
): Record<string, string> {
  const items = typeof value === "string" ? [value] : value;
  if (!Array.isArray(items)) {
    v.fail(path, "env_file must be a path or an array of paths", 'write env_file = [".env"]');
  }
  const out: Record<string, string> = {};
  items.forEach((it, i) => {
    const at = Array.isArray(value) ? `${path}[${i}]` : path;
    let file: unknown = it;
    let required = true;
    if (typeof it === "object" && it !== null && !Array.isArray(it)) {
      const t = it as Record<string, unknown>;
      for (const k of Object.keys(t)) {
        if (k !== "path" && k !== "required") {
          v.fail(`${at}.${k}`, `unknown key "${k}" in env_file`, "valid keys: path, required");
        }
      }
      if (t.required !== undefined && typeof t.required !== "boolean") {
        v.fail(`${at}.required`, "required must be true or false");
      }
      required = t.required !== false;
      file = t.path;
    }
    const rel = v.relPath(at, file);
    onFile(rel);
    const vars = readEnvFile(dir, rel, (n) => out[n] ?? lookup(n), "hd.toml");
    if (vars === null && required) {
      v.fail(
        at,
        `env_file "${rel}" does not exist`,
        "create it, or write { path, required = false }",
      );
    }
    Object.assign(out, vars ?? {});
  });
  return out;
}

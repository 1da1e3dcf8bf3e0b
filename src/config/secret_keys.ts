/**
 * `[secrets.NAME]` (`file = "path"` in the project, or `environment = "VAR"`) and a service's
 * `secrets = ["NAME", …]`, checked when hd.toml is read: a secret has exactly one source, a file
 * follows the path rules of docs/hdtoml.md, a variable must be set (in the process environment or
 * the project's `.env`) — its value is not kept in the spec: the runtime reads it when it starts
 * the service (src/runtime/secrets.ts) — and a service names only declared secrets.
 *
 * @example
 * ```ts
 * import { parseSecrets } from "./secret_keys.ts";
 * declare const v: import("./volume_keys.ts").VolumeReader;
 * parseSecrets(v, { db_password: { file: "secrets/db.txt" } }, () => undefined);
 * // { db_password: { name: "db_password", file: "secrets/db.txt" } }
 * ```
 * @module
 */
import { didYouMean } from "./suggest.ts";
import type { SecretSpec, ServiceSpec } from "./types.ts";
import type { VolumeReader } from "./volume_keys.ts";

/** The key of [services.NAME] this module reads. */
export const SECRET_KEYS = ["secrets"] as const;

/** A secret's name (a file name under /run/secrets). */
export const SECRET_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

const VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The top-level `[secrets]` table. */
export function parseSecrets(
  v: VolumeReader,
  doc: unknown,
  lookup: (name: string) => string | undefined,
): Record<string, SecretSpec> {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    v.fail("secrets", "[secrets] must be a table of [secrets.NAME] tables");
  }
  const out: Record<string, SecretSpec> = {};
  for (const [name, t] of Object.entries(doc as Record<string, unknown>)) {
    const path = `secrets.${name}`;
    if (!SECRET_NAME.test(name)) {
      v.fail(
        path,
        `secret name "${name}" is not valid`,
        "use lower-case letters, digits, '.', '_' and '-'",
        true,
      );
    }
    if (typeof t !== "object" || t === null || Array.isArray(t)) {
      v.fail(path, `[secrets.${name}] must be a table`, 'write [secrets.NAME] file = "…"');
    }
    const tt = t as Record<string, unknown>;
    for (const k of Object.keys(tt)) {
      if (k !== "file" && k !== "environment") {
        v.fail(
          `${path}.${k}`,
          `unknown key "${k}" in [secrets.${name}]`,
          "valid keys: file, environment",
          true,
        );
      }
    }
    if ((tt.file === undefined) === (tt.environment === undefined)) {
      v.fail(
        path,
        `[secrets.${name}] needs exactly one of file and environment`,
        'write file = "secrets/x.txt" or environment = "VAR"',
        true,
      );
    }
    if (tt.file !== undefined) {
      out[name] = { name, file: v.relPath(`${path}.file`, tt.file) };
      continue;
    }
    const env = v.str(`${path}.environment`, tt.environment);
    if (!VAR.test(env)) v.fail(`${path}.environment`, `"${env}" is not a variable name`);
    if (lookup(env) === undefined) {
      v.fail(
        `${path}.environment`,
        `secret ${name} reads the variable ${env}, which is not set`,
        `set ${env} in the environment or in the project's .env`,
      );
    }
    out[name] = { name, environment: env };
  }
  return out;
}

/** A service's `secrets` value at `path` (names only; checked by {@link checkServiceSecrets}). */
export function serviceSecrets(v: VolumeReader, path: string, t: Record<string, unknown>): {
  secrets?: string[];
} {
  if (t.secrets === undefined) return {};
  if (!Array.isArray(t.secrets)) {
    v.fail(
      `${path}.secrets`,
      "secrets must be an array of names",
      'write secrets = ["db_password"]',
    );
  }
  return { secrets: t.secrets.map((s, i) => v.str(`${path}.secrets[${i}]`, s)) };
}

/** Every name in a service's `secrets` must be a declared `[secrets.NAME]`. */
export function checkServiceSecrets(
  v: VolumeReader,
  services: Record<string, ServiceSpec>,
  secrets: Record<string, SecretSpec>,
): void {
  const names = Object.keys(secrets);
  for (const s of Object.values(services)) {
    (s.secrets ?? []).forEach((n, i) => {
      if (secrets[n]) return;
      const guess = didYouMean(n, names);
      v.fail(
        `services.${s.name}.secrets[${i}]`,
        `secrets names unknown secret "${n}"`,
        guess ? `did you mean "${guess}"?` : `declare it: [secrets.${n}] file = "…"`,
      );
    });
  }
}

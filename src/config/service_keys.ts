/**
 * The compose keys of a `[services.NAME]` table that concern how and where it runs: `image`,
 * `command` (string → `/bin/sh -c`, array → exec form), `entrypoint` (same forms) and `user`.
 * parse.ts calls {@link serviceRunKeys} once per service; the runtime meaning (Docker's way of
 * combining ENTRYPOINT and CMD, the image's defaults) is in src/runtime/image_services.ts.
 *
 * @example
 * ```ts
 * import { commandForm } from "./service_keys.ts";
 * declare const v: import("./service_keys.ts").KeyReader;
 * commandForm(v, "services.db.command", ["postgres", "-c", "fsync=off"]);
 * // { argv: ["postgres", "-c", "fsync=off"], shown: "postgres -c fsync=off" }
 * ```
 * @module
 */
import type { Position, ServiceSpec } from "./types.ts";

/** What parse.ts's validator offers to this module (errors located at a key). */
export interface KeyReader {
  fail(path: string, what: string, hint?: string, preferKey?: boolean): never;
  str(path: string, v: unknown, nonEmpty?: boolean): string;
  at(path: string, preferKey?: boolean): Position;
}

/** The keys of [services.NAME] this module reads. */
export const RUN_KEYS = ["image", "entrypoint", "user"] as const;

/** Quotes `s` for sh (shown forms of exec-form commands). */
function q(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `command` or `entrypoint` as written: a string (run with `/bin/sh -c`) or a non-empty array of
 * strings (exec form). `argv` is what runs; `shown` is a shell line that runs the same (for the
 * host, which runs every command with `sh -c`, and for the supervisor's "started" lines).
 */
export function commandForm(
  v: KeyReader,
  path: string,
  value: unknown,
): { argv: string[]; shown: string; exec: boolean } {
  const name = path.slice(path.lastIndexOf(".") + 1);
  if (Array.isArray(value)) {
    if (value.length === 0) {
      v.fail(path, `${name} must not be an empty array`, `write ${name} = ["program", "arg"]`);
    }
    const argv = value.map((x, i) => {
      if (typeof x !== "string") {
        v.fail(
          `${path}[${i}]`,
          `${name} must hold strings; item ${i + 1} is not a string`,
          'quote it: ["program", "--port", "80"]',
        );
      }
      if (x.includes("\0")) v.fail(`${path}[${i}]`, `${name} item ${i + 1} has a NUL byte`);
      return x;
    });
    return { argv, shown: argv.map(q).join(" "), exec: true };
  }
  const s = v.str(path, value);
  return { argv: ["/bin/sh", "-c", s], shown: s, exec: false };
}

const USER = /^([A-Za-z0-9_][A-Za-z0-9_.-]*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]*))?$/;

/** Checks a `user` value: `name`, `uid`, `name:group`, `uid:gid` (compose's forms). */
export function userForm(v: KeyReader, path: string, value: unknown): string {
  const s = v.str(path, value);
  if (!USER.test(s)) {
    v.fail(
      path,
      `user "${s}" is not a user name or id`,
      'write user = "name", "1000", "name:group" or "1000:1000"',
    );
  }
  return s;
}

/** The run keys of service table `t` at `path` (only the ones present), for ServiceSpec. */
export function serviceRunKeys(
  v: KeyReader,
  path: string,
  t: Record<string, unknown>,
): Partial<Pick<ServiceSpec, "image" | "argv" | "entrypoint" | "user">> {
  const out: Partial<Pick<ServiceSpec, "image" | "argv" | "entrypoint" | "user">> = {};
  if (t.image !== undefined) {
    const image = v.str(`${path}.image`, t.image);
    if (/\s/.test(image) || image.includes("\0")) {
      v.fail(`${path}.image`, `image "${image}" is not an image reference`, 'e.g. "redis:7"');
    }
    out.image = image;
  }
  if (Array.isArray(t.command)) out.argv = commandForm(v, `${path}.command`, t.command).argv;
  if (t.entrypoint !== undefined) {
    if (t.image === undefined) {
      v.fail(
        `${path}.entrypoint`,
        "entrypoint needs an image (it replaces the image's ENTRYPOINT)",
        'add image = "…", or put the program in command',
        true,
      );
    }
    out.entrypoint = commandForm(v, `${path}.entrypoint`, t.entrypoint).argv;
  }
  if (t.user !== undefined) {
    if (t.image === undefined) {
      v.fail(
        `${path}.user`,
        "user needs an image (a host service runs as you; a base's services as root)",
        'add image = "…", or remove user',
        true,
      );
    }
    out.user = userForm(v, `${path}.user`, t.user);
  }
  return out;
}

/** An image service's `workdir` (already checked by the validator): it must be absolute. */
export function imageWorkdir(v: KeyReader, path: string, w: string): string {
  if (!w.startsWith("/")) {
    v.fail(
      path,
      `workdir "${w}" of a service with an image must be an absolute path inside the image`,
      `write workdir = "/${w}"`,
    );
  }
  return w;
}

/**
 * The npm provider: `npm = { file = "package-lock.json" }` → one Package node per installed
 * package of the lockfile, with its version, integrity and resolved URL, read from the file alone
 * (no network). Lockfile versions 2 and 3 are read from their `packages` map, version 1 from its
 * nested `dependencies`. Links (`file:` dependencies, workspaces) become packages whose artifact
 * is `link:<target>`; the project's own root entry is skipped.
 *
 * @example
 * ```ts
 * import { parseNpmLockfile } from "./npm.ts";
 * const pkgs = parseNpmLockfile(Deno.readTextFileSync("package-lock.json"), "package-lock.json");
 * ```
 * @module
 */
import { readBeneath } from "../../sys/nofollow.ts";
import { INPUT_FILE_MAX } from "./provider.ts";
import { HdError } from "../../sys/errors.ts";
import { blake3Hex } from "../../cas/hash.ts";
import type { PackageNode } from "../../dag/node.ts";
import type { DependencySpec } from "../types.ts";
import type { Provider, ResolvedPackage } from "./provider.ts";

type Json = Record<string, unknown>;

function fail(
  file: string,
  why: string,
  hint = "regenerate it with `npm install --package-lock-only`",
): never {
  throw new HdError(`Cannot resolve dependency "npm": ${file}: ${why}`, hint);
}

function nameFromPath(key: string): string {
  const i = key.lastIndexOf("node_modules/");
  return i < 0 ? key.split("/").pop()! : key.slice(i + "node_modules/".length);
}

function pkg(
  name: string,
  version: string,
  artifact: string,
  resolved: unknown,
): PackageNode {
  const node: PackageNode = { type: "package", provider: "npm", name, version, artifact };
  if (typeof resolved === "string" && resolved !== "") node.resolved = resolved;
  return node;
}

function flags(e: Json): { dev?: boolean; optional?: boolean } {
  const f: { dev?: boolean; optional?: boolean } = {};
  if (e.dev === true) f.dev = true;
  if (e.optional === true || e.devOptional === true) f.optional = true;
  return f;
}

/** Parses the text of a package-lock.json (v1, v2 or v3) into resolved packages. */
export function parseNpmLockfile(text: string, file: string): ResolvedPackage[] {
  let j: Json;
  try {
    j = JSON.parse(text);
  } catch (e) {
    fail(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) fail(file, "not a JSON object");
  const lv = j.lockfileVersion;
  const out: ResolvedPackage[] = [];
  if ((lv === 2 || lv === 3) && typeof j.packages === "object" && j.packages !== null) {
    const packages = j.packages as Record<string, Json>;
    for (const [key, e] of Object.entries(packages)) {
      if (key === "" || typeof e !== "object" || e === null) continue;
      if (e.link === true) {
        const target = typeof e.resolved === "string" ? e.resolved : "";
        const t = packages[target];
        const version = typeof t?.version === "string" ? t.version : "0.0.0";
        out.push({
          node: pkg(nameFromPath(key), version, `link:${target}`, undefined),
          path: key,
          ...flags(e),
        });
        continue;
      }
      if (!key.includes("node_modules/")) continue; // a workspace's own sources, linked above
      const name = typeof e.name === "string" ? e.name : nameFromPath(key);
      if (typeof e.version !== "string") {
        fail(file, `package "${key}" has no version`);
      }
      const artifact = typeof e.integrity === "string"
        ? e.integrity
        : typeof e.resolved === "string"
        ? e.resolved
        : e.inBundle === true
        ? "bundled"
        : `${name}@${e.version}`;
      out.push({ node: pkg(name, e.version, artifact, e.resolved), path: key, ...flags(e) });
    }
    return out;
  }
  if (lv === 1 || (lv === undefined && typeof j.dependencies === "object")) {
    const walk = (deps: unknown, prefix: string) => {
      if (typeof deps !== "object" || deps === null) return;
      for (const [name, e] of Object.entries(deps as Record<string, Json>)) {
        if (typeof e !== "object" || e === null) continue;
        const path = `${prefix}node_modules/${name}`;
        if (typeof e.version !== "string") fail(file, `dependency "${path}" has no version`);
        let version = e.version;
        let artifact: string;
        if (version.startsWith("file:")) {
          artifact = `link:${version.slice(5)}`;
          version = "0.0.0";
        } else {
          artifact = typeof e.integrity === "string"
            ? e.integrity
            : typeof e.resolved === "string"
            ? e.resolved
            : e.bundled === true
            ? "bundled"
            : `${name}@${version}`;
        }
        out.push({ node: pkg(name, version, artifact, e.resolved), path, ...flags(e) });
        walk(e.dependencies, `${path}/`);
      }
    };
    walk(j.dependencies, "");
    return out;
  }
  fail(
    file,
    `lockfileVersion ${JSON.stringify(lv)} is not supported (hd reads versions 1, 2 and 3)`,
  );
}

/** The built-in npm provider. */
export const npmProvider: Provider = {
  name: "npm",
  summary: 'packages of a package-lock.json: npm = { file = "package-lock.json" }',
  forms: ["file"],
  resolve(dep: DependencySpec, ctx) {
    if (dep.form !== "file") {
      return Promise.reject(
        new HdError(
          `Cannot resolve dependency "npm": it takes only the file form`,
          'write npm = { file = "package-lock.json" }',
        ),
      );
    }
    let bytes: Uint8Array | null;
    try {
      // a project file: not through a symlink out of the project, not a FIFO or a device, bounded
      bytes = readBeneath(ctx.dir, dep.file, INPUT_FILE_MAX);
      if (bytes === null) throw new Deno.errors.NotFound(dep.file);
    } catch (e) {
      return Promise.reject(
        new HdError(
          `Cannot resolve dependency "npm": ${dep.file} ${
            e instanceof Deno.errors.NotFound
              ? "does not exist"
              : `cannot be read (${(e as Error).message})`
          } in ${ctx.dir}`,
          'create it with `npm install --package-lock-only`, or fix npm = { file = "…" } in hd.toml',
        ),
      );
    }
    try {
      const packages = parseNpmLockfile(new TextDecoder().decode(bytes), dep.file);
      return Promise.resolve({ packages, inputs: [{ path: dep.file, hash: blake3Hex(bytes) }] });
    } catch (e) {
      return Promise.reject(e);
    }
  },
};

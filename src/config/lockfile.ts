/**
 * hd.lock: every resolved package of an environment and the hash of each file its providers
 * read. The file is JSON with sorted keys, two-space indentation, entries sorted by
 * (provider, path or name, version) and a trailing newline, so the same inputs always give
 * byte-identical files, whatever the order of keys in hd.toml. Written atomically.
 *
 * ```json
 * {
 *   "dependencies": "<BLAKE3 of the [dependencies] section, canonical>",
 *   "environment": "hello",
 *   "inputs": { "package-lock.json": "<BLAKE3 hex of the file>" },
 *   "packages": [
 *     { "artifact": "sha512-…", "id": "<Package node id>", "name": "greet", "path": "node_modules/greet",
 *       "provider": "npm", "resolved": "https://…", "version": "1.0.0" }
 *   ],
 *   "version": 1
 * }
 * ```
 *
 * @example
 * ```ts
 * import { resolveLock, writeLock } from "./lockfile.ts";
 * import type { EnvSpec } from "./types.ts";
 * declare const spec: EnvSpec;
 * const lock = await resolveLock(spec);
 * writeLock(`${spec.dir}/hd.lock`, lock);
 * ```
 * @module
 */
import { readBeneath, readInDir } from "../sys/nofollow.ts";
import { INPUT_FILE_MAX } from "./providers/provider.ts";
import { HdError } from "../sys/errors.ts";
import { blake3Hex } from "../cas/hash.ts";
import { compareNames, nodeId, type PackageNode } from "../dag/node.ts";
import { resolveDependency } from "./providers/registry.ts";
import type { EnvSpec } from "./types.ts";

/** File name of the lockfile, beside hd.toml. */
export const LOCK_FILE = "hd.lock";

/** Format version written in hd.lock. */
export const LOCK_VERSION = 1;

/** One package of hd.lock. */
export interface LockPackage {
  provider: string;
  name: string;
  version: string;
  /** Integrity string or artifact id (the Package node's artifact). */
  artifact: string;
  /** Where it is fetched from, when known. */
  resolved?: string;
  /** Install location in the provider's layout (npm: `node_modules/a`). */
  path?: string;
  dev?: boolean;
  optional?: boolean;
  /** Id of the Package node. */
  id: string;
}

/** The content of hd.lock. */
export interface LockFile {
  version: number;
  environment: string;
  /** BLAKE3 of the canonical [dependencies] section: a changed section makes the lock stale. */
  dependencies: string;
  /** Project-relative path → BLAKE3 hex of each file the providers read. */
  inputs: Record<string, string>;
  packages: LockPackage[];
}

/** A difference between two lockfiles, for `hd lock` to print. */
export interface LockChange {
  kind: "added" | "removed" | "changed" | "input";
  /** `npm node_modules/express`, or the input path. */
  what: string;
  from?: string;
  to?: string;
}

/** Serializes any JSON value with sorted object keys (2-space indent, trailing newline). */
export function stableJson(value: unknown): string {
  const enc = (v: unknown, ind: string): string => {
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    const inner = ind + "  ";
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return `[\n${v.map((x) => inner + enc(x, inner)).join(",\n")}\n${ind}]`;
    }
    const keys = Object.keys(v as Record<string, unknown>)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort(compareNames);
    if (keys.length === 0) return "{}";
    return `{\n${
      keys.map((k) =>
        `${inner}${JSON.stringify(k)}: ${enc((v as Record<string, unknown>)[k], inner)}`
      )
        .join(",\n")
    }\n${ind}}`;
  };
  return enc(value, "") + "\n";
}

/** BLAKE3 of the [dependencies] section in a canonical form (sorted, positions left out). */
export function dependenciesFingerprint(spec: EnvSpec): string {
  const deps = spec.dependencies
    .map((d) => {
      const { at: _at, ...rest } = d;
      return rest;
    })
    .sort((a, b) => compareNames(a.provider, b.provider));
  return blake3Hex(new TextEncoder().encode(stableJson(deps)));
}

function sortKey(p: LockPackage): string {
  return `${p.provider}\u0000${p.path ?? p.name}\u0000${p.version}\u0000${p.id}`;
}

/** The Package node a lock entry stands for. */
export function lockPackageNode(p: LockPackage): PackageNode {
  const n: PackageNode = {
    type: "package",
    provider: p.provider,
    name: p.name,
    version: p.version,
    artifact: p.artifact,
  };
  if (p.resolved !== undefined) n.resolved = p.resolved;
  return n;
}

/** Resolves every [dependencies] entry with its provider into a lock (no file is written). */
export async function resolveLock(spec: EnvSpec): Promise<LockFile> {
  const packages: LockPackage[] = [];
  const inputs: Record<string, string> = {};
  for (const dep of spec.dependencies) {
    const r = await resolveDependency(dep, { spec, dir: spec.dir });
    for (const i of r.inputs) inputs[i.path] = i.hash;
    for (const rp of r.packages) {
      const n = rp.node;
      const p: LockPackage = {
        provider: n.provider,
        name: n.name,
        version: n.version,
        artifact: n.artifact,
        id: nodeId(n),
      };
      if (n.resolved !== undefined) p.resolved = n.resolved;
      if (rp.path !== undefined) p.path = rp.path;
      if (rp.dev) p.dev = true;
      if (rp.optional) p.optional = true;
      packages.push(p);
    }
  }
  packages.sort((a, b) => compareNames(sortKey(a), sortKey(b)));
  return {
    version: LOCK_VERSION,
    environment: spec.environment.name,
    dependencies: dependenciesFingerprint(spec),
    inputs,
    packages,
  };
}

/** The exact bytes of hd.lock for `lock`. */
export function encodeLock(lock: LockFile): string {
  const packages = [...lock.packages].sort((a, b) => compareNames(sortKey(a), sortKey(b)));
  return stableJson({ ...lock, packages });
}

/**
 * Line of each value of a JSON text (which JSON.parse accepted), by path: `version`,
 * `packages[3].version`, `inputs["package-lock.json"]`. The root is "".
 */
export function jsonLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let i = 0;
  let line = 1;
  const ws = () => {
    while (
      i < text.length &&
      (text[i] === " " || text[i] === "\n" || text[i] === "\t" || text[i] === "\r")
    ) {
      if (text[i] === "\n") line++;
      i++;
    }
  };
  const str = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const value = (path: string, depth: number): void => {
    ws();
    out.set(path, line);
    const c = text[i];
    if (depth > 64) return;
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) return void i++;
      for (let n = 0;; n++) {
        ws();
        if (c === "{") {
          const k = str();
          ws();
          i++; // :
          value(childPath(path, k), depth + 1);
        } else value(`${path}[${n}]`, depth + 1);
        ws();
        if (text[i++] !== ",") return;
      }
    }
    if (c === '"') return void str();
    while (i < text.length && !",]} \n\t\r".includes(text[i])) i++;
  };
  value("", 0);
  return out;
}

function childPath(path: string, key: string): string {
  const k = /^[A-Za-z_][\w-]*$/.test(key) ? key : `[${JSON.stringify(key)}]`;
  return path === "" ? k.replace(/^\[/, "[") : k.startsWith("[") ? path + k : `${path}.${k}`;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * Checks the shape of a parsed hd.lock; returns the first bad key and what it must be, or null.
 * Every entry must be of the type hd writes (hd.lock is generated: anything else was edited).
 */
export function lockProblem(j: unknown): { key: string; want: string; found: unknown } | null {
  const isObj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const p = (key: string, want: string, found: unknown) => ({ key, want, found });
  if (!isObj(j)) return p("", "an object", j);
  if (j.version !== LOCK_VERSION) return p("version", `${LOCK_VERSION}`, j.version);
  if (typeof j.environment !== "string" || j.environment === "") {
    return p("environment", "a non-empty string", j.environment);
  }
  if (typeof j.dependencies !== "string" || !HEX64.test(j.dependencies)) {
    return p("dependencies", "a BLAKE3 hex string (64 hex digits)", j.dependencies);
  }
  if (!isObj(j.inputs)) return p("inputs", "an object of path → hash", j.inputs);
  for (const [k, v] of Object.entries(j.inputs)) {
    const key = childPath("inputs", k);
    if (k === "" || k.startsWith("/") || k.split("/").includes("..")) {
      return p(key, "a path inside the project", k);
    }
    if (typeof v !== "string" || !HEX64.test(v)) return p(key, "a BLAKE3 hex string", v);
  }
  if (!Array.isArray(j.packages)) return p("packages", "an array", j.packages);
  for (const [n, e] of j.packages.entries()) {
    const at = `packages[${n}]`;
    if (!isObj(e)) return p(at, "an object", e);
    for (const k of ["provider", "name", "version", "artifact"]) {
      if (typeof e[k] !== "string" || e[k] === "") {
        return p(`${at}.${k}`, "a non-empty string", e[k]);
      }
    }
    if (typeof e.id !== "string" || !HEX64.test(e.id)) return p(`${at}.id`, "a node id", e.id);
    for (const k of ["resolved", "path"]) {
      if (e[k] !== undefined && typeof e[k] !== "string") return p(`${at}.${k}`, "a string", e[k]);
    }
    if (
      typeof e.path === "string" && (e.path.startsWith("/") || e.path.split("/").includes(".."))
    ) {
      return p(`${at}.path`, "a path inside the project", e.path);
    }
    for (const k of ["dev", "optional"]) {
      if (e[k] !== undefined && typeof e[k] !== "boolean") {
        return p(`${at}.${k}`, "true or false", e[k]);
      }
    }
  }
  return null;
}

/**
 * Reads hd.lock; null when it does not exist. Throws HdError when it is damaged: not JSON, or an
 * entry of the wrong type (the message names `file:line` and the key).
 */
export function readLock(path: string): LockFile | null {
  let text: string;
  try {
    // a project file: not through a link out of the project, not a FIFO or a device, bounded
    const bytes = readInDir(path, INPUT_FILE_MAX);
    if (bytes === null) return null;
    text = new TextDecoder().decode(bytes);
  } catch (e) {
    throw new HdError(
      `Cannot read ${path}: ${(e as Error).message}`,
      "hd.lock is a regular file of the project; delete it and run `hd lock` to write it again",
    );
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new HdError(
      `Cannot read ${path}: not valid JSON (${(e as Error).message})`,
      "delete it and run `hd lock` to write it again",
    );
  }
  const bad = lockProblem(j);
  if (bad) {
    const lines = jsonLines(text);
    // a missing key: the line of the object that lacks it
    let at = bad.key;
    while (!lines.has(at) && at !== "") at = at.replace(/(\.[^.\[]+|\[[^\]]+\])$/, "");
    const found = bad.found === undefined ? "missing" : `found ${JSON.stringify(bad.found)}`;
    throw new HdError(
      `Cannot read ${path}:${lines.get(at) ?? 1}: ${bad.key || "the file"} must be ${bad.want} (${
        found.slice(0, 60)
      })`,
      "hd.lock is generated, not edited: run `hd lock` to write it again",
    );
  }
  return j as LockFile;
}

/**
 * Writes hd.lock atomically (temp file + rename, fsynced) unless its bytes would not change.
 * Returns true when the file was written.
 */
export function writeLock(path: string, lock: LockFile): boolean {
  const text = encodeLock(lock);
  try {
    // (read as readLock reads it: a link out of the project, a device or a FIFO in its place is
    // not read, only replaced by the rename below, which replaces a link, never its target)
    const old = readInDir(path, INPUT_FILE_MAX);
    if (old !== null && new TextDecoder().decode(old) === text) return false;
  } catch { /* not readable as hd.lock: written anew */ }
  const tmp = `${path}.${Deno.pid}.${Date.now()}.tmp`;
  try {
    const f = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    try {
      const bytes = new TextEncoder().encode(text);
      let off = 0;
      while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
      f.syncSync();
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not created */ }
    throw new HdError(
      `Cannot write ${path}: ${(e as Error).message}`,
      "check the directory's permissions",
    );
  }
  return true;
}

function entryKey(p: LockPackage): string {
  return `${p.provider} ${p.path ?? p.name}`;
}

/** What changed from `old` (null: no lock yet) to `next`. */
export function diffLocks(old: LockFile | null, next: LockFile): LockChange[] {
  const changes: LockChange[] = [];
  const before = new Map((old?.packages ?? []).map((p) => [entryKey(p), p]));
  const after = new Map(next.packages.map((p) => [entryKey(p), p]));
  for (const [k, p] of after) {
    const q = before.get(k);
    if (!q) changes.push({ kind: "added", what: k, to: p.version });
    else if (q.version !== p.version || q.artifact !== p.artifact) {
      changes.push({
        kind: "changed",
        what: k,
        from: q.version === p.version ? q.artifact : q.version,
        to: q.version === p.version ? p.artifact : p.version,
      });
    }
  }
  for (const [k, q] of before) {
    if (!after.has(k)) changes.push({ kind: "removed", what: k, from: q.version });
  }
  const inputs = new Set([...Object.keys(old?.inputs ?? {}), ...Object.keys(next.inputs)]);
  for (const i of [...inputs].sort(compareNames)) {
    const a = old?.inputs[i];
    const b = next.inputs[i];
    if (a !== b) changes.push({ kind: "input", what: i, from: a, to: b });
  }
  return changes.sort((a, b) => compareNames(a.what, b.what));
}

/** Freshness of hd.lock against hd.toml and the files its providers read. */
export type LockState = "missing" | "current" | "stale";

/**
 * Whether `lock` still matches `spec`, and why not: [dependencies] unchanged, same environment,
 * every input file unchanged, and every entry still the Package node its id names (an entry edited
 * by hand — a version, an artifact — no longer is). The one judge of hd.lock: `hd status` (through
 * compile) and `hd lock --check` both ask it, so they agree. Offline: it resolves nothing.
 */
export function lockStatus(
  spec: EnvSpec,
  lock: LockFile | null,
): { state: LockState; why: string } {
  if (lock === null) return { state: "missing", why: "there is no hd.lock" };
  const stale = (why: string) => ({ state: "stale" as const, why });
  if (lock.dependencies !== dependenciesFingerprint(spec)) {
    return stale("[dependencies] in hd.toml changed");
  }
  if (lock.environment !== spec.environment.name) return stale("the environment's name changed");
  for (const [path, hash] of Object.entries(lock.inputs)) {
    try {
      // a project file: not through a symlink out of the project, not a FIFO, bounded
      const bytes = readBeneath(spec.dir, path, INPUT_FILE_MAX);
      if (bytes === null || blake3Hex(bytes) !== hash) return stale(`${path} changed`);
    } catch {
      return stale(`${path} cannot be read`);
    }
  }
  for (const p of lock.packages) {
    if (nodeId(lockPackageNode(p)) !== p.id) {
      return stale(`the entry of ${entryKey(p)} was edited (its id names another package)`);
    }
  }
  return { state: "current", why: "" };
}

/** Whether `lock` still matches `spec` (see {@link lockStatus}). */
export function lockState(spec: EnvSpec, lock: LockFile | null): LockState {
  return lockStatus(spec, lock).state;
}

/**
 * `hd status` without a scan when nothing changed: a saved proof that the project is as the last
 * status saw it, and what that status computed (tree root, Env id, step hashes).
 *
 * The proof is the full lstat key ({@link statKey}: inode, mode, size, mtime and ctime to the
 * nanosecond) of every directory the scan read — kept in the tree or not, so that a file created
 * in an empty directory is seen — and of every tracked file, plus hd.lock and the dependency files
 * the packages were resolved from. It holds when every path still has its key:
 * - a file edited in place (which leaves its directory's mtime alone) has a new ctime;
 * - an entry added, removed or renamed moves its directory's mtime and ctime; a directory's
 *   listing is therefore not read at all while its key holds;
 * - ctime cannot be set back (utimes, `touch -d`, `cp -p` all move it), so equal keys mean
 *   nothing was written in between.
 * Racy-git rule: a proof is saved only when every recorded ctime is older than the scan's start by
 * {@link RACY_MS}, so a write during the scan, or in the same clock tick as a key was read, always
 * breaks it. What else a status depends on — the parsed hd.toml (with its interpolated variables),
 * the pulled image ids — is compared as a whole ({@link proofSubject}); refs (recorded Env, cached
 * steps) are read live each time. A scan that skipped anything (unreadable, sockets), or packages
 * resolved from anything but files, saves no proof.
 *
 * The file (`.hd/status.json`) lives in the project, so it is untrusted: it carries an
 * HMAC-SHA256 with the store's secret key (`secret`: `Store.identity().key`, or
 * `StoreView.secretKey()` without loading the store), and any mismatch or malformed content means
 * a scan.
 *
 * @example
 * ```ts
 * import { loadQuickStatus } from "./quick_status.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const secret: Uint8Array;
 * declare const spec: EnvSpec;
 * const summary = await loadQuickStatus(secret, spec, "subject"); // null: scan
 * ```
 * @module
 */
import { statKey, statKeyCtimeMs } from "../sys/lstat.ts";
import type { LockState } from "../config/lockfile.ts";
import type { EnvSpec } from "../config/types.ts";
import type { CompiledEnv } from "./compile.ts";
import type { MemDir } from "../dag/tree.ts";

/** A path whose ctime is this close to the scan's start (or after it) is not recorded. */
export const RACY_MS = 1000;

const VERSION = 1;

/** What a status computes from the project (everything but the refs it reads live). */
export interface StatusSummary {
  filesRoot: string;
  files: number;
  bytes: number;
  cacheHits: number;
  envId: string;
  lock: LockState;
  packages: number;
  skipped: { path: string; why: string }[];
  steps: {
    index: number;
    run: string;
    kind: "chained" | "inputs";
    hash: string;
    inputs: { label: string; hash: string; files: number; missing: boolean }[];
  }[];
}

/** The summary of a compiled environment. */
export function summaryOf(c: CompiledEnv): StatusSummary {
  return {
    filesRoot: c.filesRoot,
    files: c.files,
    bytes: c.bytes,
    cacheHits: c.cacheHits,
    envId: c.envId,
    lock: c.lock,
    packages: c.packages.length,
    skipped: c.skipped,
    steps: c.steps.map((s) => ({
      index: s.index,
      run: s.spec.run,
      kind: s.spec.inputs === null ? "chained" : "inputs",
      hash: s.id,
      inputs: s.inputs.map((i) => ({
        label: i.label,
        hash: i.id,
        files: i.files,
        missing: i.missing ?? false,
      })),
    })),
  };
}

/** Where the proof of `spec`'s project is kept. */
export function quickStatusPath(spec: Pick<EnvSpec, "dir">): string {
  return `${spec.dir}/.hd/status.json`;
}

/**
 * What a proof is about besides the files: the parsed spec (after interpolation) and the image
 * ids the steps are hashed with. A proof saved for another subject does not hold.
 */
export function proofSubject(
  spec: EnvSpec,
  opts: { baseId?: string; imageIds?: Record<string, string> },
): string {
  return JSON.stringify([spec, opts.baseId ?? null, opts.imageIds ?? {}]);
}

/** The paths (relative to the project, or absolute) besides the tree that a proof covers. */
function extraPaths(spec: EnvSpec): string[] {
  const out = ["hd.lock"];
  for (const d of spec.dependencies) if (d.form === "file") out.push(d.file);
  return out;
}

/**
 * Whether a proof may be saved: every key present and every ctime older than the scan's start by
 * the racy window (pure; keys as {@link statKey} gives them).
 */
export function recordable(keys: readonly (string | null)[], scanStartMs: number): boolean {
  for (const k of keys) {
    if (k === null) return false;
    const c = statKeyCtimeMs(k);
    if (!(c < scanStartMs - RACY_MS)) return false;
  }
  return true;
}

/** Whether a proof holds: the same paths have the same keys now (pure). */
export function holds(
  saved: readonly (string | null)[],
  now: readonly (string | null)[],
): boolean {
  if (saved.length !== now.length) return false;
  for (let i = 0; i < saved.length; i++) if (saved[i] !== now[i]) return false;
  return true;
}

const te = new TextEncoder();

async function hmac(secret: Uint8Array, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, te.encode(body)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}

const abs = (dir: string, p: string) => p.startsWith("/") ? p : p === "" ? dir : `${dir}/${p}`;

interface Saved {
  version: number;
  subject: string;
  paths: string[];
  /** null: the path was absent (an extra path: hd.lock not written yet). */
  keys: (string | null)[];
  summary: StatusSummary;
}

/**
 * The summary saved by the last status when its proof still holds for `subject`, else null
 * (missing, damaged, another store's, another subject, or anything changed: scan).
 */
export async function loadQuickStatus(
  secret: Uint8Array,
  spec: EnvSpec,
  subject: string,
): Promise<StatusSummary | null> {
  let text: string;
  try {
    text = Deno.readTextFileSync(quickStatusPath(spec));
  } catch {
    return null;
  }
  const nl = text.indexOf("\n");
  if (nl !== 64) return null;
  const body = text.slice(nl + 1);
  let j: Saved;
  try {
    j = JSON.parse(body);
  } catch {
    return null;
  }
  if (
    typeof j !== "object" || j === null || j.version !== VERSION || j.subject !== subject ||
    !Array.isArray(j.paths) || !Array.isArray(j.keys) || j.paths.length !== j.keys.length ||
    typeof j.summary !== "object" || j.summary === null
  ) return null;
  // the keys first (the cheap test that fails when anything changed), then the MAC
  if (!j.paths.every((p) => typeof p === "string")) return null;
  if (!holds(j.keys, j.paths.map((p) => statKey(abs(spec.dir, p))))) return null;
  if (await hmac(secret, body) !== text.slice(0, 64)) return null;
  return j.summary;
}

/**
 * Saves the proof for a status just computed by a scan that started at `scanStartMs`: when the
 * rules allow (see the module doc), else removes any older proof. Returns whether it was saved.
 */
export async function saveQuickStatus(
  secret: Uint8Array,
  spec: EnvSpec,
  subject: string,
  c: CompiledEnv,
  scanStartMs: number,
): Promise<boolean> {
  const path = quickStatusPath(spec);
  const drop = () => {
    try {
      Deno.removeSync(path);
    } catch { /* none */ }
    return false;
  };
  const resolvedFromFiles = c.lock === "current" ||
    spec.dependencies.every((d) => d.form === "file");
  if (c.skipped.length > 0 || !resolvedFromFiles) return drop();
  const paths = [...c.walked, ...extraPaths(spec)];
  const files = (d: MemDir, prefix: string) => {
    for (const [name, e] of d.entries) {
      const p = prefix ? `${prefix}/${name}` : name;
      if ("entries" in e) files(e, p); // a MemDir (a FileNode has no entries)
      else paths.push(p);
    }
  };
  files(c.tree.root, "");
  const keys = paths.map((p) => statKey(abs(spec.dir, p)));
  // an absent extra path (no hd.lock yet) is recorded as absent: creating it breaks the proof
  const extra = new Set(extraPaths(spec));
  const check = keys.filter((k, i) => !(k === null && extra.has(paths[i])));
  if (!recordable(check, scanStartMs)) return drop();
  const body = JSON.stringify(
    {
      version: VERSION,
      subject,
      paths,
      keys,
      summary: summaryOf(c),
    } satisfies Saved,
  );
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.mkdirSync(`${spec.dir}/.hd`, { recursive: true, mode: 0o700 });
    Deno.writeTextFileSync(tmp, `${await hmac(secret, body)}\n${body}`, { mode: 0o600 });
    Deno.renameSync(tmp, path);
    return true;
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* nothing written */ }
    return false;
  }
}

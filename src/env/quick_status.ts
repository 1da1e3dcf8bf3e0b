/**
 * `hd status` without a scan when nothing changed: a saved proof that the project is as the last
 * status saw it, and what that status computed (tree root, Env id, step hashes).
 *
 * The proof is the full lstat identity ({@link statWords}: inode, mode, size, mtime and ctime to
 * the nanosecond) of every directory the scan read — kept in the tree or not, so that a file created
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
 * The file (`.hd/status.bin`: a MAC line, a JSON header line, the NUL-terminated paths, then
 * {@link STAT_WORDS} u32 per path) is compared without making a string or an object per path. It
 * lives in the project, so it is untrusted: it carries an
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
import {
  closeDir,
  openDir,
  STAT_WORDS,
  statMatches,
  statWords,
  wordsCtimeMs,
} from "../sys/lstat.ts";
import type { LockState } from "../config/lockfile.ts";
import type { EnvSpec } from "../config/types.ts";
import type { CompiledEnv } from "./compile.ts";
import type { MemDir } from "../dag/tree.ts";

/** A path whose ctime is this close to the scan's start (or after it) is not recorded. */
export const RACY_MS = 1000;

/**
 * Format and meaning of a proof: bump it whenever what a status computes from the same files
 * would change (an identity rule, a default exclude), or proofs of the old code would be believed.
 */
const VERSION = 2;

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
  return `${spec.dir}/.hd/status.bin`;
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
 * Whether a proof may be saved: every path present (`null`: absent) and its ctime older than the
 * scan's start by the racy window (pure).
 */
export function recordable(ctimesMs: readonly (number | null)[], scanStartMs: number): boolean {
  for (const c of ctimesMs) if (c === null || !(c < scanStartMs - RACY_MS)) return false;
  return true;
}

async function hmac(secret: Uint8Array, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, body as Uint8Array<ArrayBuffer>),
  );
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The JSON line after the MAC. */
interface Header {
  version: number;
  subject: string;
  summary: StatusSummary;
  /** Number of paths. */
  count: number;
  /** Bytes of the NUL-terminated paths. */
  pathBytes: number;
}

const te = new TextEncoder();
const td = new TextDecoder();

/**
 * The summary saved by the last status when its proof still holds for `subject`, else null
 * (missing, damaged, another store's, another subject, or anything changed: scan).
 */
export async function loadQuickStatus(
  secret: Uint8Array,
  spec: EnvSpec,
  subject: string,
): Promise<StatusSummary | null> {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(quickStatusPath(spec));
  } catch {
    return null;
  }
  if (bytes.length < 66 || bytes[64] !== 10) return null;
  const nl = bytes.indexOf(10, 65);
  if (nl < 0) return null;
  let h: Header;
  try {
    h = JSON.parse(td.decode(bytes.subarray(65, nl)));
  } catch {
    return null;
  }
  if (
    typeof h !== "object" || h === null || h.version !== VERSION || h.subject !== subject ||
    !Number.isSafeInteger(h.count) || !Number.isSafeInteger(h.pathBytes) || h.count < 0 ||
    h.pathBytes < 0 || typeof h.summary !== "object" || h.summary === null ||
    bytes.length !== nl + 1 + h.pathBytes + h.count * STAT_WORDS * 4
  ) return null;
  const names = bytes.subarray(nl + 1, nl + 1 + h.pathBytes);
  const words = new Uint32Array(bytes.slice(nl + 1 + h.pathBytes).buffer);
  if (names.length > 0 && names[names.length - 1] !== 0) return null;
  const dir = openDir(spec.dir);
  if (dir === null) return null;
  // the keys first (the cheap test that fails when anything changed), then the MAC
  try {
    let off = 0;
    for (let i = 0; i < h.count; i++) {
      const end = names.indexOf(0, off);
      if (end < 0) return null;
      if (!statMatches(dir, names.subarray(off, end + 1), words, i * STAT_WORDS)) return null;
      off = end + 1;
    }
    if (off !== names.length) return null;
  } finally {
    closeDir(dir);
  }
  if (await hmac(secret, bytes.subarray(65)) !== td.decode(bytes.subarray(0, 64))) return null;
  return h.summary;
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
  const extra = extraPaths(spec);
  const paths = [...c.walked, ...extra];
  const files = (d: MemDir, prefix: string) => {
    for (const [name, e] of d.entries) {
      const p = prefix ? `${prefix}/${name}` : name;
      if ("entries" in e) files(e, p); // a MemDir (a FileNode has no entries)
      else paths.push(p);
    }
  };
  files(c.tree.root, "");
  if (paths.some((p) => p.includes("\0"))) return drop();
  const names = te.encode(paths.map((p) => `${p === "" ? "." : p}\0`).join(""));
  const dir = openDir(spec.dir);
  if (dir === null) return drop();
  const words = new Uint32Array(paths.length * STAT_WORDS);
  try {
    let off = 0;
    for (let i = 0; i < paths.length; i++) {
      const end = names.indexOf(0, off);
      const ok = statWords(dir, names.subarray(off, end + 1), words, i * STAT_WORDS);
      off = end + 1;
      // an absent extra path (no hd.lock yet) is recorded as absent: creating it breaks the proof
      if (!ok && i >= c.walked.length && i < c.walked.length + extra.length) continue;
      // the first path that may not be recorded ends it (after an edit: no need to stat the rest)
      if (!recordable([ok ? wordsCtimeMs(words, i * STAT_WORDS) : null], scanStartMs)) {
        return drop();
      }
    }
  } finally {
    closeDir(dir);
  }
  const header: Header = {
    version: VERSION,
    subject,
    summary: summaryOf(c),
    count: paths.length,
    pathBytes: names.length,
  };
  const head = te.encode(JSON.stringify(header) + "\n");
  const body = new Uint8Array(head.length + names.length + words.byteLength);
  body.set(head);
  body.set(names, head.length);
  body.set(new Uint8Array(words.buffer), head.length + names.length);
  const mac = te.encode(`${await hmac(secret, body)}\n`);
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.mkdirSync(`${spec.dir}/.hd`, { recursive: true, mode: 0o700 });
    const all = new Uint8Array(mac.length + body.length);
    all.set(mac);
    all.set(body, mac.length);
    Deno.writeFileSync(tmp, all, { mode: 0o600 });
    Deno.renameSync(tmp, path);
    return true;
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* nothing written */ }
    return false;
  }
}

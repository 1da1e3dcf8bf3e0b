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
 * A proof may also bind hd.toml itself ({@link loadBoundStatus}), so that `hd status` answers
 * without loading the parser: it then also holds the lstat of hd.toml, of the files its parse
 * read (.env, env_file), of the parser's own code (src/config/*.ts, deno.json, and the running
 * executable: a changed hd parses differently) and the names of the environment variables the
 * parse looked up; their values are not written but MAC'd, so a changed variable fails the MAC.
 * It is saved only for a project without images (no pulled ids in the subject), when none of
 * those files is a symlink (whose target's edit its lstat would not see) and the parse did not
 * list the whole environment ({@link bindable}).
 *
 * When only tracked files and walked directories have another key (files edited in place or
 * replaced by a rename, as editors save; entries added, removed or renamed: at most
 * {@link MAX_EDITED} paths), the proof still serves: {@link loadQuickStatus} and
 * {@link loadBoundStatus} name them, and the status is worked out from the proof's tree, those
 * files and those directories' listings (src/env/proof_update.ts; the Dir nodes it needs are
 * saved beside the proof: {@link dirIndexPath}).
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
  nextName,
  openDir,
  STAT_WORDS,
  type StatCursor,
  statMismatch,
  statWords,
  wordsCtimeMs,
} from "../sys/lstat.ts";
import type { LockState } from "../config/lockfile.ts";
import { privateDir, readStateFile } from "../sys/fs.ts";
import type { EnvSpec } from "../config/types.ts";
import type { CompiledEnv } from "./compile.ts";
import type { StepHash } from "./step_hashes.ts";
import type { MemDir, Tree } from "../dag/tree.ts";

/** A path whose ctime is this close to the scan's start (or after it) is not recorded. */
export const RACY_MS = 1000;

/**
 * Format and meaning of a proof: bump it whenever what a status computes from the same files
 * would change (an identity rule, a default exclude), or proofs of the old code would be believed.
 */
const VERSION = 4;

/**
 * The most changed paths (tracked files and walked directories together) a proof may find and
 * still serve (the status then rehashes the files and lists the directories again against the
 * proof's tree: src/env/proof_update.ts); more, and the project is scanned.
 */
export const MAX_EDITED = 256;

/** What a status computes from the project (everything but the refs it reads live). */
export interface StatusSummary {
  filesRoot: string;
  files: number;
  bytes: number;
  cacheHits: number;
  envId: string;
  lock: LockState;
  packages: number;
  /** The Package nodes' ids, in the Env node's order (a status after edits reuses them). */
  packageIds: string[];
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
    packageIds: c.packages.map((p) => p.id),
    skipped: c.skipped,
    steps: stepSummary(c.steps),
  };
}

/** The summary's steps of hashed steps. */
export function stepSummary(steps: readonly StepHash[]): StatusSummary["steps"] {
  return steps.map((s) => ({
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
  }));
}

/** Where the proof of `spec`'s project is kept. */
export function quickStatusPath(spec: Pick<EnvSpec, "dir">): string {
  return `${spec.dir}/.hd/status.bin`;
}

/**
 * Where the Dir nodes of the tree a proof vouches for are kept (src/env/proof_update.ts reads
 * them): records of a 32-byte id, a u32 (little-endian) length and the node's encoding. Nothing
 * in it is trusted: a node is used only when it hashes to the id its parent (or the proof's
 * MAC'd tree root) names.
 */
export function dirIndexPath(spec: Pick<EnvSpec, "dir">): string {
  return `${spec.dir}/.hd/status.dirs`;
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

/** What a status shows of hd.toml besides the summary: kept in a proof that binds hd.toml. */
export interface SpecFacts {
  /** Absolute path of hd.toml. */
  file: string;
  dir: string;
  name: string;
  base: string | null;
  /** Entries in [dependencies]. */
  dependencies: number;
}

/** The {@link SpecFacts} of a parsed spec. */
export function factsOf(spec: EnvSpec): SpecFacts {
  return {
    file: spec.file,
    dir: spec.dir,
    name: spec.environment.name,
    base: spec.environment.base,
    dependencies: spec.dependencies.length,
  };
}

/**
 * The process environment for a parse that records which variables it reads (`parseSpec`'s
 * `env`): `names()` lists them sorted, or is null when the parse listed the whole environment or
 * looked up a name the environment cannot hold (then no proof binds the spec).
 */
export function recordingEnv(
  vars: Record<string, string> = Deno.env.toObject(),
): { env: Record<string, string>; names: () => string[] | null } {
  const seen = new Set<string>();
  let all = false;
  const note = (k: string | symbol) => {
    if (typeof k === "string") seen.add(k);
  };
  const env = new Proxy(vars, {
    get: (t, k) => (note(k), Reflect.get(t, k)),
    has: (t, k) => (note(k), Reflect.has(t, k)),
    getOwnPropertyDescriptor: (t, k) => (note(k), Reflect.getOwnPropertyDescriptor(t, k)),
    ownKeys: (t) => (all = true, Reflect.ownKeys(t)),
  });
  return { env, names: () => (all ? null : [...seen].sort()) };
}

/**
 * What a proof that binds hd.toml needs of the status that saves it: whether the project is
 * without images (`plain`), the variables its parse read ({@link recordingEnv}; null: it listed
 * them all), and when hd.toml, the files its parse read and the parser's code were read
 * (`readAtMs`, ms since the epoch; the process's start serves): they were read before the scan
 * started, so the racy rule counts from then.
 */
export interface SpecBinding {
  plain: boolean;
  envNames: string[] | null;
  readAtMs: number;
}

/**
 * Whether a proof may bind hd.toml (pure): a project without images (`plain`), a parse that read
 * named variables only (`envNames` not null), and hd.toml and the files its parse read present
 * or absent but none a symlink.
 */
export function bindable(
  plain: boolean,
  envNames: readonly string[] | null,
  specFileKinds: readonly ("file" | "symlink" | "absent" | "other")[],
): boolean {
  return plain && envNames !== null && specFileKinds.every((k) => k === "file" || k === "absent");
}

function kindOf(path: string): "file" | "symlink" | "absent" | "other" {
  try {
    const st = Deno.lstatSync(path);
    return st.isSymlink ? "symlink" : st.isFile ? "file" : "other";
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "absent" : "other";
  }
}

/** hd.toml and the files its parse read (absolute). */
function specFiles(spec: EnvSpec): string[] {
  return [spec.file, ...(spec.configFiles ?? [".env"]).map((f) => `${spec.dir}/${f}`)];
}

/** The parser's code: the running executable, src/config/*.ts and deno.json (when files). */
function codeFiles(): string[] {
  const out = [Deno.execPath()];
  const config = new URL("../config/", import.meta.url);
  if (config.protocol !== "file:") return out;
  const dir = decodeURIComponent(config.pathname);
  try {
    for (const e of Deno.readDirSync(dir)) if (e.name.endsWith(".ts")) out.push(dir + e.name);
  } catch { /* compiled: the executable stands for its code */ }
  out.push(decodeURIComponent(new URL("../../deno.json", import.meta.url).pathname));
  return out.sort();
}

/** The bytes the MAC covers before the body: the values of the bound variables (or nothing). */
function envPrefix(names: readonly string[] | undefined): Uint8Array {
  if (names === undefined) return new Uint8Array(0);
  return te.encode(`${JSON.stringify(names.map((n) => Deno.env.get(n) ?? null))}\n`);
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

async function hmac(secret: Uint8Array, prefix: Uint8Array, body: Uint8Array): Promise<string> {
  return await hmacWith(await hmacKey(secret), prefix, body);
}

/** The HMAC-SHA256 key of `secret`. */
function hmacKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/**
 * The hex MAC of `prefix` then `body`. The signing is handed to Deno when this is called (it runs
 * off the JS thread), so work done before awaiting it overlaps it.
 */
function hmacWith(key: CryptoKey, prefix: Uint8Array, body: Uint8Array): Promise<string> {
  if (prefix.length > 0) {
    const all = new Uint8Array(prefix.length + body.length);
    all.set(prefix);
    all.set(body, prefix.length);
    body = all;
  }
  return crypto.subtle.sign("HMAC", key, body as Uint8Array<ArrayBuffer>).then((b) =>
    Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("")
  );
}

/** The JSON line after the MAC. */
interface Header {
  version: number;
  subject: string;
  summary: StatusSummary;
  /** Number of paths: `dirs` walked directories, `extra` paths, then the tracked files. */
  count: number;
  dirs: number;
  extra: number;
  /** Bytes of the NUL-terminated paths. */
  pathBytes: number;
  /** Set when the proof binds hd.toml too: what the status shows of it, the variables read. */
  bound?: { facts: SpecFacts; env: string[] };
}

const te = new TextEncoder();
const td = new TextDecoder();

/** The largest proof read (~100 bytes a path: a few million paths). */
const MAX_PROOF_BYTES = 256 << 20;

/** A proof file read and its header checked for form; null when missing or malformed. */
function readProof(path: string): { bytes: Uint8Array; h: Header; nl: number } | null {
  let bytes: Uint8Array | null;
  try {
    // a project's .hd/status.bin is untrusted: not through a symlink (to /dev/zero …), not a
    // FIFO, not beyond any proof's size
    bytes = readStateFile(path, MAX_PROOF_BYTES);
  } catch {
    return null;
  }
  if (bytes === null) return null;
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
    typeof h !== "object" || h === null || h.version !== VERSION || typeof h.subject !== "string" ||
    !Number.isSafeInteger(h.count) || !Number.isSafeInteger(h.pathBytes) || h.count < 0 ||
    h.pathBytes < 0 || typeof h.summary !== "object" || h.summary === null ||
    !Number.isSafeInteger(h.dirs) || !Number.isSafeInteger(h.extra) || h.dirs < 0 ||
    h.extra < 0 || h.dirs + h.extra > h.count ||
    bytes.length !== nl + 1 + h.pathBytes + h.count * STAT_WORDS * 4
  ) return null;
  if (
    h.bound !== undefined &&
    (typeof h.bound !== "object" || h.bound === null || !Array.isArray(h.bound.env) ||
      !h.bound.env.every((n) => typeof n === "string") || typeof h.bound.facts !== "object" ||
      h.bound.facts === null)
  ) return null;
  return { bytes, h, nl };
}

/**
 * What changed since a proof was saved: tracked files with another key (edited in place, replaced
 * by a rename, removed) and walked directories with another key (an entry added, removed or
 * renamed in them, their mode changed, or they are gone); paths relative to the project, "" its
 * root.
 */
export interface ProofChanges {
  /** Tracked files. */
  changed: string[];
  /** Walked directories. */
  dirs: string[];
}

/**
 * What holds of a proof: its MAC verifies and every path still has its key (both lists empty),
 * or only tracked files and walked directories (at most {@link MAX_EDITED} together) have
 * another key; null otherwise (hd.lock, a dependency file, hd.toml or the parser's code changed,
 * too many paths, a bad MAC).
 */
async function proofCheck(
  secret: Uint8Array,
  dirPath: string,
  p: { bytes: Uint8Array; h: Header; nl: number },
): Promise<ProofChanges | null> {
  const { bytes, h, nl } = p;
  const names = bytes.subarray(nl + 1, nl + 1 + h.pathBytes);
  const words = new Uint32Array(bytes.slice(nl + 1 + h.pathBytes).buffer);
  if (names.length > 0 && names[names.length - 1] !== 0) return null;
  let env: Uint8Array;
  try {
    env = envPrefix(h.bound?.env);
  } catch {
    return null; // a name the environment cannot hold
  }
  // The MAC is computed by Deno off the JS thread: started first, it runs beside the keys' check
  // (the proof holds only when both do; a failed check leaves its result unread).
  const mac = hmacWith(await hmacKey(secret), env, bytes.subarray(65)).catch(() => "");
  const dir = openDir(dirPath);
  if (dir === null) return null;
  const changed: string[] = [];
  const dirs: string[] = [];
  try {
    const at: StatCursor = { i: 0, off: 0 };
    for (;;) {
      if (!statMismatch(dir, names, h.count, words, at)) return null;
      if (at.i === h.count) break;
      // a path besides the tree changed, or more paths than are worth working out one by one
      const isDir = at.i < h.dirs;
      if (!isDir && at.i < h.dirs + h.extra) return null;
      if (changed.length + dirs.length === MAX_EDITED) return null;
      const name = td.decode(names.subarray(at.off, names.indexOf(0, at.off)));
      if (isDir) dirs.push(name === "." ? "" : name);
      else changed.push(name);
      nextName(names, at);
    }
  } finally {
    closeDir(dir);
  }
  return await mac === td.decode(bytes.subarray(0, 64)) ? { changed, dirs } : null;
}

/**
 * The summary saved by the last status when its proof still holds for `subject` (`changed` and
 * `dirs` empty), or holds but for tracked files and walked directories that changed
 * ({@link ProofChanges}; the summary is then the one before those changes), else null (missing,
 * damaged, another store's, another subject, or anything else changed: scan).
 */
export async function loadQuickStatus(
  secret: Uint8Array,
  spec: EnvSpec,
  subject: string,
): Promise<(ProofChanges & { summary: StatusSummary; walked: string[] }) | null> {
  const p = readProof(quickStatusPath(spec));
  if (p === null || p.h.subject !== subject) return null;
  const c = await proofCheck(secret, spec.dir, p);
  return c ? { summary: p.h.summary, ...c, walked: walkedOf(p) } : null;
}

/** The directories a proof's scan walked (relative to the project; "" its root). */
function walkedOf(p: { bytes: Uint8Array; h: Header; nl: number }): string[] {
  const out: string[] = [];
  let off = p.nl + 1;
  for (let i = 0; i < p.h.dirs; i++) {
    const end = p.bytes.indexOf(0, off);
    const name = td.decode(p.bytes.subarray(off, end));
    out.push(name === "." ? "" : name);
    off = end + 1;
  }
  return out;
}

/**
 * The summary and what the status shows of hd.toml, from a proof that binds hd.toml (see the
 * module doc), without parsing it: for the hd.toml at `file` (absolute). Null when there is no
 * such proof or it does not hold (then parse, and {@link loadQuickStatus} or scan). With
 * `allWalked`, `walked` lists the walked directories even when none changed (a check to be
 * reused by a compile, {@link reuseCheck}: a proof saved from its tree records them).
 */
export async function loadBoundStatus(
  secret: Uint8Array,
  file: string,
  opts: { allWalked?: boolean } = {},
): Promise<(ProofCheck & { facts: SpecFacts }) | null> {
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const p = readProof(quickStatusPath({ dir }));
  const facts = p?.h.bound?.facts;
  if (!p || !facts || facts.file !== file || facts.dir !== dir) return null;
  const c = await proofCheck(secret, dir, p);
  if (c === null) return null;
  // (the directories are listed only when some changed: an unchanged status does not need them)
  const walked = c.dirs.length > 0 || opts.allWalked ? walkedOf(p) : [];
  return { summary: p.h.summary, facts, subject: p.h.subject, ...c, walked };
}

/**
 * A check of a proof ({@link loadBoundStatus}): what changed since it was saved, and what it holds,
 * all read from the bytes whose MAC verified (a file written over it since changes none of it).
 */
export interface ProofCheck extends ProofChanges {
  summary: StatusSummary;
  subject: string;
  walked: string[];
}

/**
 * {@link loadQuickStatus} answered from an earlier `check` (made with `allWalked`) instead of
 * stat'ing every path again: when it is for `subject`, else null (pure). Its data are those the
 * check verified, not the proof file read again. What was written after the check began is not
 * seen: the caller checks again once its watcher runs (src/services/loop.ts), and saves a proof
 * only when that check found nothing besides what this one did.
 */
export function reuseCheck(
  subject: string,
  check: ProofCheck,
): (ProofChanges & { summary: StatusSummary; walked: string[] }) | null {
  if (check.subject !== subject) return null;
  return { summary: check.summary, changed: check.changed, dirs: check.dirs, walked: check.walked };
}

/**
 * Saves the proof for a status just computed by a scan that started at `scanStartMs`: when the
 * rules allow (see the module doc), else removes any older proof. Returns whether it was saved.
 * With `bind` ({@link SpecBinding}) the proof binds hd.toml too when {@link bindable} allows; hd.toml,
 * the files its parse read and the parser's code are then held to the racy rule from the earlier
 * of the scan's start and `bind.readAtMs` (the tree and the dependency files from the scan's).
 */
export async function saveQuickStatus(
  secret: Uint8Array,
  spec: EnvSpec,
  subject: string,
  c: CompiledEnv,
  scanStartMs: number,
  bind?: SpecBinding,
): Promise<boolean> {
  const path = quickStatusPath(spec);
  const drop = () => {
    for (const p of [path, dirIndexPath(spec)]) {
      try {
        Deno.removeSync(p);
      } catch { /* none */ }
    }
    return false;
  };
  const resolvedFromFiles = c.lock === "current" ||
    spec.dependencies.every((d) => d.form === "file");
  if (c.skipped.length > 0 || !resolvedFromFiles) return drop();
  let bound = bind !== undefined &&
    bindable(bind.plain, bind.envNames, specFiles(spec).map(kindOf));
  let envBytes: Uint8Array = new Uint8Array(0);
  try {
    if (bound) envBytes = envPrefix(bind!.envNames!);
  } catch {
    bound = false; // a name the environment cannot hold
  }
  const read = extraPaths(spec);
  const parsed = bound ? [...specFiles(spec), ...codeFiles()] : [];
  const extra = [...read, ...parsed];
  // hd.toml, what its parse read and the parser were read before the scan started, maybe long
  // before (a session saves its proof as it stops): a write between that read and the scan's
  // start must break the proof as well. The tree and what the compile read count from the scan.
  const parsedFrom = bound ? Math.min(scanStartMs, bind!.readAtMs) : scanStartMs;
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
      const from = i >= c.walked.length + read.length && i < c.walked.length + extra.length
        ? parsedFrom
        : scanStartMs;
      if (!recordable([ok ? wordsCtimeMs(words, i * STAT_WORDS) : null], from)) {
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
    dirs: c.walked.length,
    extra: extra.length,
    pathBytes: names.length,
    ...(bound ? { bound: { facts: factsOf(spec), env: bind!.envNames! } } : {}),
  };
  const head = te.encode(JSON.stringify(header) + "\n");
  const body = new Uint8Array(head.length + names.length + words.byteLength);
  body.set(head);
  body.set(names, head.length);
  body.set(new Uint8Array(words.buffer), head.length + names.length);
  const mac = te.encode(`${await hmac(secret, envBytes, body)}\n`);
  const all = new Uint8Array(mac.length + body.length);
  all.set(mac);
  all.set(body, mac.length);
  // the tree's directories first (a proof is of use without them: a status after an edit then
  // scans); then the proof
  writePrivate(spec.dir, dirIndexPath(spec), dirIndexBytes(c.tree));
  return writePrivate(spec.dir, path, all);
}

/** Writes `bytes` to `path` in the project's `.hd` (temp file and rename); whether it did. */
function writePrivate(dir: string, path: string, bytes: Uint8Array): boolean {
  const tmp = `${path}.${Deno.pid}.tmp`;
  try {
    privateDir(`${dir}/.hd`); // refuses a shipped .hd that links out of the project
    // O_EXCL: never written through a link planted at the temp name
    Deno.writeFileSync(tmp, bytes, { mode: 0o600, createNew: true });
    Deno.renameSync(tmp, path);
    return true;
  } catch {
    try {
      Deno.removeSync(tmp);
    } catch { /* nothing written */ }
    return false;
  }
}

/** The records of {@link dirIndexPath} for the loaded directories of a committed tree. */
export function dirIndexBytes(tree: Tree): Uint8Array {
  const parts: [string, Uint8Array][] = [...tree.encodedDirs()];
  let size = 0;
  for (const [, b] of parts) size += 36 + b.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [id, b] of parts) {
    for (let k = 0; k < 32; k++) out[at + k] = parseInt(id.slice(2 * k, 2 * k + 2), 16);
    view.setUint32(at + 32, b.length, true);
    out.set(b, at + 36);
    at += 36 + b.length;
  }
  return out;
}

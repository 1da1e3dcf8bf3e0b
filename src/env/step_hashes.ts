/**
 * The hashes of build steps and of the Env node, from a tracked tree: what compile
 * (src/env/compile.ts) records, what the watcher recomputes after an edit, and what a status
 * works out from its proof's tree (src/env/proof_update.ts). Hashing only: nothing here reads
 * the project, hd.lock or the stat cache.
 *
 * A table step with `inputs` is keyed on the command, its env, the previous step and the hash of
 * each declared input only (a file's File node, a directory's Dir node, or a glob's matched set
 * as a Dir); a string step (or a table without `inputs`) chains: previous step + the whole
 * tracked tree. A base image adds its reference (stored as a small blob, or the id a caller passes
 * as `baseId`) to every step; a build stage's steps chain on their own stage and its `image`; a
 * copy step is keyed by its source step's hash, `src` and `dst`.
 *
 * @example
 * ```ts
 * import { stepHashes } from "./step_hashes.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * import type { Tree } from "../dag/tree.ts";
 * declare const spec: EnvSpec;
 * declare const tree: Tree;
 * const steps = stepHashes(spec, tree); // hashed, nothing stored
 * ```
 * @module
 */
import { cleanGlob, globBase, globMatcher } from "../sys/glob.ts";
import { blake3Hex } from "../cas/hash.ts";
import type { Store } from "../cas/store.ts";
import { putNode } from "../dag/dag.ts";
import {
  type BuildStepNode,
  compareNames,
  type EnvNode,
  type FileNode,
  nodeId,
} from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import type { BuildStepSpec, EnvSpec, StepCopySpec } from "../config/types.ts";

/** One input of a step and what it hashed to. */
export interface StepInput {
  /** The declared path or glob, or "previous", "files", "base". */
  label: string;
  id: string;
  /** Files the input covers (1 for a file; for "files", every tracked file). */
  files: number;
  /** True when a declared input matched nothing (it then hashes as an empty directory). */
  missing?: boolean;
}

/** A build step with its node and id. */
export interface StepHash {
  index: number;
  spec: BuildStepSpec;
  node: BuildStepNode;
  /** The step's hash: the id of its BuildStep node. */
  id: string;
  inputs: StepInput[];
}

const te = new TextEncoder();

/** The bytes stored to stand for a base image reference in the DAG. */
export function baseRefBytes(base: string): Uint8Array {
  return te.encode(`hd-base-image 1\n${base}\n`);
}

/**
 * The id standing for the base image: `override` when given (a pulled image), else the stored
 * (or, without a store, hashed) reference string; null without a base.
 */
export function baseIdFor(spec: EnvSpec, store?: Store, override?: string): string | null {
  const base = spec.environment.base;
  if (base === null) return null;
  if (override !== undefined) return override;
  return store ? store.putObject(baseRefBytes(base)) : blake3Hex(baseRefBytes(base));
}

const GLOB = /[*?[\]{}!]/;

function* walkFiles(d: MemDir, prefix: string): Generator<[string, FileNode]> {
  for (const [name, c] of d.entries) {
    const p = prefix ? `${prefix}/${name}` : name;
    if (c instanceof MemDir) yield* walkFiles(c, p);
    else yield [p, c];
  }
}

function countFiles(d: MemDir): number {
  let n = 0;
  for (const c of d.entries.values()) n += c instanceof MemDir ? countFiles(c) : 1;
  return n;
}

/**
 * The files of `d` (at `prefix`) that `match` takes, for a glob of `depth` segments without `**`,
 * braces or extglobs: such a glob matches only paths of exactly `depth` segments, and what lies
 * below a match; so a directory at that depth is taken whole when it matches and skipped when it
 * does not, without visiting every file below it (`package*.json` looks at the root only).
 */
function* walkMatching(
  d: MemDir,
  prefix: string,
  depth: number,
  match: (p: string) => boolean,
): Generator<[string, FileNode]> {
  const level = prefix === "" ? 1 : prefix.split("/").length + 1;
  for (const [name, c] of d.entries) {
    const p = prefix ? `${prefix}/${name}` : name;
    if (!(c instanceof MemDir)) {
      if (match(p)) yield [p, c];
    } else if (level < depth) yield* walkMatching(c, p, depth, match);
    else if (match(p)) yield* walkFiles(c, p);
  }
}

function emptyDirId(store: Store | undefined): string {
  const t = new Tree(new MemDir());
  return t.commit(store);
}

/** Hashes one declared input against the tree. */
function hashInput(pattern: string, tree: Tree, store: Store | undefined): StepInput {
  const clean = cleanGlob(pattern);
  if (!GLOB.test(clean)) {
    const hit = clean === "" ? tree.root : tree.get(clean);
    if (hit instanceof MemDir) {
      const sub = new Tree(hit);
      return { label: pattern, id: sub.commit(store), files: countFiles(hit) };
    }
    if (hit !== undefined) {
      const id = store ? putNode(store, hit) : nodeId(hit);
      return { label: pattern, id, files: 1 };
    }
    return { label: pattern, id: emptyDirId(store), files: 0, missing: true };
  }
  // a glob covers its matches and what lies below them (`src/*` takes `src/lib/a.js` too)
  const match = globMatcher([clean]);
  const sub = new Tree(new MemDir(tree.root.mode));
  let files = 0;
  // Walk only below the pattern's static prefix (`src` for `src/**/*.js`).
  const base = globBase(clean);
  const start = base === "" ? tree.root : tree.get(base);
  if (start instanceof MemDir) {
    const walk = /\*\*|[{}()!]/.test(clean)
      ? walkFiles(start, base)
      : walkMatching(start, base, clean.split("/").length, match);
    for (const [p, f] of walk) {
      if (match(p)) (sub.setFile(p, f), files++);
    }
  }
  const id = sub.commit(store);
  return files === 0
    ? { label: pattern, id, files: 0, missing: true }
    : { label: pattern, id, files };
}

/**
 * The BuildStep nodes and hashes of every step, from the current tree. With `store`, the nodes
 * (and the File/Dir nodes of the inputs) are written; without, only hashed.
 */
export function stepHashes(
  spec: EnvSpec,
  tree: Tree,
  opts: {
    store?: Store;
    baseId?: string;
    imageIds?: Record<string, string>;
    /** The tree's file count when known (a chained step's "files" input shows it). */
    files?: number;
  } = {},
): StepHash[] {
  const store = opts.store;
  const filesRoot = tree.commit(store);
  const filesCount = !spec.build.steps.some((s) => s.inputs === null)
    ? 0
    : opts.files ?? countFiles(tree.root);
  const baseId = baseIdFor(spec, store, opts.baseId);
  const imageId = (ref: string) =>
    opts.imageIds?.[ref] ??
      (store ? store.putObject(baseRefBytes(ref)) : blake3Hex(baseRefBytes(ref)));
  const out: StepHash[] = [];
  // each chain (the environment's steps; each stage's) has its own previous step; a copy's hash
  // leaves the chain out (its layer is only what it copied), so the next step of the chain takes
  // the step before the copy and the copy as its previous steps
  const previous = new Map<string | null, string[]>();
  const last = (chain: string) => previous.get(chain)?.at(-1) ?? "";
  for (const s of spec.build.steps) {
    const chain = s.stage ?? null;
    const inputs: StepInput[] = [];
    let node: BuildStepNode;
    if (s.copy) {
      // a copy's layer is what it read: the hash of the source stage's last step, src and dst
      for (const c of s.copy) {
        inputs.push({ label: `copy ${c.from}`, id: last(c.from), files: 0 });
      }
      node = {
        type: "buildstep",
        command: copyCommand(s.copy),
        inputs: inputs.map(({ label, id }) => ({ label, id })),
        env: [],
        outputs: [],
        cache: [],
      };
    } else {
      for (const id of previous.get(chain) ?? []) inputs.push({ label: "previous", id, files: 0 });
      const root = s.stage !== undefined ? imageId(s.image!) : baseId;
      if (root !== null) inputs.push({ label: s.stage ? "image" : "base", id: root, files: 0 });
      if (s.inputs === null) inputs.push({ label: "files", id: filesRoot, files: filesCount });
      else for (const p of s.inputs) inputs.push(hashInput(p, tree, store));
      // a stage's steps see their own env, not the environment's
      const env = Object.entries(
        s.stage !== undefined ? s.env : { ...spec.environment.env, ...s.env },
      )
        .sort((a, b) => compareNames(a[0], b[0])) as [string, string][];
      if (s.network === "none") env.push(["HD_NETWORK", "none"]); // part of the step's identity
      // who runs it and where are too (absent: as before, so existing step ids stay)
      const user = s.user ?? spec.environment.user;
      if (user !== undefined && spec.environment.base !== null) env.push(["HD_USER", user]);
      if (s.workdir !== undefined) env.push(["HD_WORKDIR", s.workdir]);
      if (spec.build.shell) env.push(["HD_SHELL", JSON.stringify(spec.build.shell)]);
      node = {
        type: "buildstep",
        command: s.run,
        inputs: inputs.map(({ label, id }) => ({ label, id })),
        env,
        outputs: s.outputs,
        cache: spec.build.cache,
      };
    }
    const id = store ? putNode(store, node) : nodeId(node);
    out.push({ index: s.index, spec: s, node, id, inputs });
    previous.set(chain, s.copy ? [...previous.get(chain) ?? [], id] : [id]);
  }
  return out;
}

/** The command recorded in a copy step's node: its entries, one a line (`from:src -> dst`). */
export function copyCommand(copy: readonly StepCopySpec[]): string {
  return `hd-copy 1\n${copy.map((c) => `${c.from}:${c.src} -> ${c.dst}`).join("\n")}`;
}

/** The Env node for a compiled tree, packages and steps. */
export function envNode(
  name: string,
  filesRoot: string,
  baseId: string | null,
  packageIds: string[],
  stepIds: string[],
): EnvNode {
  const children: EnvNode["children"] = [{ role: "files", id: filesRoot }];
  if (baseId !== null) children.push({ role: "base", id: baseId });
  const seen = new Set<string>();
  for (const id of packageIds) {
    if (!seen.has(id)) (seen.add(id), children.push({ role: "package", id }));
  }
  for (const id of stepIds) children.push({ role: "step", id });
  return { type: "env", name, children };
}

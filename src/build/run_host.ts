/**
 * Build steps on the host (an environment without `base`): each step's hash, the step cache
 * (a record `.hd/steps/<hash>.json` per successful run in this project), and running a step with
 * `sh -c` in the project directory, its output streamed line by line.
 *
 * A step's hash is the id of its BuildStep node: the command, its sorted environment, its declared
 * outputs and cache directories, and its inputs — for the table form, one id per declared input
 * (the tree of the tracked files it matches); for the string form, the previous step's hash and
 * the root of all tracked files. A step is cached when its record exists and its declared outputs
 * are present; the sandbox issue will add sandboxed execution that captures outputs as a layer.
 *
 * @example
 * ```ts
 * import { hostStepHashes, isStepCached, runHostStep } from "./run_host.ts";
 * const hashes = hostStepHashes(store, spec, tree);
 * if (!isStepCached(spec, spec.build.steps[0], hashes[0])) await runHostStep(spec, spec.build.steps[0], hashes[0]);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { putNode } from "../dag/dag.ts";
import type { BuildStepNode } from "../dag/node.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import type { BuildStepSpec, EnvSpec } from "../spec/types.ts";
import { spawnGroup, stopGroup } from "../services/process.ts";
import { GlobSet } from "../watch/pathmap.ts";

/** The files of `tree` matching `glob`, as a tree of their own; returns its root id. */
function inputTreeId(store: Store, tree: Tree, glob: string): string {
  const g = new GlobSet([glob]);
  const sub = new Tree();
  const walk = (d: MemDir, prefix: string) => {
    for (const [name, c] of d.entries) {
      const rel = prefix ? `${prefix}/${name}` : name;
      if (c instanceof MemDir) walk(c, rel);
      else if (g.matches(rel)) sub.setFile(rel, c);
    }
  };
  walk(tree.root, "");
  return sub.commit(store);
}

/** The BuildStep nodes of `spec`'s steps for the tracked files in `tree` (stored in `store`). */
export function hostStepNodes(store: Store, spec: EnvSpec, tree: Tree): BuildStepNode[] {
  const root = tree.commit(store);
  const nodes: BuildStepNode[] = [];
  let prev: string | null = null;
  for (const step of spec.build.steps) {
    const inputs = step.inputs === null
      ? [...(prev ? [{ label: "previous", id: prev }] : []), { label: "files", id: root }]
      : step.inputs.map((glob) => ({ label: glob, id: inputTreeId(store, tree, glob) }));
    const env = Object.entries({ ...spec.environment.env, ...step.env }).sort((a, b) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
    );
    const node: BuildStepNode = {
      type: "buildstep",
      command: step.run,
      inputs,
      env,
      outputs: step.outputs,
      cache: spec.build.cache,
    };
    nodes.push(node);
    prev = putNode(store, node);
  }
  return nodes;
}

/** The hash of each build step of `spec` (see the module doc). */
export function hostStepHashes(store: Store, spec: EnvSpec, tree: Tree): string[] {
  return hostStepNodes(store, spec, tree).map((n) => putNode(store, n));
}

/** Path of the record of a successful run of step `hash`. */
export function stepRecordPath(spec: EnvSpec, hash: string): string {
  return `${spec.dir}/.hd/steps/${hash}.json`;
}

/** True when step `hash` ran successfully here and its declared outputs still exist. */
export function isStepCached(spec: EnvSpec, step: BuildStepSpec, hash: string): boolean {
  try {
    Deno.statSync(stepRecordPath(spec, hash));
  } catch {
    return false;
  }
  for (const o of step.outputs) {
    try {
      Deno.lstatSync(`${spec.dir}/${o}`);
    } catch {
      return false;
    }
  }
  return true;
}

/** What one host run of a step did. */
export interface StepRun {
  index: number;
  hash: string;
  code: number;
  ms: number;
}

/** A step being run; `stop()` ends its process group. */
export interface RunningStep {
  done: Promise<StepRun>;
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs `step` on the host with `sh -c` in the project directory (its own process group) and, when
 * it exits 0, records it in the step cache. Output lines go to `onLine`.
 */
export function runHostStep(
  spec: EnvSpec,
  step: BuildStepSpec,
  hash: string,
  opts: { onLine?: (line: string) => void; baseEnv?: Record<string, string> } = {},
): RunningStep {
  const t0 = performance.now();
  const env = { ...(opts.baseEnv ?? Deno.env.toObject()), ...spec.environment.env, ...step.env };
  const cwd = spec.environment.workdir && !spec.environment.base
    ? (spec.environment.workdir.startsWith("/")
      ? spec.environment.workdir
      : `${spec.dir}/${spec.environment.workdir}`)
    : spec.dir;
  const p = spawnGroup(step.run, { cwd, env });
  const pump = async (s: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) (opts.onLine?.(buf.slice(0, i)), buf = buf.slice(i + 1));
    }
    if (buf) opts.onLine?.(buf);
  };
  const done = (async () => {
    const [st] = await Promise.all([p.status, pump(p.stdout), pump(p.stderr)]);
    const code = st.signal ? 128 + 15 : st.code;
    if (code === 0) recordStep(spec, hash, { index: step.index, run: step.run });
    return { index: step.index, hash, code, ms: performance.now() - t0 };
  })();
  return {
    done,
    stop: async (graceMs = 2000) => {
      await stopGroup(p.pid, p.status, graceMs);
    },
  };
}

/** Writes the step cache record of `hash` atomically. */
export function recordStep(spec: EnvSpec, hash: string, info: Record<string, unknown>): void {
  const dir = `${spec.dir}/.hd/steps`;
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = `${dir}/.${hash}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify({ hash, ...info, at: new Date().toISOString() }));
  Deno.renameSync(tmp, stepRecordPath(spec, hash));
}

/**
 * Sandboxed environments (hd.toml with a `base`): the base image is pulled (when not in the
 * store) and its layers materialized; each build step whose hash is recorded (`builds/<hash>`) is
 * skipped, any other runs in the sandbox on top of the layers below it, and its overlay upperdir
 * (minus `[build].cache` dirs and the sandbox's own mount points) becomes a new layer in the CAS.
 * During a step the project is the lower layer of an overlay at the working directory, so what a
 * step writes there (node_modules, dist) lands in its layer, not in the project. A failing step
 * keeps nothing and names the step, its exit code and its last output lines.
 *
 * Build stages (`stage`, `image`, `copy`; see {@link stepPlan}): a stage's steps run on their
 * image's layers and the earlier layers of their stage, never part of the environment's root; a
 * copy step's layer is paths copied from a stage's root (see {@link runCopy}).
 *
 * The environment's root is an overlay of the step layers over the base layers with the
 * environment's writable layer (`.hd/sandbox/upper`) on top, mounted at `.hd/sandbox/root` and
 * reused while its layers stay the same; the project is bind-mounted at the working directory
 * (default /app), with what the steps produced there (e.g. /app/node_modules) kept visible.
 *
 * @example
 * ```ts
 * import { prepareEnv, mountEnv, envSandbox } from "./sandbox_steps.ts";
 * import { spawnSandbox } from "../sandbox/container.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec, StepCopySpec } from "../config/types.ts";
 * declare const store: Store;
 * declare const spec: EnvSpec;
 * const env = await prepareEnv(store, spec, { onLine: console.log });
 * const root = mountEnv(env);
 * spawnSandbox(envSandbox(env, root.target, ["sh"]));
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { CA_CERTS_HINT, tlsInterception } from "./ca_certs.ts";
import type { Store } from "../cas/store.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import type { PulledImage } from "../oci/image.ts";
import { type CompiledEnv, compileEnv } from "../env/compile.ts";
import type { StepHash } from "../env/step_hashes.ts";
import type { EnvSpec, StepCopySpec } from "../config/types.ts";
import {
  captureFarm,
  captureLayer,
  type FarmEntry,
  farmSnapshot,
  materializeLayer,
  uniqueLayers,
} from "../sandbox/layers.ts";
import {
  isMountPoint,
  mountRootfs,
  overlayAvailable,
  type Rootfs,
  unmountRootfs,
} from "../sandbox/rootfs.ts";
import {
  decideLayers,
  fuseAvailable,
  type LayerMount,
  layerMountLive,
  startLayerMount,
  stopLayerMount,
  symlinkInState,
} from "./lazy_layers.ts";
import { forceUnmount } from "../mount/manager.ts";
import {
  type ProcessUser,
  type SandboxOptions,
  spawnSandbox,
  stopSandbox,
} from "../sandbox/container.ts";
import { resolveUserInRoot } from "./image_services.ts";
import { checkSandboxPath, mkdirInRoot, resolveInRoot } from "../sandbox/inroot.ts";
import { othersRunningIn, sweepContainers } from "../sandbox/runc.ts";
import { cacheBinds, cachedLayer, cacheTarget, recordLayer, stepBaseId } from "./step_cache.ts";
import { layerFromRemote } from "./remote_steps.ts";
import type { RemoteCache } from "../remote/cache.ts";
import { aptLayer } from "./apt_layer.ts";
import { exists } from "../sys/fs.ts";
import { isAlive } from "../sys/proc.ts";
import { type StepPlan, stepPlan, type StepRoot } from "./step_plan.ts";

export { stepDeps, type StepPlan, stepPlan, type StepRoot } from "./step_plan.ts";

/** Default working directory inside a sandboxed environment. */
export const DEFAULT_WORKDIR = "/app";

/** What happened to one step. */
export interface SandboxStepResult {
  index: number;
  run: string;
  hash: string;
  /** Id of the output layer tree. */
  layer: string;
  cached: boolean;
  ms: number;
  /** The build stage of the step (its layer is not part of the environment's root), or null. */
  stage?: string | null;
}

/** A prepared environment: image, compiled spec, and the layers of its root, lowest first. */
export interface SandboxEnv {
  spec: EnvSpec;
  store: Store;
  image: PulledImage;
  compiled: CompiledEnv;
  /** Layer tree ids, lowest first: base image layers, then step outputs. */
  layers: string[];
  steps: SandboxStepResult[];
  workdir: string;
  /** Variables: the image's Env, [environment].env, HD_ENV. */
  env: Record<string, string>;
  /** Milliseconds spent: pull/load, compile, materialize, steps. */
  timings: Record<string, number>;
  /** Layers served lazily (see lazy_layers.ts): {@link serveEnvLayers} before mountEnv. */
  lazy?: boolean;
  /** Lazy layers: the FUSE server projecting `layers` (absent: materialized layer dirs). */
  layerMount?: LayerMount;
}

/** What running a step needs: the environment with the layers below the step. */
export type StepContext =
  & Pick<SandboxEnv, "store" | "spec" | "workdir" | "layers" | "env">
  & Partial<Pick<SandboxEnv, "lazy">>;

/** The step to run: its hash, index and spec. */
export type StepToRun = Pick<StepHash, "id" | "index" | "spec">;

/** A step that exited non-zero (its message names it, the code and the last lines). */
export class StepFailed extends HdError {
  constructor(message: string, hint: string, readonly stepCode: number) {
    super(message, hint);
  }
}

/** Options of {@link prepareEnv}. */
export interface PrepareOptions {
  /** Output lines of running steps. */
  onLine?: (line: string, step: StepToRun) => void;
  /** A step starts (cached or not). */
  onStep?: (step: StepHash, cached: boolean) => void;
  /** Progress notes (pull, materialize). */
  onNote?: (text: string) => void;
  /** Host CA certificates in steps (default: `$HD_HOST_CA` is set and not "0"). */
  caCerts?: boolean;
  /** Aborting stops a running step (its sandbox gets SIGTERM, then SIGKILL). */
  signal?: AbortSignal;
  /** The remote build cache, looked at before a step runs (src/runtime/remote_steps.ts). */
  remote?: RemoteCache | null;
}

/**
 * True when the host's CA certificates are asked for: `ca_certs = true` in [environment] of
 * `spec`, or `HD_HOST_CA=1` (still honoured).
 */
export function hostCaWanted(spec?: EnvSpec): boolean {
  if (spec?.environment.caCerts === true) return true;
  const v = Deno.env.get("HD_HOST_CA");
  return v !== undefined && v !== "" && v !== "0";
}

function imageEnv(img: PulledImage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of img.config.config?.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  out.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return out;
}

/**
 * The working directory inside the sandbox for `spec` (absolute and normalized; a relative
 * `workdir` is below /app). Throws for `..` and other unnormalized paths.
 */
export function sandboxWorkdir(spec: EnvSpec): string {
  const w = spec.environment.workdir;
  if (!w) return DEFAULT_WORKDIR;
  const abs = w.startsWith("/") ? w.replace(/\/+$/, "") || "/" : `${DEFAULT_WORKDIR}/${w}`;
  return checkSandboxPath(abs, "[environment].workdir");
}

/** The sandbox paths of the `[build].cache` entries of `spec` (each checked like the workdir). */
function checkedCacheBinds(
  store: Store,
  spec: EnvSpec,
  workdir: string,
): ReturnType<typeof cacheBinds> {
  for (const c of spec.build.cache) checkSandboxPath(cacheTarget(c, workdir), "[build].cache");
  return cacheBinds(store, spec.environment.name, spec.build.cache, workdir);
}

/** The pulled base image of `spec` (pulled now when not in the store). */
export async function baseImage(
  store: Store,
  spec: EnvSpec,
  onNote?: (t: string) => void,
): Promise<PulledImage> {
  const base = spec.environment.base;
  if (base === null) {
    throw new HdError(
      `Cannot prepare a sandbox for ${spec.environment.name}: hd.toml has no base image`,
      'add `base = "IMAGE"` to [environment]',
    );
  }
  // loaded here, not at start-up: node:zlib and the registry client cost every `hd up`
  const { loadImage, pullImage } = await import("../oci/image.ts");
  const have = loadImage(store, base);
  if (have) return have;
  onNote?.(`pulling ${base}`);
  return await pullImage(store, base);
}

/** The environment's variables and working directory over `image`, before any step. */
export function baseContext(
  spec: EnvSpec,
  image: PulledImage,
): Pick<SandboxEnv, "spec" | "image" | "layers" | "steps" | "workdir" | "env"> {
  return {
    spec,
    image,
    layers: image.layers.map((l) => l.tree),
    steps: [],
    workdir: sandboxWorkdir(spec),
    env: {
      ...imageEnv(image),
      HOME: "/root",
      ...spec.environment.env,
      HD_ENV: spec.environment.name,
    },
  };
}

/**
 * True when the environment's layers are served lazily (decideLayers over `[options] layers`,
 * `HD_LAYERS` and whether FUSE is here); a fallback is reported through `onNote`.
 */
export function lazyLayers(spec: EnvSpec, onNote?: (text: string) => void): boolean {
  const env = Deno.env.get("HD_LAYERS");
  const wants = (env || spec.options.layers) === "lazy";
  let fuse = { ok: true } as { ok: boolean; why?: string };
  if (wants) {
    // FUSE lowers need overlayfs (a hardlink farm cannot link across filesystems)
    const ov = overlayAvailable(Deno.env.get("TMPDIR") || "/tmp");
    fuse = ov.ok ? fuseAvailable() : { ok: false, why: `no overlayfs: ${ov.why}` };
  }
  const d = decideLayers({ option: spec.options.layers, env, fuse });
  if (d.note) onNote?.(d.note);
  return d.mode === "lazy";
}

/** Serves `env.layers` through the environment's layer server (lazy layers); sets `layerMount`. */
export async function serveEnvLayers(env: SandboxEnv): Promise<LayerMount> {
  env.layerMount = await startLayerMount(
    env.store,
    `${envSandboxDir(env.spec)}/layers`,
    env.layers,
  );
  return env.layerMount;
}

/** Pulls/loads the image, compiles, materializes the layers and runs the uncached steps. */
export async function prepareEnv(
  store: Store,
  spec: EnvSpec,
  opts: PrepareOptions = {},
): Promise<SandboxEnv> {
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (k: string) => {
    const n = performance.now();
    timings[k] = n - t;
    t = n;
  };
  const image = await baseImage(store, spec, opts.onNote);
  const images = await stageImages(store, spec, opts.onNote);
  lap("image");
  const compiled = await compileEnv(store, spec, {
    baseId: stepBaseId(store, image),
    imageIds: stageImageIds(store, images),
  });
  lap("compile");
  const lazy = lazyLayers(spec, opts.onNote);
  for (const id of lazy ? [] : image.layers.map((l) => l.tree)) {
    const m = materializeLayer(store, id);
    if (m.created) opts.onNote?.(`materialized layer ${id.slice(0, 12)} (${m.files} files)`);
  }
  const apt = await aptLayer(
    store,
    compiled.packages.map((p) => p.node),
    image.layers.map((l) => l.tree),
    opts.onNote,
  );
  lap("materialize");
  const prep: SandboxEnv = { ...baseContext(spec, image), store, compiled, timings };
  const { layers, steps } = prep;
  if (apt) (lazy || materializeLayer(store, apt), layers.push(apt));
  // steps run in waves: each waits only for the steps it depends on (see stepPlan), and runs on
  // the layers of those; the environment stacks the layers of its own steps in declaration order
  const plan = stepPlan(spec);
  const below = layers.slice();
  const results = new Map<number, SandboxStepResult>();
  const pending = new Map<number, Promise<SandboxStepResult>>();
  const runOne = async (s: StepHash): Promise<SandboxStepResult> => {
    await Promise.all([...plan[s.index].waits].map((j) => pending.get(j)!));
    const t0 = performance.now();
    const hit = cachedLayer(store, s.id) ??
      (opts.remote ? await layerFromRemote(store, opts.remote, s.id, opts.onNote) : null);
    opts.onStep?.(s, hit !== null);
    const layerOf = (j: number) => results.get(j)!.layer;
    const layer = hit ??
      await buildStep({ ...prep, lazy }, s, plan[s.index], below, images, layerOf, opts);
    if (!lazy) materializeLayer(store, layer);
    const r = {
      index: s.index,
      run: s.spec.run,
      hash: s.id,
      layer,
      cached: hit !== null,
      ms: performance.now() - t0,
      stage: s.spec.stage ?? null,
    };
    results.set(s.index, r);
    return r;
  };
  for (const s of compiled.steps) {
    const p = runOne(s);
    p.catch(() => {}); // awaited below; a failure is reported once
    pending.set(s.index, p);
  }
  const settled = await Promise.allSettled(pending.values());
  const failed = settled.find((x) => x.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  for (const s of compiled.steps) {
    const r = results.get(s.index)!;
    if (r.stage === null) layers.push(r.layer);
    steps.push(r);
  }
  lap("steps");
  prep.lazy = lazy;
  return prep;
}

/** The pulled images of the build stages of `spec` (pulled now when not in the store). */
export async function stageImages(
  store: Store,
  spec: Pick<EnvSpec, "build">,
  onNote?: (t: string) => void,
): Promise<Map<string, PulledImage>> {
  const out = new Map<string, PulledImage>();
  if (!spec.build.steps.some((s) => s.image !== undefined)) return out;
  // the image code loads only when a stage names an image (hd up stays light without)
  const { loadImage, pullImage } = await import("../oci/image.ts");
  for (const s of spec.build.steps) {
    if (s.image === undefined || out.has(s.image)) continue;
    let img = loadImage(store, s.image);
    if (!img) {
      (onNote?.(`pulling ${s.image} (stage ${s.stage})`), img = await pullImage(store, s.image));
    }
    for (const l of img.layers) materializeLayer(store, l.tree);
    out.set(s.image, img);
  }
  return out;
}

/** The ids standing for stage images in step hashes (their manifest digests, see stepBaseId). */
export function stageImageIds(
  store: Store,
  images: Map<string, PulledImage>,
): Record<string, string> {
  return Object.fromEntries([...images].map(([ref, img]) => [ref, stepBaseId(store, img)]));
}

/**
 * How to run step `index` of `plan`: its root's layers (the base's, `base`, or its stage image's,
 * then the layers of the steps it stacks on) and its variables (a stage's steps get their image's
 * Env, not [environment].env). `layerOf` gives the output layer of an earlier step.
 */
export function stepContext(
  env: StepContext,
  root: StepRoot,
  base: string[],
  images: Map<string, PulledImage>,
  layerOf: (index: number) => string,
): StepContext {
  const below = root.steps.map(layerOf);
  if (root.image === null) return { ...env, layers: [...base, ...below] };
  const img = images.get(root.image);
  if (!img) throw new Error(`stage image ${root.image} was not prepared`);
  return {
    ...env,
    layers: [...img.layers.map((l) => l.tree), ...below],
    env: { ...imageEnv(img), HOME: "/root", HD_ENV: env.spec.environment.name },
  };
}

/**
 * Builds one step: a copy step copies (see {@link runCopy}) from the roots `plan` names, any
 * other runs in the sandbox (see {@link runStep}). Returns its recorded layer.
 */
export async function buildStep(
  env: StepContext,
  step: StepToRun,
  plan: StepPlan,
  base: string[],
  images: Map<string, PulledImage>,
  layerOf: (index: number) => string,
  opts: PrepareOptions = {},
): Promise<string> {
  if (!step.spec.copy) {
    return await runStep(stepContext(env, plan.root, base, images, layerOf), step, opts);
  }
  const sources = step.spec.copy.map((c, i) => ({
    copy: c,
    layers: stepContext(env, plan.copies[i], base, images, layerOf).layers,
  }));
  return await runCopy(env.store, step, sources);
}

/**
 * A copy step: mounts each source root (read only in effect: its upper is thrown away), copies
 * `src` (resolved inside that root: its symlinks cannot lead out) with `cp -a` to `dst` in a fresh
 * directory, and records that directory as the step's layer. A directory's contents land in
 * `dst`; a file lands at `dst` (inside it when `dst` ends with `/`).
 */
export async function runCopy(
  store: Store,
  step: StepToRun,
  sources: { copy: StepCopySpec; layers: string[] }[],
): Promise<string> {
  const tmpRoot = `${store.root}/tmp`;
  Deno.mkdirSync(tmpRoot, { recursive: true });
  const tmp = Deno.makeTempDirSync({
    dir: tmpRoot,
    prefix: `build-${step.id.slice(0, 12)}-${Deno.pid}-`,
  });
  const out = `${tmp}/layer`;
  Deno.mkdirSync(out);
  try {
    for (const [i, { copy: c, layers }] of sources.entries()) {
      // one source at a time at <tmp>/root, where cleanStaleBuilds looks for a leftover mount
      const d = `${tmp}/src${i}`;
      for (const x of ["upper", "work"]) Deno.mkdirSync(`${d}/${x}`, { recursive: true });
      Deno.mkdirSync(`${tmp}/root`, { recursive: true });
      const root = mountRootfs({
        lowers: lowerDirs(store, layers),
        upper: `${d}/upper`,
        work: `${d}/work`,
        target: `${tmp}/root`,
      });
      try {
        const from = resolveInRoot(root.target, c.src);
        let st: Deno.FileInfo;
        try {
          st = Deno.statSync(from);
        } catch {
          throw new HdError(
            `Cannot build step ${
              step.index + 1
            } (copy from stage ${c.from}): ${c.src} does not exist in that stage`,
            `check where the steps of stage ${c.from} write (e.g. add \`ls -la ${
              c.src.replace(/\/[^/]*$/, "") || "/"
            }\` to its last step)`,
          );
        }
        let args: string[];
        if (st.isDirectory) {
          args = [`${from}/.`, mkdirInRoot(out, c.dst.replace(/\/+$/, "") || "/")];
        } else {
          const dst = c.dst.endsWith("/") ? `${c.dst}${c.src.replace(/^.*\//, "")}` : c.dst;
          mkdirInRoot(out, dst.replace(/\/[^/]*$/, "") || "/");
          args = [from, resolveInRoot(out, dst)];
        }
        const r = await new Deno.Command("cp", { args: ["-a", "--", ...args], stderr: "piped" })
          .output();
        if (!r.success) {
          throw new HdError(
            `Cannot build step ${step.index + 1} (copy ${c.src} from stage ${c.from}): ${
              new TextDecoder().decode(r.stderr).trim()
            }`,
            "check free space under the store",
          );
        }
      } finally {
        unmountRootfs(root);
      }
    }
    using _lease = store.lease(`build step ${step.index + 1}`);
    const layer = await store.withLock("shared", () => captureLayer(store, out).id);
    return recordLayer(store, step.id, layer);
  } finally {
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch { /* busy: left for the next gc */ }
  }
}

/** Layer directories of `layers` (lowest first) as overlay lowerdirs (highest first). */
function lowerDirs(store: Store, layers: string[]): string[] {
  return uniqueLayers(layers).reverse().map((id) => materializeLayer(store, id).dir);
}

/**
 * Who runs step `step` and where, in the root mounted at `root`: its `user` (else
 * [environment].user; absent: root, as before) resolved through the root's /etc/passwd, with
 * HOME its home; its `workdir` (absolute, or below the environment's `workdir`), created inside
 * the root. Throws a located HdError for an unknown user name.
 */
export function stepWhere(
  spec: Pick<EnvSpec, "environment">,
  step: Pick<EnvSpec["build"]["steps"][number], "user" | "workdir" | "index">,
  workdir: string,
  root: string,
): { cwd: string; user?: ProcessUser; env: Record<string, string> } {
  let cwd = workdir;
  if (step.workdir !== undefined) {
    cwd = checkSandboxPath(
      step.workdir.startsWith("/") ? step.workdir : `${workdir}/${step.workdir}`,
      `build.steps[${step.index}].workdir`,
    );
    if (cwd !== workdir) mkdirInRoot(root, cwd);
  }
  const name = step.user ?? spec.environment.user;
  if (name === undefined) return { cwd, env: {} };
  const u = resolveUserInRoot(root, name, `build step ${step.index + 1}`);
  return {
    cwd,
    user: { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids },
    env: { HOME: u.home },
  };
}

/** Runs one step in the sandbox and records its output layer; throws when it fails. */
export async function runStep(
  env: StepContext,
  step: StepToRun,
  opts: PrepareOptions = {},
): Promise<string> {
  const { store, spec, workdir } = env;
  const tmpRoot = `${store.root}/tmp`;
  Deno.mkdirSync(tmpRoot, { recursive: true });
  cleanStaleBuilds(tmpRoot);
  const tmp = Deno.makeTempDirSync({
    dir: tmpRoot,
    prefix: `build-${step.id.slice(0, 12)}-${Deno.pid}-`,
  });
  const dirs = {
    upper: `${tmp}/upper`,
    work: `${tmp}/work`,
    root: `${tmp}/root`,
    appUpper: `${tmp}/app-upper`,
    appWork: `${tmp}/app-work`,
  };
  for (const d of Object.values(dirs)) Deno.mkdirSync(d);
  let root: Rootfs | null = null;
  let lm: LayerMount | null = null;
  const tail: string[] = [];
  try {
    // lazy: the layers below the step come from a layer server of its own, stopped after it
    if (env.lazy) lm = await startLayerMount(store, `${tmp}/layers`, env.layers);
    root = mountRootfs({
      lowers: lm ? lm.lowers : lowerDirs(store, env.layers),
      upper: dirs.upper,
      work: dirs.work,
      target: dirs.root,
    });
    const caches = checkedCacheBinds(store, spec, workdir);
    // the working directory, resolved inside the root (an image's symlink cannot lead out)
    const wdHost = mkdirInRoot(dirs.root, workdir);
    // the step's own USER / WORKDIR (Dockerfile's, in effect for this RUN)
    const where = stepWhere(spec, step.spec, workdir, dirs.root);
    const sb: SandboxOptions = {
      root: dirs.root,
      argv: [...(spec.build.shell ?? ["sh", "-c"]), step.spec.run],
      env: { ...env.env, ...where.env, ...step.spec.env },
      cwd: where.cwd,
      ...(where.user ? { user: where.user } : {}),
      binds: caches,
      network: step.spec.network,
      caCerts: opts.caCerts ?? hostCaWanted(spec),
      hostname: spec.environment.name.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 63) || "hd",
      runDir: envRunDir(spec),
      kind: "step",
      project: spec.dir,
      overlays: root.mode === "overlay"
        ? [{
          lowers: [spec.dir, wdHost],
          upper: dirs.appUpper,
          work: dirs.appWork,
          dst: workdir,
        }]
        : undefined,
    };
    let before: Map<string, FarmEntry> | null = null;
    if (root.mode === "hardlink") {
      // no overlay for the working directory either: a copy of the project (never links to it)
      await copyProject(spec.dir, wdHost);
      before = farmSnapshot(dirs.root);
    }
    const child = spawnSandbox(sb, { stdin: "null", stdout: "piped" });
    const abort = () => void stopSandbox(child, 1000);
    opts.signal?.addEventListener("abort", abort);
    const pump = async (s: ReadableStream<Uint8Array>) => {
      let buf = "";
      const line = (l: string) => {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        opts.onLine?.(l, step);
      };
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) (line(buf.slice(0, i)), buf = buf.slice(i + 1));
      }
      if (buf) line(buf);
    };
    const [st] = await Promise.all([child.status, pump(child.stdout), pump(child.stderr)]);
    opts.signal?.removeEventListener("abort", abort);
    const code = st.signal ? 128 + 15 : st.code;
    if (code !== 0) {
      const ca = tail.some(tlsInterception) && !sb.caCerts ? `\n${CA_CERTS_HINT}` : "";
      throw new StepFailed(
        `Cannot build step ${step.index + 1} (\`${step.spec.run}\`): it exited with code ${code}`,
        `its last output lines:\n${tail.slice(-10).map((l) => `  ${l}`).join("\n")}\n` +
          "nothing of the failed step was kept; the previous environment still works" + ca,
        code,
      );
    }
    const wd = workdir.replace(/^\/+/, "");
    const cacheRel = spec.build.cache.map((c) => cacheTarget(c, workdir).replace(/^\/+/, ""));
    const sys = ["proc", "dev", "tmp", "sys", "etc/resolv.conf", "etc/ssl/certs"];
    // The captured layer has no ref until recordLayer: a lease keeps it from a gc till then.
    using _lease = store.lease(`build step ${step.index + 1}`);
    if (before !== null) {
      const farm = root.target;
      const layer = await store.withLock("shared", () =>
        captureFarm(store, farm, before!, {
          exclude: [...sys, "usr/local/share/ca-certificates", `${wd}/.hd`, ...cacheRel],
        }).id);
      return recordLayer(store, step.id, layer);
    }
    unmountRootfs(root);
    root = null;
    const layer = await store.withLock("shared", () => {
      const top = captureLayer(store, dirs.upper, {
        exclude: [...sys, "usr/local/share/ca-certificates", wd, ...cacheRel],
      });
      const inWd = cacheRel.filter((c) => c.startsWith(`${wd}/`)).map((c) =>
        c.slice(wd.length + 1)
      );
      const app = captureLayer(store, dirs.appUpper, { exclude: [".hd", ...inWd] });
      if (app.empty) return top.id;
      const t = Tree.load(store, top.id);
      t.setDir(wd, MemDir.lazy(app.id, store));
      return t.commit(store);
    });
    return recordLayer(store, step.id, layer);
  } finally {
    if (root) unmountRootfs(root);
    if (lm) await stopLayerMount(store, lm.dir);
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch { /* busy: left for the next gc */ }
  }
}

/** The hd process `pid` still holds what it made: a zombie too (deleting is the riskier answer). */
const holderAlive = (pid: number) => isAlive(pid, { zombies: "alive" });

/**
 * Removes what a build left behind when its hd process died mid-step: the step's root (unmounted)
 * and its partial upperdir, for every `<store>/tmp/build-<hash>-<pid>-*` whose pid is gone.
 */
export function cleanStaleBuilds(tmpRoot: string): string[] {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(tmpRoot)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    const m = /^build-[0-9a-f]{12}-(\d+)-/.exec(e.name);
    if (!m || holderAlive(Number(m[1]))) continue;
    const dir = `${tmpRoot}/${e.name}`;
    if (isMountPoint(`${dir}/root`)) unmountRootfs({ mode: "overlay", target: `${dir}/root` });
    // lazy layers: the step's own layer server outlived its hd; detached, it exits by itself
    if (!isMountPoint(`${dir}/root`)) forceUnmount(`${dir}/layers`);
    try {
      Deno.removeSync(dir, { recursive: true });
      removed.push(dir);
    } catch { /* still busy: next time */ }
  }
  return removed;
}

/** Copies the project (without `.hd`) into `dest` with GNU tar (owners, modes, times kept). */
async function copyProject(src: string, dest: string): Promise<void> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'tar -C "$1" --exclude=./.hd -cf - . | tar -C "$2" -xf -', "sh", src, dest],
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new HdError(
      `Cannot copy the project into the build root: ${new TextDecoder().decode(out.stderr)}`,
      "check free space",
    );
  }
}

/**
 * Paths below the working directory that the step layers provide (kept over the project). A
 * directory the project has too (not empty) is descended into, so `outputs = ["web/node_modules"]`
 * keeps `/app/web/node_modules` and leaves the rest of the project's `web/` visible; a declared
 * output, a directory the step replaced (opaque) or one the project lacks is kept whole.
 */
export function keptPaths(
  env: Pick<SandboxEnv, "store" | "workdir" | "steps"> & { spec: Pick<EnvSpec, "dir" | "build"> },
): string[] {
  const wd = env.workdir.replace(/^\/+/, "");
  const outputs = new Set(env.spec.build.steps.flatMap((s) => s.outputs));
  // a declared output is kept whole, and so is an empty directory (the mount point runc made)
  const isProjectDir = (rel: string): boolean => {
    if (outputs.has(rel)) return false;
    try {
      if (!Deno.lstatSync(`${env.spec.dir}/${rel}`).isDirectory) return false;
      for (const _ of Deno.readDirSync(`${env.spec.dir}/${rel}`)) return true;
      return false;
    } catch {
      return false;
    }
  };
  const out = new Set<string>();
  for (const s of env.steps) {
    if (s.stage) continue; // a stage's layer is not in the environment's root
    const d = Tree.load(env.store, s.layer).get(wd);
    if (d instanceof MemDir) {
      for (const rel of keptBelow(d, isProjectDir)) out.add(`${env.workdir}/${rel}`);
    }
  }
  return [...out].sort();
}

/**
 * The paths (relative to `dir`) a layer's directory keeps over the project: each entry, except
 * that a directory which the project also has as a directory (`isProjectDir`) and which the layer
 * did not make opaque is replaced by what is kept below it — unless that is more than `limit`
 * paths (each is a bind mount), when the directory is kept whole. Whiteouts are skipped.
 *
 * @example
 * ```ts
 * import { MemDir } from "../dag/tree.ts";
 * import { keptBelow } from "./sandbox_steps.ts";
 * const web = new MemDir();
 * web.entries.set("node_modules", new MemDir());
 * const top = new MemDir();
 * top.entries.set("web", web);
 * keptBelow(top, (p) => p === "web"); // ["web/node_modules"]
 * ```
 */
export function keptBelow(
  dir: MemDir,
  isProjectDir: (rel: string) => boolean,
  limit = KEPT_BELOW_LIMIT,
): string[] {
  const walk = (d: MemDir, prefix: string): string[] => {
    const out: string[] = [];
    for (const [name, e] of d.entries) {
      if (name.startsWith(".wh.")) continue;
      const rel = prefix + name;
      if (e instanceof MemDir && !e.entries.has(".wh..wh..opq") && isProjectDir(rel)) {
        const inner = walk(e, `${rel}/`);
        if (inner.length > limit) out.push(rel);
        else out.push(...inner);
      } else out.push(rel);
    }
    return out;
  };
  return walk(dir, "").sort();
}

/** At most this many kept paths below one directory the project has too (see keptBelow). */
export const KEPT_BELOW_LIMIT = 64;

/**
 * Where the environment's root and writable layer live: `<project>/.hd/sandbox`. Throws when a
 * component from `.hd` down is a symlink (see symlinkInState).
 */
export function envSandboxDir(spec: EnvSpec): string {
  const dir = `${spec.dir}/.hd/sandbox`;
  // the project is untrusted: a shipped .hd/ whose links lead out would put hd's mounts elsewhere
  const link = symlinkInState(dir);
  if (link) {
    throw new HdError(
      `Cannot use the sandbox state of ${spec.dir}: ${link} is a symlink`,
      "remove it (hd keeps its own state in .hd/; a project must not ship one)",
    );
  }
  return dir;
}

/** runc's state (`run/runc`) and the bundles of steps and `hd exec` (`run/bundles`). */
export function envRunDir(spec: EnvSpec): string {
  return `${envSandboxDir(spec)}/run`;
}

/**
 * Mounts the environment's root (overlay of its layers with `.hd/sandbox/upper` on top) at
 * `.hd/sandbox/root`, or reuses the mount when its layers are the same.
 */
export function mountEnv(env: SandboxEnv): Rootfs & { reused: boolean } {
  const t0 = performance.now();
  const dir = envSandboxDir(env.spec);
  const state = `${dir}/root.json`;
  const lm = env.layerMount;
  if (env.lazy && !lm) throw new Error("mountEnv: serveEnvLayers() first (lazy layers)");
  const lowers = lm ? lm.lowers : lowerDirs(env.store, env.layers);
  const target = `${dir}/root`;
  // a state file is untrusted (a repository can ship a .hd/): a malformed one counts as none
  const prev = readRootState(state);
  const spec = { lowers, upper: `${dir}/upper`, work: `${dir}/work`, target };
  // a lazy root is reused only over the same live server (a restarted one is a new mount)
  if (prev && prev.lowers.join(":") === lowers.join(":") && (!lm || lm.reused)) {
    if (prev.mode === "overlay" ? isMountPoint(target) : exists(target)) {
      return { ...spec, mode: prev.mode, ms: performance.now() - t0, reused: true };
    }
  }
  if (prev) unmountRootfs({ mode: prev.mode, target });
  else if (isMountPoint(target)) unmountRootfs({ mode: "overlay", target });
  const r = mountRootfs(spec);
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = `${state}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify({ lowers, mode: r.mode, lazy: !!lm }));
  Deno.renameSync(tmp, state);
  return { ...r, reused: false };
}

/** `.hd/sandbox/root.json` when it has the shape hd writes (lowers: strings, a known mode). */
function readRootState(path: string): { lowers: string[]; mode: Rootfs["mode"] } | null {
  try {
    const j = JSON.parse(Deno.readTextFileSync(path));
    if (
      Array.isArray(j?.lowers) && j.lowers.every((l: unknown) => typeof l === "string") &&
      (j.mode === "overlay" || j.mode === "hardlink")
    ) return { lowers: j.lowers, mode: j.mode };
  } catch { /* none, or not JSON */ }
  return null;
}

/** Unmounts the environment's root (nothing when it is not mounted). */
export function unmountEnv(spec: EnvSpec): void {
  const dir = envSandboxDir(spec);
  const mode: Rootfs["mode"] = readRootState(`${dir}/root.json`)?.mode ?? "overlay";
  unmountRootfs({ mode, target: `${dir}/root` });
  try {
    Deno.removeSync(`${dir}/root.json`);
  } catch { /* none */ }
}

/**
 * Unmounts the environment's overlay root when it is mounted (a hardlink farm, which is plain
 * files, stays for the next run); true when something was unmounted. Callers make sure nothing
 * runs in it (`hd down` after the services stopped, `hd exec` when no `hd up` runs).
 */
export function releaseEnvMount(spec: EnvSpec): boolean {
  const dir = envSandboxDir(spec);
  let mode: Rootfs["mode"] = "overlay";
  try {
    mode = JSON.parse(Deno.readTextFileSync(`${dir}/root.json`)).mode;
  } catch { /* default */ }
  if (mode !== "overlay" || !isMountPoint(`${dir}/root`)) return false;
  unmountRootfs({ mode, target: `${dir}/root` });
  try {
    Deno.removeSync(`${dir}/root.json`);
  } catch { /* none */ }
  return !isMountPoint(`${dir}/root`);
}

/**
 * Stops the lazy layer server of the environment (`.hd/sandbox/layers`) once its root is no longer
 * mounted; with `store`, through the store's mount registry (SIGTERM to its recorded server).
 */
export async function releaseLayerMount(spec: EnvSpec, store: Store | null): Promise<boolean> {
  const dir = envSandboxDir(spec);
  if (isMountPoint(`${dir}/root`)) return false;
  const lm = `${dir}/layers`;
  if (!isMountPoint(lm) && !(store && layerMountLive(store, lm))) return false;
  await stopLayerMount(store, lm);
  return !isMountPoint(lm);
}

/**
 * After the services stopped (`hd down`): deletes the runc states left by killed containers and
 * unmounts the overlay root unless an `hd exec` still runs in it.
 */
export async function releaseEnv(
  spec: EnvSpec,
  store: Store | null = null,
): Promise<{ deleted: string[]; unmounted: boolean }> {
  const state = `${envRunDir(spec)}/runc`;
  const deleted = await sweepContainers(state, true);
  // the environment's network, by its names (a crashed hd's leftovers included)
  await (await import("./network.ts")).teardownEnvNetwork(spec).catch(() => []);
  const unmounted = othersRunningIn(state, "") ? false : releaseEnvMount(spec);
  if (unmounted || !isMountPoint(`${envSandboxDir(spec)}/root`)) {
    await releaseLayerMount(spec, store);
  }
  return { deleted, unmounted };
}

/** Sandbox options to run `argv` in the mounted environment (project bound at the workdir). */
export function envSandbox(
  env: SandboxEnv,
  root: string,
  argv: string[],
  extra: Partial<SandboxOptions> = {},
): SandboxOptions {
  return {
    root,
    argv,
    env: env.env,
    cwd: env.workdir,
    binds: [
      { src: env.spec.dir, dst: env.workdir },
      ...checkedCacheBinds(env.store, env.spec, env.workdir),
    ],
    runDir: envRunDir(env.spec),
    kind: "exec",
    project: env.spec.dir,
    keep: keptPaths(env),
    network: "host",
    caCerts: hostCaWanted(env.spec),
    hostname: env.spec.environment.name.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 63) || "hd",
    ...extra,
  };
}

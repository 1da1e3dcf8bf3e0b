/**
 * The sandbox as the runtime of `hd up`'s loop (src/services/loop.ts) for an environment with a
 * `base`: the loop keeps hashing, watching and supervising; this object pulls the image, answers
 * "is step N cached" from `builds/<hash>`, runs steps in the sandbox on top of the layers below
 * them, mounts the environment's root and writes the services' sandbox configurations (the
 * services themselves are the wrapped specs of sandbox_services.ts). It implements the runtime
 * interface of runtime.ts, as the host (host.ts) does.
 *
 * @example
 * ```ts
 * import { SandboxRuntime } from "./sandbox.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * declare const hash: string;
 * const rt = new SandboxRuntime(spec, store);
 * await rt.prepare();                 // pull + materialize; rt.baseId for the step hashes
 * rt.isCached(0, hash) || await rt.runStep(0, hash, spec.build.steps[0], {}).done;
 * await rt.ready();                   // mount the root, write service configs
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import type { BuildStepSpec, EnvSpec, ServiceSpec } from "../config/types.ts";
import { materializeLayer } from "../sandbox/layers.ts";
import type { LoopRuntime, RunningStep, StepRun } from "./runtime.ts";
import { cachedLayer, recordLayer, stepBaseId } from "./step_cache.ts";
import {
  baseContext,
  baseImage,
  buildStep,
  lazyLayers,
  mountEnv,
  type SandboxEnv,
  serveEnvLayers,
  stageImageIds,
  stageImages,
  StepFailed,
  stepPlan,
} from "./sandbox_steps.ts";
import type { PulledImage } from "../oci/image.ts";
import { sandboxedServices, writeServiceConfigs } from "./sandbox_services.ts";
import { aptLayer } from "./apt_layer.ts";
import { ImageServices } from "./image_services.ts";
import { packagesFor } from "../env/compile.ts";
import { EnvNetwork } from "./network.ts";

/**
 * The sandbox runtime (see the module doc). A step's layer is recorded as it runs (nothing is left
 * for {@link SandboxRuntime.recordPending}); services are wrapped, so a change of their settings
 * takes a reload.
 *
 * @example
 * ```ts
 * import { SandboxRuntime } from "./sandbox.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const rt = new SandboxRuntime(spec, store, (line) => console.log(line));
 * await rt.prepare();
 * console.log(rt.baseId, rt.servicesInPlace); // "sha256:…" false
 * ```
 */
export class SandboxRuntime implements LoopRuntime {
  readonly services: Record<string, ServiceSpec>;
  readonly hostEnv: Record<string, string>;
  readonly servicesInPlace = false;
  readonly unrecorded = 0;
  #spec: EnvSpec;
  #store: Store;
  #env: SandboxEnv | null = null;
  #hashes = new Map<number, string>();
  #mounted = "";
  /** Layers between the image and the steps (the apt layer). */
  #base: string[] = [];
  /** Layers served by a FUSE layer server instead of materialized (lazy_layers.ts). */
  #lazy = false;

  #note: (line: string) => void;
  /** Services with an image of their own (image_services.ts). */
  #images: ImageServices;
  /** The environment's network (null: the services share the host's). */
  #net: EnvNetwork | null = null;
  /** The images of the build stages (`image` of steps), by reference. */
  #stageImages = new Map<string, PulledImage>();

  /** `note` receives progress lines (pull, materialized layers, apt packages). */
  constructor(spec: EnvSpec, store: Store, note: (line: string) => void = () => {}) {
    this.#spec = spec;
    this.#store = store;
    this.#note = note;
    const net = EnvNetwork.forSpec(spec);
    if (typeof net === "string") note(`services share the host's network: ${net}`);
    else this.#net = net;
    this.#images = new ImageServices(spec, store, note);
    this.services = this.#images.wrap(sandboxedServices(spec, this.#net), this.#net);
    this.hostEnv = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
  }

  get baseId(): string | undefined {
    return this.#env ? stepBaseId(this.#store, this.#env.image) : undefined;
  }

  /** Ids standing for the build stages' images in step hashes (set by prepare). */
  get imageIds(): Record<string, string> {
    return stageImageIds(this.#store, this.#stageImages);
  }

  /** The prepared environment (after {@link prepare}). */
  get env(): SandboxEnv {
    if (!this.#env) throw new Error("SandboxRuntime: prepare() first");
    return this.#env;
  }

  async prepare(): Promise<void> {
    const t0 = performance.now();
    const image = await baseImage(this.#store, this.#spec, this.#note);
    this.#stageImages = await stageImages(this.#store, this.#spec, this.#note);
    let made = 0;
    this.#lazy = lazyLayers(this.#spec, this.#note);
    for (const l of this.#lazy ? [] : image.layers) {
      made += materializeLayer(this.#store, l.tree).created ? 1 : 0;
    }
    const ctx = baseContext(this.#spec, image);
    const pk = await packagesFor(this.#spec);
    const apt = await aptLayer(this.#store, pk.packages.map((p) => p.node), ctx.layers, this.#note);
    this.#note(
      `base ${this.#spec.environment.base} (${image.layers.length} layers` +
        `${made ? `, ${made} materialized` : ""}${apt ? ", apt layer" : ""}, ${
          Math.round(performance.now() - t0)
        } ms)`,
    );
    if (apt) (this.#lazy || materializeLayer(this.#store, apt), this.#base.push(apt));
    this.#env = { ...ctx, store: this.#store, compiled: null as never, timings: {} };
    await this.#images.prepare(this.#lazy);
  }

  isCached(index: number, hash: string): boolean {
    this.#hashes.set(index, hash);
    return cachedLayer(this.#store, hash) !== null;
  }

  /** The output layer of step `index` (recorded under the hash it last had). */
  #layerOf(index: number): string {
    const h = this.#hashes.get(index);
    const l = h === undefined ? null : cachedLayer(this.#store, h);
    if (l === null) throw new Error(`step ${index + 1} has no recorded layer`);
    return l;
  }

  runStep(
    index: number,
    hash: string,
    step: BuildStepSpec,
    opts: { onLine?: (line: string) => void },
  ): RunningStep {
    this.#hashes.set(index, hash);
    const t0 = performance.now();
    const ac = new AbortController();
    const done = (async (): Promise<StepRun> => {
      try {
        const base = [...this.env.image.layers.map((l) => l.tree), ...this.#base];
        await buildStep(
          { ...this.env, lazy: this.#lazy },
          { id: hash, index, spec: step },
          stepPlan(this.#spec)[index],
          base,
          this.#stageImages,
          (i) => this.#layerOf(i),
          { onLine: (l) => opts.onLine?.(l), signal: ac.signal },
        );
        return { index, hash, code: 0, ms: performance.now() - t0 };
      } catch (e) {
        const code = e instanceof StepFailed ? e.stepCode : 1;
        if (!(e instanceof StepFailed)) opts.onLine?.(`hd: ${(e as Error).message}`);
        return { index, hash, code, ms: performance.now() - t0 };
      }
    })();
    return {
      done,
      stop: async () => {
        ac.abort();
        await done;
      },
    };
  }

  async ready(): Promise<boolean> {
    const env = this.env;
    const steps = this.#spec.build.steps.map((s, i) => {
      const hash = this.#hashes.get(i) ?? "";
      const layer = hash ? cachedLayer(this.#store, hash) : null;
      const stage = s.stage ?? null;
      return { index: i, run: s.run, hash, layer: layer ?? "", cached: true, ms: 0, stage };
    }).filter((s) => s.layer !== "");
    if (!this.#lazy) { for (const s of steps) materializeLayer(this.#store, s.layer); }
    env.steps = steps;
    env.layers = [
      ...env.image.layers.map((l) => l.tree),
      ...this.#base,
      ...steps.filter((s) => s.stage === null).map((s) => s.layer), // a stage's are not
    ];
    env.lazy = this.#lazy;
    if (this.#lazy) await serveEnvLayers(env);
    const root = mountEnv(env);
    if (this.#net) {
      const first = this.#net.lines.length === 0;
      await this.#net.up();
      if (first) { for (const l of this.#net.lines) this.#note(l); }
    }
    writeServiceConfigs(env, root.target, this.#net);
    this.#images.ready(this.#net);
    const key = env.layers.join(":");
    const changed = this.#mounted !== "" && this.#mounted !== key;
    this.#mounted = key;
    return await Promise.resolve(changed);
  }

  recordPending(): Promise<void> {
    return Promise.resolve();
  }

  /** A remote result is a layer like one this runtime built: recorded as `builds/<hash>`. */
  adopt(index: number, hash: string, tree: string): Promise<void> {
    this.#hashes.set(index, hash);
    recordLayer(this.#store, hash, tree);
    return Promise.resolve();
  }

  /** Removes the environment's network (forwarders, bridge, namespaces, NAT). */
  async close(): Promise<void> {
    await this.#net?.down();
  }
}

/**
 * The sandboxed build cache: a step whose hash (src/env/compile.ts) is recorded under the ref
 * `builds/<hash>` is skipped and its recorded output layer (a layer tree, whiteouts as `.wh.`
 * entries) is used. `[build].cache` directories live outside the layers, in
 * `<store>/cache/<env>/<path>`, bind-mounted into every step like BuildKit cache mounts.
 *
 * @example
 * ```ts
 * import { cachedLayer, recordLayer, cacheBinds } from "./step_cache.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const hash: string, newLayerId: string;
 * const layer = cachedLayer(store, hash) ?? recordLayer(store, hash, newLayerId);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { stepCacheRef } from "../env/report.ts";
import type { BindSpec } from "../sandbox/container.ts";
import { baseRefBytes } from "../env/step_hashes.ts";
import { loadImage, type PulledImage } from "../oci/image.ts";
import type { EnvSpec } from "../config/types.ts";

/**
 * The id standing for a pulled base image in step hashes: the image's manifest digest (which
 * names its config and layers), stored as a small blob. Not the image record, which holds the
 * time of the pull: step hashes must be the same on every machine for a shared (remote) cache.
 */
export function stepBaseId(store: Store, image: Pick<PulledImage, "manifestDigest">): string {
  return store.putObject(baseRefBytes(`@${image.manifestDigest}`));
}

/**
 * The ids the runtime hashes steps with, for the images already in the store (none is pulled):
 * the base's (`baseId`, absent when not pulled) and each build stage's (`imageIds`, by reference).
 * What `hd status`, `hd dag show` and `hd cache` pass to compileEnv to agree with `hd up`.
 */
export function pulledImageIds(
  store: Store,
  spec: Pick<EnvSpec, "environment" | "build">,
): { baseId?: string; imageIds: Record<string, string> } {
  const base = spec.environment.base;
  const image = base === null ? null : loadImage(store, base);
  const imageIds: Record<string, string> = {};
  for (const s of spec.build.steps) {
    const img = s.image === undefined ? null : loadImage(store, s.image);
    if (img) imageIds[s.image!] = stepBaseId(store, img);
  }
  return { ...(image ? { baseId: stepBaseId(store, image) } : {}), imageIds };
}

/** The output layer recorded for step `hash`, or null when the step has not run. */
export function cachedLayer(store: Store, hash: string): string | null {
  return store.getRef(stepCacheRef(hash));
}

/** Records `layer` as the output of step `hash`; returns `layer`. */
export function recordLayer(store: Store, hash: string, layer: string): string {
  store.setRef(stepCacheRef(hash), layer);
  return layer;
}

/** The path inside the sandbox of a `[build].cache` entry (`~` is /root; relative → workdir). */
export function cacheTarget(path: string, workdir: string): string {
  if (path === "~" || path.startsWith("~/")) return `/root${path.slice(1)}`.replace(/\/+$/, "");
  if (path.startsWith("/")) return path.replace(/\/+$/, "");
  return `${workdir.replace(/\/+$/, "")}/${path.replace(/^\.\//, "").replace(/\/+$/, "")}`;
}

/** Host directory holding cache `path` of environment `env`. */
export function cacheDir(store: Store, env: string, path: string, workdir: string): string {
  const t = cacheTarget(path, workdir).replace(/^\/+/, "").replace(/\//g, "%2F");
  return `${store.root}/cache/${encodeURIComponent(env)}/${t}`;
}

/** Bind mounts of every cache dir (host dirs are created). */
export function cacheBinds(
  store: Store,
  env: string,
  paths: string[],
  workdir: string,
): BindSpec[] {
  return paths.map((p) => {
    const src = cacheDir(store, env, p, workdir);
    Deno.mkdirSync(src, { recursive: true });
    return { src, dst: cacheTarget(p, workdir) };
  });
}

/**
 * Named volumes through the remote cache (`hd cache push --volumes`, `hd cache pull --volumes`;
 * docs/remote.md). A push uploads each snapshot `hd down` left (ref `volumes/<env>/<name>`) as
 * an artifact tagged `volume-<env>-<name>-<key>` (src/remote/wire.ts: {@link volumeTag}); a pull
 * downloads a snapshot (every pack checked by SHA-256, every object by BLAKE3, the whole tree
 * present) and only then sets the ref, under a lease; the next `hd up` checks the directory out
 * of it (volumes.ts). A pull never replaces a volume this machine has ({@link volumePullAction}).
 *
 * @example
 * ```ts
 * import type { Store } from "../cas/store.ts";
 * import type { RemoteCache } from "../remote/cache.ts";
 * import { pullVolumes, pushVolumes } from "./remote_volumes.ts";
 * declare const store: Store;
 * declare const rc: RemoteCache;
 * await pushVolumes(store, rc, "app");
 * await pullVolumes(store, rc, "app", ["data"]);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import type { EnvSpec } from "../config/types.ts";
import type { FetchStats, PushStats, RemoteCache } from "../remote/cache.ts";
import { volumeTag } from "../remote/wire.ts";
import { volumeDir, volumeRef, volumesToRemove } from "./volumes.ts";

/** What a pull does with one volume. */
export type VolumePullAction = "restore" | "same" | "keep-local" | "missing";

/**
 * What `hd cache pull --volumes` does with a volume: `missing` when the remote has none; `same`
 * when the local ref already names the remote tree; `keep-local` when this machine has the
 * volume (its directory, or a snapshot of another tree) — a pull never replaces local data
 * (`hd down -v` removes it first); `restore` otherwise (no directory, no ref).
 */
export function volumePullAction(
  hasDir: boolean,
  localTree: string | null,
  remoteTree: string | null,
): VolumePullAction {
  if (remoteTree === null) return "missing";
  if (localTree === remoteTree) return "same";
  if (hasDir || localTree !== null) return "keep-local";
  return "restore";
}

/** The named volumes environment `spec` uses: its services' `NAME:TARGET` and `[volumes.NAME]`. */
export function specVolumeNames(spec: EnvSpec): string[] {
  const names = new Set<string>(spec.volumes ?? []);
  for (const s of Object.values(spec.services)) {
    for (const m of s.volumes ?? []) {
      if (m.type === "volume" && m.source !== "") names.add(m.source);
    }
  }
  return [...names].sort();
}

/** One volume pushed. */
export interface VolumePush extends PushStats {
  name: string;
  tag: string;
  tree: string;
}

/** Pushes every snapshot (`volumes/<env>/<name>`) of environment `env`; the ref's tree each. */
export async function pushVolumes(
  store: Store,
  rc: RemoteCache,
  env: string,
): Promise<VolumePush[]> {
  const refs = store.listRefs().map(([n]) => n);
  const out: VolumePush[] = [];
  for (const name of volumesToRemove(env, [], refs)) {
    const tree = store.getRef(volumeRef(env, name));
    if (tree === null) continue;
    const st = await rc.pushVolume(env, name, tree);
    out.push({ ...st, name, tag: volumeTag(env, name), tree });
  }
  return out;
}

/** One volume pulled (or not). */
export interface VolumePull extends Partial<FetchStats> {
  name: string;
  action: VolumePullAction;
  tree?: string;
}

/**
 * Pulls the snapshots of volumes `names` of environment `env` that this machine lacks: each is
 * downloaded and checked whole under a lease, and its ref `volumes/<env>/<name>` set only then.
 */
export async function pullVolumes(
  store: Store,
  rc: RemoteCache,
  env: string,
  names: string[],
): Promise<VolumePull[]> {
  const out: VolumePull[] = [];
  for (const name of names) {
    using _lease = store.lease(`remote volume ${env}/${name}`);
    const ix = await rc.lookupVolume(env, name);
    const ref = volumeRef(env, name);
    let hasDir = false;
    try {
      hasDir = Deno.lstatSync(volumeDir(store, env, name)) !== null;
    } catch { /* none */ }
    const action = volumePullAction(hasDir, store.getRef(ref), ix?.tree ?? null);
    if (action !== "restore") {
      out.push({ name, action, tree: ix?.tree });
      continue;
    }
    const stats = await rc.fetch(ix!); // throws unless the whole tree is in the store, verified
    store.setRef(ref, ix!.tree);
    out.push({ name, action, tree: ix!.tree, ...stats });
  }
  return out;
}

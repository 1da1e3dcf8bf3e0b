/**
 * The remote cache (src/remote) as the runtimes and `hd up`'s loop use it: which remote is in
 * force ({@link remoteRef}: `--cache`, then `HD_REMOTE_CACHE`, then hd.toml's `[remote] cache`),
 * taking a downloaded result before a step would run ({@link fromRemote}), pushing after it ran
 * ({@link pushStep}), and writing a host step's outputs into the project ({@link placeOutputs}).
 *
 * A remote that fails (unreachable, refused, damaged bytes) never fails `hd up`: the step runs
 * here instead and one line says why. `hd cache` commands report the same errors and exit 1.
 *
 * @example
 * ```ts
 * import { remoteRef } from "./remote_steps.ts";
 * console.log(remoteRef({ flag: undefined, env: "reg:5000/c", toml: "reg:5000/t" })); // reg:5000/c
 * ```
 * @module
 */
import { privateDir } from "../sys/fs.ts";
import type { Store } from "../cas/store.ts";
import { checkoutTree } from "../dag/checkout.ts";
import { stepCacheRef } from "../env/report.ts";
import type { BuildStepSpec, EnvSpec } from "../config/types.ts";
import { openRemoteCache, type RemoteCache, restoreStep } from "../remote/cache.ts";
import type { LoopRuntime } from "./runtime.ts";
import { recordLayer } from "./step_cache.ts";

/**
 * The remote cache reference in force, or null: the `--cache` flag, else `HD_REMOTE_CACHE`, else
 * hd.toml's `[remote] cache`. `off` (or an empty value) at any level turns it off there.
 */
export function remoteRef(
  src: { flag?: string; env?: string; toml?: string | null },
): string | null {
  for (const v of [src.flag, src.env, src.toml]) {
    if (v === undefined || v === null) continue;
    return v === "" || v === "off" ? null : v;
  }
  return null;
}

/** The remote cache of `spec` (null when none is configured). */
export function specRemote(store: Store, spec: EnvSpec, flag?: string): RemoteCache | null {
  const ref = remoteRef({
    flag,
    env: Deno.env.get("HD_REMOTE_CACHE"),
    toml: spec.remote?.cache ?? null,
  });
  return ref ? openRemoteCache(store, ref) : null;
}

/**
 * Looks step `index` (`hash`) up in the remote; on a hit downloads it and has the runtime adopt
 * it. Returns a line to print: `hit …`, or null on a miss; a failure is a line starting "warning"
 * (and the step runs).
 */
export async function fromRemote(
  rt: LoopRuntime,
  store: Store,
  rc: RemoteCache,
  index: number,
  hash: string,
): Promise<{ hit: boolean; line: string | null }> {
  if (!rt.adopt) return { hit: false, line: null };
  try {
    const t0 = performance.now();
    const r = await restoreStep(store, rc, hash, (tree) => rt.adopt!(index, hash, tree));
    if (!r) return { hit: false, line: null };
    return {
      hit: true,
      line: `step ${index + 1} from the remote cache (${hash.slice(0, 12)}, ${r.stats.packs} ` +
        `pack(s), ${r.stats.bytes} bytes, ${Math.round(performance.now() - t0)} ms)`,
    };
  } catch (e) {
    return {
      hit: false,
      line: `warning: remote cache ${rc.describe}: ${(e as Error).message}; running the step`,
    };
  }
}

/**
 * For the sandbox's `prepareEnv` (`hd shell`, `hd exec`): step `hash`'s layer from the remote,
 * recorded as `builds/<hash>`, or null (a miss, or a failure noted in one line: the step runs).
 */
export async function layerFromRemote(
  store: Store,
  rc: RemoteCache,
  hash: string,
  note?: (line: string) => void,
): Promise<string | null> {
  try {
    const r = await restoreStep(store, rc, hash, (tree) => void recordLayer(store, hash, tree));
    if (r) note?.(`step ${hash.slice(0, 12)} from the remote cache (${r.stats.bytes} bytes)`);
    return r?.tree ?? null;
  } catch (e) {
    note?.(`warning: remote cache ${rc.describe}: ${(e as Error).message}; running the step`);
    return null;
  }
}

/** Pushes the recorded result of step `hash` (after it ran); a line to print. */
export async function pushStep(store: Store, rc: RemoteCache, hash: string): Promise<string> {
  const tree = store.getRef(stepCacheRef(hash));
  if (!tree) return `warning: step ${hash.slice(0, 12)} has no recorded result to push`;
  try {
    const s = await rc.push(hash, tree);
    return `pushed step ${hash.slice(0, 12)} to ${rc.describe} (${s.uploaded} pack(s), ` +
      `${s.bytes + s.metaBytes} bytes; ${s.skipped} pack(s) already there)`;
  } catch (e) {
    return `warning: cannot push step ${hash.slice(0, 12)} to ${rc.describe}: ${
      (e as Error).message
    }`;
  }
}

/**
 * Writes a host step's outputs from `tree` (a Dir holding each declared output at its path) into
 * the project: checked out under `.hd/` first, then each output renamed over the old one, so a
 * failure leaves the old outputs (never a half-written one).
 */
export function placeOutputs(store: Store, spec: EnvSpec, step: BuildStepSpec, tree: string): void {
  privateDir(`${spec.dir}/.hd`); // refuses a shipped .hd that links out of the project
  const tmp = Deno.makeTempDirSync({ dir: `${spec.dir}/.hd`, prefix: "remote-" });
  try {
    checkoutTree(store, tree, tmp);
    for (const o of step.outputs) {
      try {
        Deno.lstatSync(`${tmp}/${o}`);
      } catch {
        continue; // the step did not make this one
      }
      const dest = `${spec.dir}/${o}`;
      Deno.mkdirSync(dest.slice(0, dest.lastIndexOf("/")), { recursive: true });
      try {
        Deno.removeSync(dest, { recursive: true });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      Deno.renameSync(`${tmp}/${o}`, dest);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

/**
 * `hd up -d` when the environment is already up: compare the hd.toml on disk with the
 * configuration the running supervisor uses, and say what applying it takes.
 *
 * @example
 * ```ts
 * import { sameConfig } from "./reconcile.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const running: EnvSpec, onDisk: EnvSpec;
 * if (sameConfig(running, onDisk)) console.log("up to date");
 * ```
 * @module
 */
import type { EnvSpec } from "../config/types.ts";

/** The configuration of `spec` as text, without source positions (moving a line changes nothing). */
export function configText(spec: EnvSpec): string {
  return JSON.stringify(spec, (k, v) => (k === "at" ? undefined : v));
}

/** True when `a` and `b` configure the same environment (positions aside). */
export function sameConfig(a: EnvSpec, b: EnvSpec): boolean {
  return configText(a) === configText(b);
}

/** What a reconcile did, as the control socket answers it. */
export interface ReconcileResult {
  /** True when hd.toml was already what the supervisor runs. */
  upToDate: boolean;
  /** How a changed hd.toml was applied: by the watcher (in place or by a reload), or a reload. */
  applied: "watcher" | "reload" | null;
  /** Services named that were not running and were started. */
  started: string[];
}

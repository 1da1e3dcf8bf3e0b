/**
 * A build step run on the host is cached when its record `.hd/steps/<hash>.json` exists and its
 * declared outputs do: where that record is, and the check. Used by the host runtime
 * (src/runtime/host.ts) and by the services started before the session loads
 * (src/services/prespawn.ts), which must not load the host runtime's modules.
 *
 * @example
 * ```ts
 * import { isStepCached } from "./step_record.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * console.log(isStepCached(spec, spec.build.steps[0], "ab12"));
 * ```
 * @module
 */
import type { BuildStepSpec, EnvSpec } from "../config/types.ts";

/**
 * Path of the record of a successful run of step `hash`.
 *
 * @example
 * ```ts
 * import { stepRecordPath } from "./step_record.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * console.log(stepRecordPath(spec, "ab12")); // <project>/.hd/steps/ab12.json
 * ```
 */
export function stepRecordPath(spec: EnvSpec, hash: string): string {
  return `${spec.dir}/.hd/steps/${hash}.json`;
}

/**
 * True when step `hash` ran successfully here and its declared outputs still exist.
 *
 * @example
 * ```ts
 * import { isStepCached } from "./step_record.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * declare const store: Store;
 * const fresh = !isStepCached(spec, spec.build.steps[0], "ab12");
 * ```
 */
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

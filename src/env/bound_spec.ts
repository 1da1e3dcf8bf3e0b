/**
 * hd.toml parsed for a proof that binds it (src/env/quick_status.ts): the parse records which
 * environment variables it read, and the binding says whether the project is without images
 * (`plain`: no `base`, no step with an image) and when the parse read its files (the process's
 * start). `hd status` and `hd up` parse this way, so that either can save the proof the other
 * (and a no-change `hd up`'s early start, src/services/prespawn.ts) answers from.
 *
 * @example
 * ```ts
 * import { loadBoundSpec } from "./bound_spec.ts";
 * const { spec, bind } = loadBoundSpec("/work/app/hd.toml");
 * console.log(spec.environment.name, bind.plain, bind.envNames);
 * ```
 * @module
 */
import { loadSpec } from "../config/parse.ts";
import type { EnvSpec } from "../config/types.ts";
import { recordingEnv, type SpecBinding } from "./quick_status.ts";

/** Parses the hd.toml at `file` (absolute), recording what a binding proof needs. */
export function loadBoundSpec(file: string): { spec: EnvSpec; bind: SpecBinding } {
  const env = recordingEnv();
  const spec = loadSpec(file, { env: env.env });
  return {
    spec,
    bind: {
      plain: spec.environment.base === null && spec.build.steps.every((x) => !x.image),
      envNames: env.names(),
      readAtMs: performance.timeOrigin,
    },
  };
}

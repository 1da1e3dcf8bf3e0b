/**
 * Which of a project's files hd tracks: `[files]` include and exclude, the default excludes, and
 * every declared step output (a step's output is not its own input). One place, so that a scan
 * (src/env/compile.ts), the watcher and a status worked out from the proof
 * (src/env/proof_update.ts) take the same files.
 *
 * @example
 * ```ts
 * import { trackedFilter } from "./tracked.ts";
 * import type { EnvSpec } from "../config/types.ts";
 * declare const spec: EnvSpec;
 * const tracked = trackedFilter(spec).includesFile("src/app.js");
 * ```
 * @module
 */
import { PathFilter } from "../scan/filter.ts";
import type { EnvSpec } from "../config/types.ts";

/** The filter of `spec`'s tracked files, with `extraExclude` (`hd up --exclude`) besides. */
export function trackedFilter(spec: EnvSpec, extraExclude: readonly string[] = []): PathFilter {
  const outputs = spec.build.steps.flatMap((s) => s.outputs);
  return new PathFilter(spec.files.include, [...spec.files.exclude, ...outputs, ...extraExclude]);
}

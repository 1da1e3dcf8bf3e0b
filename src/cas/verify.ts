/**
 * Verification: re-reads every stored object and manifest, checks that its bytes hash to its id,
 * and follows the refs to find ids that are referenced but missing.
 *
 * @example
 * ```ts
 * import { verifyStore } from "./verify.ts";
 * import type { Store } from "./store.ts";
 * import type { ReferenceFn } from "./gc.ts";
 * declare const store: Store;
 * declare const references: ReferenceFn; // e.g. dagReferences from src/dag/refs.ts
 * const r = verifyStore(store, references);
 * if (r.corrupt.length || r.missing.length) Deno.exit(1);
 * ```
 * @module
 */
import { CorruptObjectError } from "./errors.ts";
import { markReachable, type ReferenceFn } from "./gc.ts";
import type { ObjectKind, Store } from "./store.ts";

/** Result of {@link verifyStore}. */
export interface VerifyReport {
  checkedObjects: number;
  checkedManifests: number;
  checkedBytes: number;
  /** Damaged entries with their path and what is wrong. */
  corrupt: { id: string; kind: ObjectKind; path: string; why: string }[];
  /** Ids referenced from a ref but not in the store. */
  missing: string[];
  /** Those of `missing` that are manifests. */
  missingManifests: string[];
}

/** Checks the whole store; `onProgress` is called with the count checked so far. */
export function verifyStore(
  store: Store,
  references: ReferenceFn,
  onProgress?: (checked: number) => void,
): VerifyReport {
  const report: VerifyReport = {
    checkedObjects: 0,
    checkedManifests: 0,
    checkedBytes: 0,
    corrupt: [],
    missing: [],
    missingManifests: [],
  };
  const bad = new Set<string>();
  for (const kind of ["objects", "manifests"] as const) {
    for (const id of store.list(kind)) {
      try {
        const b = kind === "objects" ? store.getObject(id) : store.getManifest(id);
        report.checkedBytes += b instanceof Uint8Array ? b.length : 0;
      } catch (e) {
        const why = e instanceof CorruptObjectError
          ? e.message.replace(/^.*corrupt \((.*)\) at .*$/, "$1")
          : (e as Error).message;
        report.corrupt.push({
          id,
          kind,
          path: e instanceof CorruptObjectError ? e.path : store.path(kind, id),
          why,
        });
        bad.add(id);
      }
      if (kind === "objects") report.checkedObjects++;
      else report.checkedManifests++;
      onProgress?.(report.checkedObjects + report.checkedManifests);
    }
  }
  for (const b of store.brokenPacks()) {
    report.corrupt.push({ id: "(pack index)", kind: "objects", path: b.path, why: b.why });
  }
  const live = markReachable(store, references);
  report.missing = live.missing.filter((id) => !bad.has(id));
  report.missingManifests = report.missing.filter((id) => live.missingManifests.has(id));
  return report;
}

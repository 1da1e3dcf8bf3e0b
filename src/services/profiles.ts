/**
 * Profiles (`profiles = ["debug"]` on a service; `hd up --profile NAME`, `HD_PROFILES`), as compose
 * has them: a service without profiles always starts; one with profiles starts when one of them is
 * active; a service named on the command line starts whatever its profiles, and its profiles are
 * then active (so its dependencies in the same profile start with it). An active service that
 * depends on an inactive one is an error naming the profile to add. The decision is
 * {@link selectServices}, pure and table-tested (tests/services/profiles_test.ts).
 *
 * @example
 * ```ts
 * import { selectServices } from "./profiles.ts";
 * declare const services: Record<string, import("../config/types.ts").ServiceSpec>;
 * const s = selectServices(services, ["debug"], []);
 * s.start; // the names to start (undefined: every service)
 * s.inactive; // name → its profiles, for `hd status`
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { ServiceSpec } from "../config/types.ts";

/** What {@link selectServices} decided. */
export interface Selection {
  /** The services to start (their dependencies come along), or undefined for every service. */
  start: string[] | undefined;
  /** Services not started because none of their profiles is active: name → profiles. */
  inactive: Record<string, string[]>;
  /** Profiles asked for that no service has (worth a note: a typo?). */
  unknownProfiles: string[];
}

/**
 * The services `hd up` starts for `profiles` (from `--profile` and `HD_PROFILES`) and `targets`
 * (services named on the command line), in hd.toml order. Throws an HdError when a service to
 * start depends on one that no active profile enables.
 */
export function selectServices(
  services: Record<string, Pick<ServiceSpec, "name" | "profiles" | "depends_on">>,
  profiles: readonly string[],
  targets: readonly string[],
): Selection {
  const names = Object.keys(services);
  const active = new Set(profiles);
  for (const t of targets) for (const p of services[t]?.profiles ?? []) active.add(p);
  const enabled = (n: string) => {
    const ps = services[n]?.profiles ?? [];
    return ps.length === 0 || ps.some((p) => active.has(p));
  };
  const known = new Set(names.flatMap((n) => services[n].profiles ?? []));
  const unknownProfiles = profiles.filter((p, i) => !known.has(p) && profiles.indexOf(p) === i);
  // what starts: the targets (or every enabled service) and their dependencies, each of which
  // must be enabled unless named itself
  const roots = targets.length ? [...targets] : names.filter(enabled);
  const named = new Set(targets);
  const closure = new Set<string>();
  const stack = roots.map((n) => [n, n] as [string, string]);
  while (stack.length) {
    const [n, from] = stack.pop()!;
    if (closure.has(n)) continue;
    if (!named.has(n) && !enabled(n)) {
      const ps = services[n]?.profiles ?? [];
      throw new HdError(
        `Cannot start ${from}: it depends on ${n}, which is only in profile${
          ps.length === 1 ? "" : "s"
        } ${ps.map((p) => `"${p}"`).join(", ")} (not active)`,
        `add --profile ${ps[0]} (or HD_PROFILES=${ps[0]}), or name ${n} on the command line`,
      );
    }
    closure.add(n);
    for (const d of services[n]?.depends_on ?? []) stack.push([d, n]);
  }
  const inactive: Record<string, string[]> = {};
  for (const n of names) {
    if (!enabled(n) && !closure.has(n)) inactive[n] = [...(services[n].profiles ?? [])];
  }
  const all = !targets.length && names.every(enabled);
  return {
    start: all ? undefined : targets.length ? [...targets] : roots,
    inactive,
    unknownProfiles,
  };
}

/**
 * The active profiles from the command line (`--profile`, repeatable) and `HD_PROFILES` (a comma
 * list), without blanks or repeats.
 *
 * @example
 * ```ts
 * import { profilesFrom } from "./profiles.ts";
 * profilesFrom(["debug"], "dev, debug"); // ["debug", "dev"]
 * ```
 */
export function profilesFrom(flags: readonly string[], env: string | undefined): string[] {
  const all = [...flags, ...(env ?? "").split(",")].map((p) => p.trim()).filter(Boolean);
  return [...new Set(all)];
}

/**
 * `targets` with each name of a scaled service (`scale = N`) replaced by its replicas, so that
 * `hd up api` starts `api-1`…`api-N`; other names are kept as they are (an unknown one is the
 * caller's error).
 *
 * @example
 * ```ts
 * import { replicaTargets } from "./profiles.ts";
 * declare const services: Record<string, import("../config/types.ts").ServiceSpec>;
 * replicaTargets(services, ["api"]); // ["api-1", "api-2"] when api has scale = 2
 * ```
 */
export function replicaTargets(
  services: Record<string, Pick<ServiceSpec, "replicaOf">>,
  targets: readonly string[],
): string[] {
  const out: string[] = [];
  for (const t of targets) {
    const replicas = services[t] === undefined
      ? Object.entries(services).filter(([, s]) => s.replicaOf?.name === t).map(([n]) => n)
      : [];
    for (const n of replicas.length ? replicas : [t]) if (!out.includes(n)) out.push(n);
  }
  return out;
}

/**
 * Two compose keys of `[services.NAME]` that decide how many of a service run: `profiles` (the
 * service starts only when one of them is active, src/services/profiles.ts) and `scale` (N
 * replicas `NAME-1`…`NAME-N`, each a service of its own: its own process group on the host, its own
 * container and address with a base). parse.ts reads them with {@link serviceProfiles} and
 * {@link serviceScale}, then {@link expandReplicas} turns each scaled service into its replicas: a
 * `depends_on` naming the service waits for every replica, and (sandboxed) each replica answers to
 * the service's name too.
 *
 * @example
 * ```ts
 * import { expandReplicas } from "./replica_keys.ts";
 * declare const services: Record<string, import("./types.ts").ServiceSpec>;
 * const out = expandReplicas(services, { api: 3 }, () => true); // api-1…api-3 instead of api
 * ```
 * @module
 */
import type { Position, ServiceSpec } from "./types.ts";

/** The keys of [services.NAME] this module reads. */
export const REPLICA_KEYS = ["profiles", "scale"] as const;

/** The largest `scale`. */
export const MAX_SCALE = 64;

/** What parse.ts's validator offers to this module (errors located at a key). */
export interface ReplicaReader {
  fail(path: string, what: string, hint?: string, preferKey?: boolean): never;
  strArray(path: string, v: unknown, example: string): string[];
  at(path: string, preferKey?: boolean): Position;
}

/** A profile name, as compose accepts it. */
export const PROFILE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** `profiles = ["debug", …]`: `{ profiles }`, or nothing when absent. */
export function serviceProfiles(
  v: ReplicaReader,
  path: string,
  t: Record<string, unknown>,
): { profiles?: string[] } {
  if (t.profiles === undefined) return {};
  const profiles = v.strArray(`${path}.profiles`, t.profiles, '["debug"]');
  profiles.forEach((p, i) => {
    if (!PROFILE_NAME.test(p)) {
      v.fail(
        `${path}.profiles[${i}]`,
        `profile "${p}" is not a valid name`,
        "use letters, digits, '_', '.' and '-', starting with a letter or digit",
      );
    }
  });
  return { profiles: [...new Set(profiles)] };
}

/** `scale = N` (1..{@link MAX_SCALE}), or null when absent. */
export function serviceScale(
  v: ReplicaReader,
  path: string,
  t: Record<string, unknown>,
): number | null {
  if (t.scale === undefined) return null;
  const raw = t.scale;
  const n = typeof raw === "bigint" ? Number(raw) : raw;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_SCALE) {
    v.fail(
      `${path}.scale`,
      `scale must be an integer from 1 to ${MAX_SCALE}, not ${
        typeof raw === "string" ? `"${raw}"` : String(raw)
      }`,
      typeof raw === "string" && /^\d+$/.test(raw)
        ? `remove the quotes: scale = ${raw}`
        : "e.g. scale = 3",
    );
  }
  return n;
}

/**
 * Why `service` cannot run `scale` replicas, or null: on the host (no sandbox) replicas share the
 * host's network, so a `port` would be declared N times; a fixed published host port cannot be
 * published N times either.
 */
export function scaleRefusal(
  service: Pick<ServiceSpec, "port" | "ports">,
  scale: number,
  onHost: boolean,
): { key: "port" | "ports"; what: string; hint: string } | null {
  if (scale <= 1) return null;
  if (onHost && service.port !== null) {
    return {
      key: "port",
      what: `scale = ${scale} with port ${service.port} on the host: the replicas would share ` +
        "the host's network and its one port",
      hint: 'remove port (use a healthcheck for readiness), or set base = "IMAGE" so that each ' +
        "replica has its own network",
    };
  }
  const fixed = (service.ports ?? []).find((p) => p.published !== 0);
  if (fixed) {
    return {
      key: "ports",
      what: `scale = ${scale} with the fixed host port ${fixed.published}: only one replica ` +
        "could publish it",
      hint: `publish a port without a host port ("${fixed.target}": a free one per replica), ` +
        "or scale = 1",
    };
  }
  return null;
}

/**
 * `services` with each service of `scales` (name → N) replaced by its replicas `NAME-1`…`NAME-N`
 * (in its place, in order), each `replicaOf` it; `depends_on` (and its conditions) naming it name
 * every replica instead. `sandboxed(name)` says whether the replicas get the service's name as an
 * alias (on the environment's network; the host has no names). Names must not clash (checked by
 * the caller with {@link replicaClash}).
 */
export function expandReplicas(
  services: Record<string, ServiceSpec>,
  scales: Record<string, number>,
  sandboxed: (name: string) => boolean,
): Record<string, ServiceSpec> {
  const names = (n: string): string[] =>
    scales[n] === undefined ? [n] : Array.from({ length: scales[n] }, (_, i) => `${n}-${i + 1}`);
  const out: Record<string, ServiceSpec> = {};
  for (const [n, s] of Object.entries(services)) {
    const depends_on = s.depends_on.flatMap(names);
    const conds = s.depends_conditions
      ? Object.fromEntries(
        Object.entries(s.depends_conditions).flatMap(([d, c]) => names(d).map((r) => [r, c])),
      )
      : undefined;
    const base: ServiceSpec = {
      ...s,
      depends_on,
      ...(conds ? { depends_conditions: conds } : {}),
    };
    const scale = scales[n];
    if (scale === undefined) {
      out[n] = base;
      continue;
    }
    names(n).forEach((r, i) => {
      out[r] = {
        ...structuredClone(base),
        name: r,
        replicaOf: { name: n, index: i + 1, scale },
        ...(sandboxed(n) ? { aliases: [...new Set([...(s.aliases ?? []), n])] } : {}),
      };
    });
  }
  return out;
}

/** A replica name that is also the name of a service, as `[replica, of]`, or null. */
export function replicaClash(
  names: readonly string[],
  scales: Record<string, number>,
): [string, string] | null {
  const all = new Set(names);
  for (const [n, k] of Object.entries(scales)) {
    for (let i = 1; i <= k; i++) if (all.has(`${n}-${i}`)) return [`${n}-${i}`, n];
  }
  return null;
}

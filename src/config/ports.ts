/**
 * Port checks made when hd.toml is read. On the host (no `base`, no image), every service shares
 * the host's network, so two services declaring the same `port` would race for it: the second one
 * fails at bind time (or, worse, a readiness check sees the first one's socket). That is an error
 * at load, naming both places.
 *
 * @example
 * ```ts
 * import { hostPortClash } from "./ports.ts";
 * hostPortClash([
 *   { name: "a", port: 3000, onHost: true, at: { file: "hd.toml", line: 3, column: 8 } },
 *   { name: "b", port: 3000, onHost: true, at: { file: "hd.toml", line: 6, column: 8 } },
 * ]); // { port: 3000, first: …a, second: …b }
 * ```
 * @module
 */
import type { Position } from "./types.ts";

/** A service's declared `port`, where it is written, and whether the service runs on the host. */
export interface DeclaredPort {
  name: string;
  port: number | null;
  /** True when the service shares the host's network (no base, no image). */
  onHost: boolean;
  at: Position;
}

/** Two host services declaring the same port, in declaration order. */
export interface PortClash {
  port: number;
  first: DeclaredPort;
  second: DeclaredPort;
}

/**
 * The first pair of host services declaring the same `port` (in declaration order), or null.
 * Sandboxed services have their own network namespace and never clash.
 */
export function hostPortClash(ports: DeclaredPort[]): PortClash | null {
  const seen = new Map<number, DeclaredPort>();
  for (const p of ports) {
    if (!p.onHost || p.port === null) continue;
    const first = seen.get(p.port);
    if (first) return { port: p.port, first, second: p };
    seen.set(p.port, p);
  }
  return null;
}

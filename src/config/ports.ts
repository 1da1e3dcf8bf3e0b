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

/** A `ports` entry read: the mapping, or why it is refused (and what to write instead). */
export type PortEntry =
  | { ok: true; hostIp: string; published: number; target: number }
  | { ok: false; why: string; hint: string };

/** The host address a published port listens on when the entry names none. */
export const DEFAULT_PUBLISH_IP = "127.0.0.1";

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function portNumber(s: string, zero = false): number | null {
  if (!/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return (n >= 1 || (zero && n === 0)) && n <= 65535 ? n : null;
}

/**
 * Reads compose's short syntax `[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]` (`"8080:3000"`,
 * `"127.0.0.1:9000:9000/tcp"`, `"3000"` = a free host port). The host address defaults to
 * {@link DEFAULT_PUBLISH_IP}, not compose's 0.0.0.0: on a developer's machine, binding every
 * interface would expose the app to the local network; `"0.0.0.0:8080:3000"` asks for it.
 * Ranges, IPv6 addresses and udp are refused with a reason.
 */
export function parsePortEntry(s: string): PortEntry {
  const example = 'e.g. "8080:3000", "127.0.0.1:9000:9000/tcp" or "3000"';
  let body = s.trim();
  const slash = body.lastIndexOf("/");
  if (slash >= 0) {
    const proto = body.slice(slash + 1).toLowerCase();
    body = body.slice(0, slash);
    if (proto === "udp" || proto === "sctp") {
      return {
        ok: false,
        why: `port "${s}": ${proto} is not supported (hd publishes tcp only)`,
        hint: "remove the entry, or publish the tcp port",
      };
    }
    if (proto !== "tcp") {
      return { ok: false, why: `port "${s}": unknown protocol "${proto}"`, hint: example };
    }
  }
  if (body.includes("[") || body.split(":").length > 3) {
    return { ok: false, why: `port "${s}": IPv6 host addresses are not supported`, hint: example };
  }
  if (body.includes("-")) {
    return { ok: false, why: `port "${s}": port ranges are not supported`, hint: example };
  }
  const parts = body.split(":");
  const target = portNumber(parts[parts.length - 1]);
  if (target === null) {
    return {
      ok: false,
      why: `port "${s}": the container port must be an integer from 1 to 65535`,
      hint: example,
    };
  }
  let hostIp = DEFAULT_PUBLISH_IP;
  let published = 0;
  if (parts.length === 3) {
    const m = IPV4.exec(parts[0]);
    if (!m || m.slice(1).some((o) => Number(o) > 255)) {
      return { ok: false, why: `port "${s}": "${parts[0]}" is not an IPv4 address`, hint: example };
    }
    hostIp = parts[0];
  }
  if (parts.length >= 2) {
    const p = parts[parts.length - 2] === "" ? 0 : portNumber(parts[parts.length - 2]);
    if (p === null) {
      return {
        ok: false,
        why: `port "${s}": the host port must be an integer from 1 to 65535`,
        hint: example,
      };
    }
    published = p;
  }
  return { ok: true, hostIp, published, target };
}

/** Two `ports` entries of the environment publishing the same host address and port, or null. */
export function publishedClash(
  entries: { name: string; hostIp: string; published: number; at: Position }[],
): { first: string; second: string; at: Position; key: string } | null {
  const seen = new Map<string, string>();
  for (const e of entries) {
    if (e.published === 0) continue;
    const wild = `0.0.0.0:${e.published}`;
    const key = `${e.hostIp}:${e.published}`;
    const hit = seen.get(key) ??
      (e.hostIp === "0.0.0.0"
        ? [...seen].find(([k]) => k.endsWith(`:${e.published}`))?.[1]
        : seen.get(wild));
    if (hit !== undefined) return { first: hit, second: e.name, at: e.at, key };
    seen.set(key, e.name);
  }
  return null;
}

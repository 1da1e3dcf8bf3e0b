/**
 * The environment's network: each sandboxed service in a network namespace of its own, attached
 * by a veth pair to one Linux bridge per running environment, as Docker's bridge network does.
 *
 * The plan — names, subnet, addresses, the commands and nftables rules — is a pure function
 * ({@link networkPlan}, {@link setupCommands}, {@link natRules}, {@link hostsFile},
 * {@link ownedLeftovers}); the `ip`/`nft` calls sit at the edge ({@link setupNetwork},
 * {@link teardownNetwork}).
 *
 * - **Names** come from the project directory's hash `ID` (6 hex digits): bridge `hd-ID`, host
 *   ends of the veth pairs `hvIDn`, namespaces `hd-ID-SERVICE` (under /run/netns, made by
 *   `ip netns add`, joined by runc through the OCI config's `linux.namespaces` path), nftables table
 *   `ip hd_ID`. Whatever carries those names is hd's; nothing else is ever deleted.
 * - **Subnet**: a /24 of 172.29.0.0/16 (then 10.89.0.0/16) picked from the hash and moved on when
 *   `ip route` already has an overlapping route; the bridge holds `.1`, each service a stable
 *   address from the hash of its name.
 * - **Outbound NAT**: an nftables table of hd's own with one `masquerade` rule for the subnet
 *   (nft rather than iptables: the table is hd's by name and is removed atomically with one
 *   command, and iptables here is iptables-nft anyway); `net.ipv4.ip_forward` is switched on and
 *   its previous value recorded in `/run/hd/net/ip_forward`, restored when the last hd bridge goes.
 * - **Declared ports answer on loopback listeners too**: inside each namespace, traffic from
 *   `eth0` to the service's `port` and published container ports is DNATed to 127.0.0.1
 *   (`route_localnet`), so a server bound to 127.0.0.1 (what hd's host mode allowed) stays
 *   reachable by name, by a published port and by readiness.
 *
 * @example
 * ```ts
 * import { networkPlan, setupNetwork, teardownNetwork } from "./network.ts";
 * const plan = networkPlan("/src/app", [{ name: "web", aliases: [], ports: [3000] }], []);
 * await setupNetwork(plan);
 * await teardownNetwork(plan.id);
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { shortHash } from "./runc.ts";

/** A service as the network sees it: its name, extra host names and the ports it serves. */
export interface NetService {
  name: string;
  aliases: string[];
  /** Container ports reachable from outside its namespace (DNATed to loopback inside). */
  ports: number[];
}

/** One service's place on the network. */
export interface NetEndpoint extends NetService {
  /** IPv4 address on the bridge. */
  address: string;
  /** Network namespace name (a file under /run/netns). */
  netns: string;
  /** Host end of the veth pair (on the bridge). */
  hostVeth: string;
  /** Temporary name of the namespace end before it becomes `eth0` inside. */
  peerVeth: string;
}

/** The whole network of an environment (see the module doc). */
export interface NetPlan {
  id: string;
  bridge: string;
  /** `a.b.c.0/24` */
  subnet: string;
  /** The bridge's own address (`.1`), the services' default route. */
  gateway: string;
  /** nftables table (family ip) holding the NAT rule. */
  table: string;
  services: NetEndpoint[];
}

/** Where netns mounts live (iproute2's directory). */
export const NETNS_DIR = "/run/netns";
/** Where hd keeps the ip_forward value it found before switching it on. */
export const FORWARD_SAVE = "/run/hd/net/ip_forward";

/** The 6-hex network id of the project at `projectDir`. */
export function networkId(projectDir: string): string {
  return shortHash(`net:${projectDir}`).slice(0, 6);
}

function ipToInt(ip: string): number {
  const p = ip.split(".").map(Number);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** `a.b.c.d/n` → [first, last] as unsigned integers; null for anything else (`default`). */
export function cidrRange(cidr: string): [number, number] | null {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(cidr);
  if (!m) return null;
  const bits = m[2] === undefined ? 32 : Number(m[2]);
  if (bits < 0 || bits > 32) return null;
  const size = 2 ** (32 - bits);
  const first = ipToInt(m[1]) - (ipToInt(m[1]) % size);
  return [first, first + size - 1];
}

/** True when the two CIDRs share an address. */
export function overlaps(a: string, b: string): boolean {
  const x = cidrRange(a);
  const y = cidrRange(b);
  return x !== null && y !== null && x[0] <= y[1] && y[0] <= x[1];
}

/** The candidate /24s in order for hash `h`: 256 of 172.29/16, then 256 of 10.89/16. */
function candidates(h: number): string[] {
  const out: string[] = [];
  for (const pre of ["172.29", "10.89"]) {
    for (let i = 0; i < 256; i++) out.push(`${pre}.${(h + i) % 256}.0/24`);
  }
  return out;
}

/**
 * The network of the project at `projectDir` for `services` (declaration order), given the
 * destinations `ip route` lists (`routed`; the environment's own bridge route is ignored, so that
 * an hd restarted on a live network keeps its subnet). Throws when every candidate is taken.
 */
export function networkPlan(
  projectDir: string,
  services: NetService[],
  routed: { dst: string; dev: string }[],
): NetPlan {
  const id = networkId(projectDir);
  const bridge = `hd-${id}`;
  const others = routed.filter((r) => r.dev !== bridge).map((r) => r.dst);
  const subnet = candidates(parseInt(id, 16)).find((c) => !others.some((o) => overlaps(c, o)));
  if (!subnet) {
    throw new HdError(
      "Cannot plan the environment's network: every /24 of 172.29.0.0/16 and 10.89.0.0/16 is routed",
      "remove unused routes (`ip route`) or stop other environments",
    );
  }
  const net = subnet.slice(0, subnet.lastIndexOf(".0/"));
  if (services.length > 253) {
    throw new HdError(
      `Cannot plan the environment's network: ${services.length} services do not fit in a /24`,
      "run at most 253 sandboxed services per environment",
    );
  }
  // stable addresses: each name hashes to a host number 2..254, probing upwards in sorted-name
  // order on a collision (adding a service moves no other unless it collided)
  const taken = new Set<number>();
  const host = new Map<string, number>();
  for (const name of services.map((s) => s.name).sort()) {
    let n = 2 + (parseInt(shortHash(name), 16) % 253);
    while (taken.has(n)) n = n === 254 ? 2 : n + 1;
    taken.add(n);
    host.set(name, n);
  }
  return {
    id,
    bridge,
    subnet,
    gateway: `${net}.1`,
    table: `hd_${id}`,
    services: services.map((s, i) => ({
      ...s,
      address: `${net}.${host.get(s.name)}`,
      netns: `${bridge}-${s.name}`,
      hostVeth: `hv${id}${i}`,
      peerVeth: `hp${id}${i}`,
    })),
  };
}

/** The nftables script of the outbound NAT of `plan` (one table of hd's own). */
export function natRules(plan: NetPlan): string {
  // forward: nothing routed from this bridge into another hd bridge (environments are isolated
  // from each other, as Docker's networks are); postrouting: masquerade what leaves the subnet
  return `table ip ${plan.table} {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${plan.bridge}" oifname "hd-*" oifname != "${plan.bridge}" drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${plan.subnet} ip daddr != ${plan.subnet} masquerade
  }
}
`;
}

/** The nftables script run inside a service's namespace: its ports from eth0 to 127.0.0.1. */
export function loopbackRules(ports: number[]): string | null {
  const uniq = [...new Set(ports)].sort((a, b) => a - b);
  if (uniq.length === 0) return null;
  // route_localnet would also accept packets a neighbour on the bridge addressed to 127.0.0.0/8
  // itself (CVE-2020-8558 in Kubernetes): those are dropped before the DNAT, so only the declared
  // ports reach the loopback
  return `table ip hd {
  chain raw {
    type filter hook prerouting priority raw; policy accept;
    iifname "eth0" ip daddr 127.0.0.0/8 drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "eth0" tcp dport { ${uniq.join(", ")} } dnat to 127.0.0.1
  }
}
`;
}

/** One command of the setup: argv and, for nft, the script on stdin. */
export interface NetCommand {
  argv: string[];
  stdin?: string;
}

/**
 * The commands that build `plan` on a clean machine, in order: one `ip -batch` on the host (bridge,
 * namespaces, veth pairs), one per namespace (eth0, addresses, routes), the loopback DNAT of
 * services with ports, then the NAT table. Batches keep it to a few processes (≈ 10 ms each).
 */
export function setupCommands(plan: NetPlan): NetCommand[] {
  const host = [
    `link add ${plan.bridge} type bridge`,
    `addr add ${plan.gateway}/24 dev ${plan.bridge}`,
    `link set ${plan.bridge} up`,
  ];
  for (const s of plan.services) {
    host.push(
      `netns add ${s.netns}`,
      `link add ${s.hostVeth} type veth peer name ${s.peerVeth}`,
      `link set ${s.peerVeth} netns ${s.netns}`,
      `link set ${s.hostVeth} master ${plan.bridge}`,
      `link set ${s.hostVeth} up`,
    );
  }
  const c: NetCommand[] = [{ argv: ["ip", "-batch", "-"], stdin: host.join("\n") + "\n" }];
  for (const s of plan.services) {
    const inside = [
      `link set ${s.peerVeth} name eth0`,
      `addr add ${s.address}/24 dev eth0`,
      "link set lo up",
      "link set eth0 up",
      `route add default via ${plan.gateway}`,
    ];
    c.push({ argv: ["ip", "-n", s.netns, "-batch", "-"], stdin: inside.join("\n") + "\n" });
    const lo = loopbackRules(s.ports);
    if (lo) {
      const script = "echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && exec nft -f -";
      c.push({ argv: ["ip", "netns", "exec", s.netns, "sh", "-c", script], stdin: lo });
    }
  }
  c.push({ argv: ["nft", "-f", "-"], stdin: natRules(plan) });
  return c;
}

/** The /etc/hosts every service of `plan` sees: loopback, then each service, name and aliases. */
export function hostsFile(plan: NetPlan): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    ...plan.services.map((s) => `${s.address}\t${[s.name, ...s.aliases].join(" ")}`),
  ];
  return lines.join("\n") + "\n";
}

/**
 * The nameservers of a resolv.conf text when every one of them is a loopback address (a local stub
 * such as systemd-resolved's 127.0.0.53, unreachable from a service's own namespace), else null.
 */
export function loopbackOnlyResolvers(resolvConf: string): string[] | null {
  const ns = resolvConf.split("\n").map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
  if (ns.length === 0) return null;
  return ns.every((a) => a.startsWith("127.") || a === "::1") ? ns : null;
}

/** What of the machine's links, namespaces and nft tables belongs to network `id`. */
export function ownedLeftovers(
  id: string,
  seen: { links: string[]; netns: string[]; tables: string[] },
): { links: string[]; netns: string[]; tables: string[] } {
  if (!/^[0-9a-f]{6}$/.test(id)) return { links: [], netns: [], tables: [] };
  return {
    // namespaces first: deleting one deletes its veth end, and with it the pair
    netns: seen.netns.filter((n) => n.startsWith(`hd-${id}-`)),
    links: seen.links.filter((l) => l === `hd-${id}` || new RegExp(`^hv${id}\\d+$`).test(l)),
    tables: seen.tables.filter((t) => t === `hd_${id}`),
  };
}

/** True when any link is an hd bridge (`hd-` and 6 hex digits). */
export function anyHdBridge(links: string[]): boolean {
  return links.some((l) => /^hd-[0-9a-f]{6}$/.test(l));
}

// ---- the edge: ip and nft -------------------------------------------------------------------

async function exec(cmd: NetCommand): Promise<{ ok: boolean; out: string; err: string }> {
  const p = new Deno.Command(cmd.argv[0], {
    args: cmd.argv.slice(1),
    stdin: cmd.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (cmd.stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(cmd.stdin));
    await w.close();
  }
  const o = await p.output();
  const d = new TextDecoder();
  return { ok: o.success, out: d.decode(o.stdout), err: d.decode(o.stderr).trim() };
}

/** Destinations and devices of the machine's IPv4 routes (`ip -4 route`), all tables. */
export function routedSubnets(): { dst: string; dev: string }[] {
  const o = new Deno.Command("ip", {
    args: ["-4", "-o", "route", "show", "table", "all"],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const out: { dst: string; dev: string }[] = [];
  for (const line of new TextDecoder().decode(o.stdout).split("\n")) {
    const w = line.trim().split(/\s+/);
    if (!w[0]) continue;
    const dst = ["local", "broadcast", "unicast"].includes(w[0]) ? w[1] : w[0];
    const dev = w[w.indexOf("dev") + 1] ?? "";
    if (dst && dst !== "default" && !dst.startsWith("127.")) out.push({ dst, dev });
  }
  return out;
}

/** Missing tools for the environment's network (`ip`, `nft`), or null when all are there. */
export function networkUnavailable(): string | null {
  for (const t of ["ip", "nft"]) {
    try {
      new Deno.Command(t, { args: ["-V"], stdout: "null", stderr: "null" }).outputSync();
    } catch {
      return `\`${t}\` is not installed (iproute2, nftables)`;
    }
  }
  if (Deno.uid() !== 0) return "hd does not run as root (the bridge network needs it)";
  return null;
}

async function seenNow(): Promise<{ links: string[]; netns: string[]; tables: string[] }> {
  const links = (await exec({ argv: ["ip", "-o", "link", "show"] })).out.split("\n")
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? "").filter((l) => l);
  let netns: string[] = [];
  try {
    netns = [...Deno.readDirSync(NETNS_DIR)].map((e) => e.name);
  } catch { /* none */ }
  const tables = (await exec({ argv: ["nft", "list", "tables", "ip"] })).out.split("\n")
    .map((l) => /^table ip (\S+)/.exec(l.trim())?.[1] ?? "").filter((t) => t);
  return { links, netns, tables };
}

/**
 * Removes what belongs to network `id` (by name: links, namespaces, the nft table), from a clean
 * `hd down` or the leftovers of a crashed hd, and restores ip_forward when no hd bridge is left.
 * Returns what was removed.
 */
export async function teardownNetwork(id: string): Promise<string[]> {
  const seen = await seenNow();
  const own = ownedLeftovers(id, seen);
  const lines = [
    ...own.netns.map((n) => `netns delete ${n}`),
    ...own.links.map((l) => `link delete ${l}`),
  ];
  if (lines.length) {
    // -force: go on past a veth that went with its namespace
    await exec({ argv: ["ip", "-force", "-batch", "-"], stdin: lines.join("\n") + "\n" });
  }
  for (const t of own.tables) await exec({ argv: ["nft", "delete", "table", "ip", t] });
  const left = lines.length || own.tables.length ? await seenNow() : seen;
  const still = ownedLeftovers(id, left);
  const done = [
    ...own.netns.filter((n) => !still.netns.includes(n)).map((n) => `netns ${n}`),
    ...own.links.filter((l) => !still.links.includes(l)).map((l) => `link ${l}`),
    ...own.tables.filter((t) => !still.tables.includes(t)).map((t) => `nft ${t}`),
  ];
  restoreForwarding(left.links);
  return done;
}

function restoreForwarding(links: string[]): void {
  if (anyHdBridge(links)) return;
  try {
    const prev = Deno.readTextFileSync(FORWARD_SAVE).trim();
    if (prev === "0" || prev === "1") {
      Deno.writeTextFileSync("/proc/sys/net/ipv4/ip_forward", `${prev}\n`);
    }
    Deno.removeSync(FORWARD_SAVE);
  } catch { /* nothing recorded */ }
}

function enableForwarding(): void {
  const path = "/proc/sys/net/ipv4/ip_forward";
  const cur = Deno.readTextFileSync(path).trim();
  if (cur === "1") return;
  try {
    Deno.statSync(FORWARD_SAVE);
  } catch {
    Deno.mkdirSync(FORWARD_SAVE.slice(0, FORWARD_SAVE.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(FORWARD_SAVE, `${cur}\n`);
  }
  Deno.writeTextFileSync(path, "1\n");
}

/**
 * Builds `plan` on the machine: first removes leftovers of the same network (a crashed hd), then
 * runs {@link setupCommands} and switches ip_forward on. On a failure everything made is removed
 * and an {@link HdError} names the command.
 */
export async function setupNetwork(plan: NetPlan): Promise<void> {
  await teardownNetwork(plan.id);
  for (const cmd of setupCommands(plan)) {
    const r = await exec(cmd);
    if (!r.ok) {
      await teardownNetwork(plan.id);
      throw new HdError(
        `Cannot set up the environment's network: \`${cmd.argv.join(" ")}\` failed: ${r.err}`,
        "hd needs root, iproute2 and nftables for sandboxed services' network",
      );
    }
  }
  enableForwarding();
}

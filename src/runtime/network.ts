/**
 * The environment's network under `hd up` (sandboxed services): the plan of src/sandbox/network.ts
 * for the spec's services, the /etc/hosts they share, and the published ports' forwarders. Built
 * once when the services first start ({@link EnvNetwork.up}), removed when `hd up` ends
 * ({@link EnvNetwork.down}); `hd down` removes a crashed hd's leftovers by the same names
 * ({@link teardownEnvNetwork}).
 *
 * @example
 * ```ts
 * import type { EnvSpec } from "../config/types.ts";
 * import { EnvNetwork } from "./network.ts";
 * declare const spec: EnvSpec;
 * const net = EnvNetwork.forSpec(spec);
 * if (typeof net !== "string") { await net.up(); console.log(net.lines); await net.down(); }
 * ```
 * @module
 */
import type { EnvSpec, PublishedPort } from "../config/types.ts";
import { type Forwarder, startForwarder } from "../sandbox/forward.ts";
import { defaultRunDir } from "../sandbox/container.ts";
import {
  hostsFile,
  loopbackOnlyResolvers,
  type NetPlan,
  networkId,
  networkPlan,
  networkUnavailable,
  routedSubnets,
  setupNetwork,
  teardownNetwork,
} from "../sandbox/network.ts";

/** One host listener: which service and port it leads to. */
export interface Publication {
  service: string;
  hostIp: string;
  /** 0 = a free port the kernel picks. */
  published: number;
  target: number;
  /** True for a `port` published without a `ports` entry (see {@link publications}). */
  implicit: boolean;
}

/**
 * What to publish on the host: every `ports` entry; and, for a service with a `port` and no
 * `ports`, `127.0.0.1:PORT` → PORT (what a sandboxed service answered on before it had its own
 * network), unless an earlier service already takes that host address and port.
 */
export function publications(services: EnvSpec["services"]): Publication[] {
  const out: Publication[] = [];
  const key = (ip: string, p: number) => `${ip}:${p}`;
  const explicit = new Set<string>();
  for (const s of Object.values(services)) {
    for (const p of s.ports ?? []) if (p.published) explicit.add(key(p.hostIp, p.published));
  }
  const taken = new Set<string>();
  for (const s of Object.values(services)) {
    const ports: PublishedPort[] = s.ports ?? [];
    for (const p of ports) {
      out.push({
        service: s.name,
        hostIp: p.hostIp,
        published: p.published,
        target: p.target,
        implicit: false,
      });
    }
    if (ports.length === 0 && s.port !== null) {
      const k = key("127.0.0.1", s.port);
      if (explicit.has(k) || explicit.has(key("0.0.0.0", s.port)) || taken.has(k)) continue;
      taken.add(k);
      out.push({
        service: s.name,
        hostIp: "127.0.0.1",
        published: s.port,
        target: s.port,
        implicit: true,
      });
    }
  }
  return out;
}

/** The network of a sandboxed environment under `hd up` (see the module doc). */
export class EnvNetwork {
  readonly plan: NetPlan;
  readonly hostsPath: string;
  #spec: EnvSpec;
  #forwarders: Forwarder[] = [];
  #up = false;
  /** What `up` did, for the log (`published 127.0.0.1:8080 → web:3000`). */
  lines: string[] = [];

  private constructor(spec: EnvSpec, plan: NetPlan, hostsPath: string) {
    this.#spec = spec;
    this.plan = plan;
    this.hostsPath = hostsPath;
  }

  /**
   * The network for `spec` (its hosts file under /run/hd/net/BRIDGE), or the reason this host
   * cannot build one (not root, no iproute2/nftables): the services then share the host's network.
   */
  static forSpec(spec: EnvSpec): EnvNetwork | string {
    const why = networkUnavailable();
    if (why) return why;
    const pubs = publications(spec.services);
    const services = Object.values(spec.services).map((s) => ({
      name: s.name,
      aliases: s.aliases ?? [],
      ports: [
        ...(s.port !== null ? [s.port] : []),
        ...pubs.filter((p) => p.service === s.name).map((p) => p.target),
      ],
    }));
    const plan = networkPlan(spec.dir, services, routedSubnets());
    // outside the project, which services can write (/app): the hosts file is hd's alone
    return new EnvNetwork(spec, plan, `${defaultRunDir()}/net/${plan.bridge}/hosts`);
  }

  /** The address of service `name` on the bridge. */
  address(name: string): string | undefined {
    return this.plan.services.find((s) => s.name === name)?.address;
  }

  /** The netns mount of service `name`. */
  netnsPath(name: string): string | undefined {
    const s = this.plan.services.find((s) => s.name === name);
    return s ? `/run/netns/${s.netns}` : undefined;
  }

  /** Builds the bridge, namespaces and NAT, writes the hosts file, starts the forwarders. */
  async up(): Promise<void> {
    if (this.#up) return;
    await setupNetwork(this.plan);
    this.#up = true;
    const dir = this.hostsPath.slice(0, this.hostsPath.lastIndexOf("/"));
    Deno.mkdirSync(dir, { recursive: true });
    const tmp = `${this.hostsPath}.${Deno.pid}.tmp`;
    Deno.writeTextFileSync(tmp, hostsFile(this.plan), { mode: 0o644 });
    Deno.renameSync(tmp, this.hostsPath);
    let resolv = "";
    try {
      resolv = Deno.readTextFileSync("/etc/resolv.conf");
    } catch { /* none */ }
    const stub = loopbackOnlyResolvers(resolv);
    if (stub) {
      this.lines.push(
        `warning: /etc/resolv.conf names only loopback nameservers (${stub.join(", ")}), ` +
          "which services in their own network namespace cannot reach: outside names will not resolve",
      );
    }
    this.lines.push(
      `network ${this.plan.bridge} ${this.plan.subnet}: ${
        this.plan.services.map((s) => `${s.name} ${s.address}`).join(", ")
      }`,
    );
    try {
      for (const p of publications(this.#spec.services)) {
        const f = startForwarder(p, { hostname: this.address(p.service)!, port: p.target });
        this.#forwarders.push(f);
        this.lines.push(`published ${f.hostIp}:${f.port} → ${p.service}:${p.target}`);
      }
    } catch (e) {
      await this.down();
      throw e;
    }
  }

  /** Stops the forwarders and removes the bridge, namespaces and NAT rules of the plan. */
  async down(): Promise<void> {
    for (const f of this.#forwarders.splice(0)) await f.close();
    if (!this.#up) return;
    this.#up = false;
    await teardownNetwork(this.plan.id);
    try {
      Deno.removeSync(this.hostsPath.slice(0, this.hostsPath.lastIndexOf("/")), {
        recursive: true,
      });
    } catch { /* gone */ }
  }
}

/** `hd down`: removes the network of the project at `spec.dir` (a crashed hd's leftovers). */
export async function teardownEnvNetwork(spec: EnvSpec): Promise<string[]> {
  if (networkUnavailable()) return [];
  const id = networkId(spec.dir);
  try {
    Deno.removeSync(`${defaultRunDir()}/net/hd-${id}`, { recursive: true });
  } catch { /* none */ }
  return await teardownNetwork(id);
}

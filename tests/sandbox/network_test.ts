/**
 * The environment's network as pure decisions (src/sandbox/network.ts, src/runtime/network.ts,
 * src/config/ports.ts): subnets and addresses, the setup commands and nftables rules, /etc/hosts,
 * what a teardown may delete, `ports` entries and what is published. The real bridge is exercised
 * end to end in tests/e2e/network_test.ts.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import {
  anyHdBridge,
  cidrRange,
  hostsFile,
  loopbackOnlyResolvers,
  loopbackRules,
  natRules,
  type NetService,
  networkId,
  networkPlan,
  overlaps,
  ownedLeftovers,
  routedSubnets,
  setupCommands,
  setupNetwork,
  teardownNetwork,
} from "../../src/sandbox/network.ts";
import { parsePortEntry, publishedClash } from "../../src/config/ports.ts";
import { publications } from "../../src/runtime/network.ts";
import { startForwarder } from "../../src/sandbox/forward.ts";
import { ociConfig } from "../../src/sandbox/oci_config.ts";
import type { ServiceSpec } from "../../src/config/types.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { freePort } from "../oci/_fixtures.ts";
import { throwsHd } from "../config/_util.ts";

const svc = (name: string, aliases: string[] = [], ports: number[] = []): NetService => ({
  name,
  aliases,
  ports,
});

Deno.test("overlaps and cidrRange", () => {
  const table: [string, string, boolean][] = [
    ["172.29.5.0/24", "172.29.5.0/24", true],
    ["172.29.5.0/24", "172.29.6.0/24", false],
    ["172.29.5.0/24", "172.16.0.0/12", true],
    ["10.89.0.0/24", "0.0.0.0/0", true],
    ["172.29.5.0/24", "172.29.5.77", true],
    ["172.29.5.0/24", "default", false],
    ["192.0.2.0/24", "172.29.5.0/24", false],
  ];
  for (const [a, b, want] of table) assertEquals(overlaps(a, b), want, `${a} ${b}`);
  assertEquals(cidrRange("10.0.0.5/30"), [0x0a000004, 0x0a000007]);
  assertEquals(cidrRange("nonsense"), null);
});

Deno.test("networkPlan: names within 15 characters, deterministic subnet, fallback on clash", () => {
  const dir = "/home/me/app";
  const id = networkId(dir);
  assert(/^[0-9a-f]{6}$/.test(id));
  const p = networkPlan(dir, [svc("web", ["www"]), svc("db")], []);
  assertEquals(p.bridge, `hd-${id}`);
  assertEquals(p.table, `hd_${id}`);
  assert(p.bridge.length <= 15);
  for (const s of p.services) assert(s.hostVeth.length <= 15 && s.peerVeth.length <= 15);
  assert(/^172\.29\.\d+\.0\/24$/.test(p.subnet), p.subnet);
  assertEquals(p.gateway, p.subnet.replace(".0/24", ".1"));
  // the same inputs, the same plan
  assertEquals(networkPlan(dir, [svc("web", ["www"]), svc("db")], []), p);
  // a route over that subnet moves it; the environment's own bridge route does not
  const moved = networkPlan(dir, [svc("web")], [{ dst: p.subnet, dev: "eth1" }]);
  assert(moved.subnet !== p.subnet && !overlaps(moved.subnet, p.subnet));
  assertEquals(networkPlan(dir, [svc("web")], [{ dst: p.subnet, dev: p.bridge }]).subnet, p.subnet);
  // all of 172.29/16 routed: 10.89/16
  assert(
    networkPlan(dir, [svc("web")], [{ dst: "172.16.0.0/12", dev: "x" }]).subnet.startsWith(
      "10.89.",
    ),
  );
  assertThrows(
    () =>
      networkPlan(dir, [svc("a")], [{ dst: "172.16.0.0/12", dev: "x" }, {
        dst: "10.0.0.0/8",
        dev: "y",
      }]),
    /every \/24/,
  );
});

Deno.test("networkPlan: stable, distinct addresses per service", () => {
  const names = Array.from({ length: 60 }, (_, i) => `s${i}`);
  const p = networkPlan("/p", names.map((n) => svc(n)), []);
  const addrs = p.services.map((s) => s.address);
  assertEquals(new Set(addrs).size, names.length, "distinct");
  for (const a of addrs) {
    const last = Number(a.split(".")[3]);
    assert(last >= 2 && last <= 254, a);
  }
  // adding a service moves nobody who did not collide with it
  const one = networkPlan("/p", [svc("web"), svc("db")], []);
  const two = networkPlan("/p", [svc("web"), svc("db"), svc("cache")], []);
  assertEquals(two.services[0].address, one.services[0].address);
  assertEquals(two.services[1].address, one.services[1].address);
  assertThrows(
    () => networkPlan("/p", Array.from({ length: 254 }, (_, i) => svc(`x${i}`)), []),
    /do not fit/,
  );
});

Deno.test("setupCommands, NAT and loopback rules", () => {
  const p = networkPlan("/p", [svc("web", [], [3000]), svc("db")], []);
  const cmds = setupCommands(p);
  const web = p.services[0];
  const db = p.services[1];
  // one batch on the host: bridge, namespaces, veth pairs on the bridge
  assertEquals(cmds[0].argv, ["ip", "-batch", "-"]);
  const host = cmds[0].stdin!.split("\n");
  assertEquals(host.slice(0, 3), [
    `link add ${p.bridge} type bridge`,
    `addr add ${p.gateway}/24 dev ${p.bridge}`,
    `link set ${p.bridge} up`,
  ]);
  for (const s of [web, db]) {
    assert(host.includes(`netns add ${s.netns}`));
    assert(host.includes(`link add ${s.hostVeth} type veth peer name ${s.peerVeth}`));
    assert(host.includes(`link set ${s.peerVeth} netns ${s.netns}`));
    assert(host.includes(`link set ${s.hostVeth} master ${p.bridge}`));
  }
  // one batch per namespace: eth0 with the service's address, the default route via the bridge
  const inWeb = cmds.find((c) => c.argv.join(" ") === `ip -n ${web.netns} -batch -`)!;
  assertEquals(inWeb.stdin!.trim().split("\n"), [
    `link set ${web.peerVeth} name eth0`,
    `addr add ${web.address}/24 dev eth0`,
    "link set lo up",
    "link set eth0 up",
    `route add default via ${p.gateway}`,
  ]);
  // only web has ports: one DNAT script, for web's namespace
  const nsNft = cmds.filter((c) => c.argv.includes("exec"));
  assertEquals(nsNft.length, 1);
  assertEquals(nsNft[0].argv.slice(0, 4), ["ip", "netns", "exec", web.netns]);
  assertEquals(nsNft[0].stdin, loopbackRules([3000]));
  // the last command is the NAT table
  const last = setupCommands(p).at(-1)!;
  assertEquals(last.argv, ["nft", "-f", "-"]);
  assertEquals(last.stdin, natRules(p));
  assert(natRules(p).includes(`table ip ${p.table} {`));
  assert(natRules(p).includes(`ip saddr ${p.subnet} ip daddr != ${p.subnet} masquerade`));
  assert(
    natRules(p).includes(`iifname "${p.bridge}" oifname "hd-*" oifname != "${p.bridge}" drop`),
  );
  assert(loopbackRules([80])!.includes(`iifname "eth0" ip daddr 127.0.0.0/8 drop`));
  assertEquals(loopbackRules([]), null);
  assert(loopbackRules([3000, 80, 3000])!.includes("tcp dport { 80, 3000 } dnat to 127.0.0.1"));
});

Deno.test("hostsFile: every service by name and aliases", () => {
  const p = networkPlan("/p", [svc("web", ["www", "front"]), svc("db")], []);
  const h = hostsFile(p);
  assert(h.startsWith("127.0.0.1\tlocalhost\n"));
  assert(h.includes(`${p.services[0].address}\tweb www front\n`), h);
  assert(h.includes(`${p.services[1].address}\tdb\n`), h);
});

Deno.test("ownedLeftovers: only what carries the network's names", () => {
  const seen = {
    links: [
      "lo",
      "eth0",
      "hd-abc123",
      "hd-abc1234",
      "hvabc1230",
      "hvabc12317",
      "hvabc123x",
      "hd-ffffff",
      "docker0",
    ],
    netns: ["hd-abc123-web", "hd-abc123-db", "hd-ffffff-web", "other"],
    tables: ["hd_abc123", "hd_ffffff", "filter", "nat"],
  };
  assertEquals(ownedLeftovers("abc123", seen), {
    netns: ["hd-abc123-web", "hd-abc123-db"],
    links: ["hd-abc123", "hvabc1230", "hvabc12317"],
    tables: ["hd_abc123"],
  });
  // a malformed id matches nothing (never a prefix of everything)
  assertEquals(ownedLeftovers("", seen), { links: [], netns: [], tables: [] });
  assertEquals(ownedLeftovers(".*", seen), { links: [], netns: [], tables: [] });
  assertEquals(anyHdBridge(["eth0", "hd-abc123"]), true);
  assertEquals(anyHdBridge(["eth0", "hd-abc1234", "hd-x"]), false);
});

Deno.test("parsePortEntry: compose's short syntax, 127.0.0.1 by default", () => {
  const ok = (hostIp: string, published: number, target: number) => ({
    ok: true,
    hostIp,
    published,
    target,
  });
  const table: [string, unknown][] = [
    ["8080:3000", ok("127.0.0.1", 8080, 3000)],
    ["127.0.0.1:9000:9000/tcp", ok("127.0.0.1", 9000, 9000)],
    ["3000", ok("127.0.0.1", 0, 3000)],
    ["0.0.0.0:8080:3000", ok("0.0.0.0", 8080, 3000)],
    ["127.0.0.1::3000", ok("127.0.0.1", 0, 3000)],
    ["80/TCP", ok("127.0.0.1", 0, 80)],
  ];
  for (const [s, want] of table) assertEquals(parsePortEntry(s), want, s);
  const bad: [string, RegExp][] = [
    ["53:53/udp", /udp is not supported/],
    ["8000-8010:8000-8010", /ranges are not supported/],
    ["[::1]:80:80", /IPv6/],
    ["300.0.0.1:80:80", /not an IPv4 address/],
    ["8080:0", /container port/],
    ["70000:80", /host port/],
    ["x", /container port/],
    ["80/foo", /unknown protocol/],
  ];
  for (const [s, re] of bad) {
    const r = parsePortEntry(s);
    assert(!r.ok && re.test(r.why), `${s}: ${JSON.stringify(r)}`);
  }
});

Deno.test("publishedClash and publications", () => {
  const at = { file: "f", line: 1, column: 1 };
  assertEquals(
    publishedClash([
      { name: "a", hostIp: "127.0.0.1", published: 8080, at },
      { name: "b", hostIp: "127.0.0.2", published: 8080, at },
      { name: "c", hostIp: "127.0.0.1", published: 0, at },
      { name: "d", hostIp: "127.0.0.1", published: 0, at },
    ]),
    null,
  );
  assertEquals(
    publishedClash([
      { name: "a", hostIp: "127.0.0.1", published: 8080, at },
      { name: "b", hostIp: "0.0.0.0", published: 8080, at },
    ])?.second,
    "b",
  );
  const s = (name: string, port: number | null, ports?: ServiceSpec["ports"]): ServiceSpec => ({
    name,
    command: "x",
    watch: [],
    port,
    depends_on: [],
    restart_policy: "never",
    env: {},
    workdir: ".",
    ports,
  });
  const p = publications({
    web: s("web", 3000, [{ hostIp: "127.0.0.1", published: 8080, target: 3000 }]),
    api: s("api", 3000),
    api2: s("api2", 3000), // the same implicit host port: not published twice
    db: s("db", null),
  });
  assertEquals(p, [
    { service: "web", hostIp: "127.0.0.1", published: 8080, target: 3000, implicit: false },
    { service: "api", hostIp: "127.0.0.1", published: 3000, target: 3000, implicit: true },
  ]);
  // an explicit 0.0.0.0:3000 of another service holds 127.0.0.1:3000 too
  assertEquals(
    publications({
      api: s("api", 3000),
      web: s("web", null, [{ hostIp: "0.0.0.0", published: 3000, target: 80 }]),
    }).map((p) => p.service),
    ["web"],
  );
});

Deno.test("hd.toml: ports and aliases, long form, errors with positions", () => {
  using d = tempDir("hd-net-");
  const file = `${d.path}/hd.toml`;
  Deno.writeTextFileSync(
    file,
    `[environment]
name = "x"
base = "busybox"
[services.web]
command = "a"
aliases = ["www", "front.local"]
ports = ["8080:3000", { target = 9000, published = 9001, host_ip = "0.0.0.0" }, { target = 53 }]
`,
  );
  const w = loadSpec(file).services.web;
  assertEquals(w.aliases, ["www", "front.local"]);
  assertEquals(w.ports?.map((p) => [p.hostIp, p.published, p.target]), [
    ["127.0.0.1", 8080, 3000],
    ["0.0.0.0", 9001, 9000],
    ["127.0.0.1", 0, 53],
  ]);
  const bad: [string, RegExp][] = [
    [`ports = ["53:53/udp"]`, /hd\.toml:6:10: port "53:53\/udp": udp is not supported/],
    [`ports = [{ target = 53, protocol = "udp" }]`, /udp is not supported/],
    [`ports = [{ published = 53 }]`, /needs a target/],
    [`ports = "8080:80"`, /ports must be an array/],
    [`aliases = ["bad name"]`, /alias "bad name" is not a host name/],
  ];
  // on the host (no base) ports and aliases mean nothing: an error, not silently ignored
  for (const line of [`ports = ["8080:80"]`, `aliases = ["x"]`]) {
    Deno.writeTextFileSync(
      file,
      `[environment]\nname = "x"\n[services.web]\ncommand = "a"\n${line}\n`,
    );
    const e = throwsHd(() => loadSpec(file));
    assert(
      /hd\.toml:5:1: (ports|aliases) needs the service to run in a sandbox/.test(e.message),
      e.message,
    );
  }
  for (const [line, re] of bad) {
    Deno.writeTextFileSync(
      file,
      `[environment]\nname = "x"\nbase = "b"\n[services.web]\ncommand = "a"\n${line}\n`,
    );
    const e = throwsHd(() => loadSpec(file));
    assert(re.test(e.message), `${line}: ${e.message}`);
  }
  Deno.writeTextFileSync(
    file,
    `[environment]\nname = "x"\nbase = "b"\n[services.a]\ncommand = "a"\nports = ["8080:1"]\n[services.b]\ncommand = "b"\nports = ["8080:2"]\n`,
  );
  assert(/127\.0\.0\.1:8080 is published twice: by "a" and by "b"/.test(
    throwsHd(() => loadSpec(file)).message,
  ));
});

Deno.test("loopbackOnlyResolvers: a local stub resolver is unreachable from a namespace", () => {
  const table: [string, string[] | null][] = [
    ["nameserver 127.0.0.53\noptions edns0\n", ["127.0.0.53"]],
    ["nameserver 10.255.255.53\n", null],
    ["nameserver 127.0.0.1\nnameserver 192.0.2.53\n", null],
    ["# none\n", null],
    ["nameserver ::1\n", ["::1"]],
  ];
  for (const [text, want] of table) assertEquals(loopbackOnlyResolvers(text), want, text);
});

function sh(cmd: string): { ok: boolean; out: string } {
  const o = new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped", stderr: "piped" })
    .outputSync();
  const d = new TextDecoder();
  return { ok: o.success, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

testIf(
  skipUnless({ root: true, commands: ["ip", "nft"], paths: ["/bin/busybox"] }),
  "two environments' networks: each reachable from the host, not from each other; clean teardown",
  async () => {
    using tmp = tempDir("hd-netiso-");
    const a = networkPlan(`${tmp.path}/a`, [svc("a")], routedSubnets());
    await setupNetwork(a);
    const b = networkPlan(`${tmp.path}/b`, [svc("b", [], [])], routedSubnets());
    const forward = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_forward");
    let server: Deno.ChildProcess | null = null;
    try {
      await setupNetwork(b);
      assert(!overlaps(a.subnet, b.subnet), `${a.subnet} ${b.subnet}`);
      Deno.writeTextFileSync(`${tmp.path}/x`, "b\n");
      const port = freePort();
      const bAddr = b.services[0].address;
      server = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          b.services[0].netns,
          "/bin/busybox",
          "httpd",
          "-f",
          "-p",
          `${bAddr}:${port}`,
          "-h",
          tmp.path,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      // a TCP connection by bash's /dev/tcp (busybox's wget crashes on the host's nsswitch)
      const connect = (ns: string | null) =>
        sh(
          `${
            ns ? `ip netns exec ${ns} ` : ""
          }timeout 2 bash -c 'exec 3<>/dev/tcp/${bAddr}/${port}'`,
        );
      let fromHost = { ok: false, out: "" };
      for (let i = 0; i < 40 && !fromHost.ok; i++) {
        fromHost = connect(null);
        if (!fromHost.ok) await new Promise((r) => setTimeout(r, 50));
      }
      assert(fromHost.ok, `the host reaches a service on its bridge: ${fromHost.out}`);
      assertEquals(await (await fetch(`http://${bAddr}:${port}/x`)).text(), "b\n");
      // the default route of a's namespace leads to the host, which drops what goes to b's bridge
      const fromA = connect(a.services[0].netns);
      assert(!fromA.ok, `environment a reached b: ${fromA.out}`);
    } finally {
      server?.kill("SIGKILL");
      await server?.status;
      await teardownNetwork(a.id);
      await teardownNetwork(b.id);
    }
    const leftovers = (id: string) => {
      const links = sh("ip -o link show").out.split("\n").map((l) =>
        /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? ""
      );
      const netns = sh("ip netns list").out.split("\n").map((l) => l.split(" ")[0]);
      const tables = sh("nft list tables ip").out.split("\n").map((l) =>
        l.replace(/^table ip /, "")
      );
      return ownedLeftovers(id, { links, netns, tables });
    };
    for (const id of [a.id, b.id]) {
      assertEquals(leftovers(id), { links: [], netns: [], tables: [] }, id);
    }
    // ip_forward as it was before the first of the two (a was up when forward was read)
    assertEquals(forward, "1\n");
  },
);

Deno.test("ociConfig: a service joins its namespace by path", () => {
  const base = { root: "/r", argv: ["true"], env: {}, cwd: "/", binds: [] };
  const ns = (c: Record<string, unknown>) =>
    (c.linux as { namespaces: { type: string; path?: string }[] }).namespaces
      .filter((n) => n.type === "network");
  assertEquals(ns(ociConfig({ ...base, netnsPath: "/run/netns/hd-abc123-web" }, { init: "/t" })), [
    { type: "network", path: "/run/netns/hd-abc123-web" },
  ]);
  assertEquals(ns(ociConfig({ ...base, netns: true }, { init: "/t" })), [{ type: "network" }]);
  assertEquals(ns(ociConfig(base, { init: "/t" })), []);
});

Deno.test("startForwarder: a free host port to a server, both ways; closed after close()", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen: () => {} },
    async (r) => new Response(`echo:${await r.text()}`),
  );
  const f = startForwarder({ hostIp: "127.0.0.1", published: 0 }, {
    hostname: "127.0.0.1",
    port: server.addr.port,
  });
  try {
    assert(f.port > 0 && f.port !== server.addr.port);
    const big = "x".repeat(1 << 20);
    const r = await fetch(`http://127.0.0.1:${f.port}/`, { method: "POST", body: big });
    assertEquals(await r.text(), `echo:${big}`);
  } finally {
    await f.close();
    ac.abort();
    await server.finished;
  }
  let refused = false;
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: f.port })).close();
  } catch {
    refused = true;
  }
  assert(refused, "nothing listens after close()");
  // a taken port is an error naming it
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (l.addr as Deno.NetAddr).port;
    assertThrows(
      () => startForwarder({ hostIp: "127.0.0.1", published: port }, { hostname: "x", port: 1 }),
      new RegExp(`Cannot publish 127.0.0.1:${port}`),
    );
  } finally {
    l.close();
  }
});

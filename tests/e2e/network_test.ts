/**
 * The environment's network end to end (`hd up -d` of a busybox image from a registry on
 * 127.0.0.1): two services both listening on the same port, each in its own network namespace on
 * the environment's bridge; one reaches the other by name and by alias; one is published as
 * 127.0.0.1:<free port>:<port> and answers from the host; outbound traffic is NATed (checked
 * against a server this test starts in a network namespace it makes, with no route back to the
 * bridge: only masquerading lets the answer return); `hd down` leaves no link, namespace, nft
 * table, and restores ip_forward. Then the leftovers of an hd killed with SIGKILL are removed by
 * the next `hd down`.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFile } from "./_http.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";
import { networkId, overlaps, routedSubnets } from "../../src/sandbox/network.ts";
import { exists } from "../../src/sys/fs.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "ip", "nft"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

function sh(cmd: string): { ok: boolean; out: string } {
  const o = new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped", stderr: "piped" })
    .outputSync();
  const d = new TextDecoder();
  return { ok: o.success, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

async function get(url: string, ms = 20_000): Promise<string> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < ms) {
    try {
      const r = await fetch(url);
      last = await r.text();
      if (r.ok) return last;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no answer from ${url}: ${last.slice(0, 200)}`);
}

/** What of network `id` is on the machine (links, namespaces, nft tables). */
function present(id: string): string[] {
  const out: string[] = [];
  for (const l of sh("ip -o link show").out.split("\n")) {
    const n = /^\d+:\s+([^:@]+)/.exec(l)?.[1];
    if (n && (n === `hd-${id}` || n.startsWith(`hv${id}`))) out.push(`link ${n}`);
  }
  for (const n of sh("ip netns list").out.split("\n")) {
    if (n.startsWith(`hd-${id}-`)) out.push(`netns ${n.split(" ")[0]}`);
  }
  if (sh("nft list tables ip").out.includes(`hd_${id}`)) out.push(`nft hd_${id}`);
  return out;
}

/**
 * A network namespace with a veth to the host on a free /30 of 10.251.0.0/16 (no route back to
 * anything else) and busybox httpd in it serving `dir`; returns its address and a cleanup.
 */
function outsideServer(dir: string, port: number): { addr: string; stop: () => void } {
  const tag = `${Deno.pid % 100000}`;
  const ns = `hdt-ext-${tag}`;
  const hv = `hdtv${tag}`;
  let net = "";
  for (let i = 0; i < 16000 && !net; i++) {
    const n = (Deno.pid + i * 4) % 65536;
    const c = `10.251.${n >> 8}.${n & 0xfc}/30`;
    if (!routedSubnets().some((r) => overlaps(r.dst, c))) net = c;
  }
  const [a, b, cc] = net.split("/")[0].split(".");
  const last = Number(net.split("/")[0].split(".")[3]);
  const host = `${a}.${b}.${cc}.${last + 1}`;
  const addr = `${a}.${b}.${cc}.${last + 2}`;
  const stop = () => {
    sh(
      `ip netns pids ${ns} 2>/dev/null | xargs -r kill -9; ip netns delete ${ns}; ip link delete ${hv}`,
    );
  };
  const steps = [
    `ip netns add ${ns}`,
    `ip link add ${hv} type veth peer name hdtp${tag}`,
    `ip link set hdtp${tag} netns ${ns}`,
    `ip addr add ${host}/30 dev ${hv}`,
    `ip link set ${hv} up`,
    `ip -n ${ns} addr add ${addr}/30 dev hdtp${tag}`,
    `ip -n ${ns} link set hdtp${tag} up`,
    `ip -n ${ns} link set lo up`,
  ];
  for (const s of steps) {
    const r = sh(s);
    if (!r.ok) (stop(), assert(false, `${s}: ${r.out}`));
  }
  new Deno.Command("ip", {
    args: ["netns", "exec", ns, "/bin/busybox", "httpd", "-f", "-p", `${addr}:${port}`, "-h", dir],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { addr, stop };
}

testIf(
  skip,
  "hd up -d: own namespaces on a bridge, names as hosts, same port twice, published port, NAT, clean down",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(`${dir}/out`, { recursive: true });
    Deno.mkdirSync(`${tmp.path}/ext`);
    Deno.writeTextFileSync(`${tmp.path}/ext/hello`, "from outside\n");
    const extPort = freePort();
    const ext = outsideServer(`${tmp.path}/ext`, extPort);
    const port = freePort(); // both services listen on it, each in its own namespace
    const pub = freePort();
    const forward = Deno.readTextFileSync("/proc/sys/net/ipv4/ip_forward");
    const id = networkId(dir);
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "e2e-net"
base = "${ref}"

[services.a]
command = "mkdir -p /tmp/w && echo served-by-a > /tmp/w/who && httpd -f -p ${port} -h /tmp/w"
port = ${port}
aliases = ["alpha"]
ports = ["127.0.0.1:${pub}:${port}"]

[services.b]
command = '''
wget -q -O /app/out/by-name http://a:${port}/who
wget -q -O /app/out/by-alias http://alpha:${port}/who
wget -q -O /app/out/outbound http://${ext.addr}:${extPort}/hello
ip -o -4 addr show eth0 | sed 's/.* inet \\([0-9.]*\\).*/\\1/' > /app/out/b-addr
if echo 1.2.3.4 a >> /etc/hosts; then echo writable; else echo read-only; fi > /app/out/hosts
mkdir -p /tmp/w && echo served-by-b > /tmp/w/who
exec httpd -f -p 127.0.0.1:${port} -h /tmp/w
'''
port = ${port}
depends_on = ["a"]

[files]
exclude = ["out"]
`,
    );
    try {
      const up = await hd(["up", "-d"], { store, cwd: dir });
      if (up.code !== 0) console.log(up.stdout, up.stderr, sh(`cat ${dir}/.hd/logs/*.log`).out);
      assertEquals(up.code, 0, up.stderr + up.stdout);
      // names and aliases resolve to a's own namespace, where the same port is a's
      assertEquals(await waitFile(`${dir}/out/by-name`), "served-by-a\n");
      assertEquals(await waitFile(`${dir}/out/by-alias`), "served-by-a\n");
      // outbound: the answer of a server with no route to the bridge came back (masquerade)
      assertEquals(await waitFile(`${dir}/out/outbound`), "from outside\n");
      // /etc/hosts is hd's, bound read-only
      assertEquals(await waitFile(`${dir}/out/hosts`), "read-only\n");
      // b's own address is on the bridge, not the host's
      const bAddr = (await waitFile(`${dir}/out/b-addr`)).trim();
      assert(/^(172\.29|10\.89)\.\d+\.\d+$/.test(bAddr), bAddr);
      // published: 127.0.0.1:pub → a:port
      assertEquals(await get(`http://127.0.0.1:${pub}/who`), "served-by-a\n");
      // b has a port and no `ports`: published as 127.0.0.1:port, though it listens on its
      // namespace's loopback only (declared ports are DNATed to 127.0.0.1 inside)
      assertEquals(await get(`http://127.0.0.1:${port}/who`), "served-by-b\n");
      const log = sh(`cat ${dir}/.hd/logs/*.log`).out;
      // readiness is b's own listener, found in b's namespace (it listens on its loopback)
      assert(log.includes(`ready on 127.0.0.1:${port}`), log);
      assert(log.includes(`published 127.0.0.1:${pub} → a:${port}`), log);
      assert(present(id).length > 0, "the network is up");
      assertEquals(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_forward"), "1\n");

      const down = await hd(["down"], { store, cwd: dir });
      assertEquals(down.code, 0, down.stderr);
      assertEquals(present(id), [], "hd down removes the bridge, veths, namespaces, nft table");
      assert(!exists(`/run/hd/net/hd-${id}`), "and the hosts file");
      assertEquals(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_forward"), forward);
      let refused = false;
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: pub })).close();
      } catch {
        refused = true;
      }
      assert(refused, "the published port is closed");

      // a crashed hd: SIGKILL the supervisor, then hd down removes its network by name
      const up2 = await hd(["up", "-d"], { store, cwd: dir });
      assertEquals(up2.code, 0, up2.stderr + up2.stdout);
      await get(`http://127.0.0.1:${pub}/who`);
      const st = JSON.parse(Deno.readTextFileSync(`${dir}/.hd/up.json`));
      const pid = st.state?.pid ?? st.pid;
      assert(typeof pid === "number" && pid > 1, JSON.stringify(st));
      Deno.kill(pid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 300));
      assert(present(id).length > 0, "a killed hd leaves its network");
      const down2 = await hd(["down"], { store, cwd: dir });
      assertEquals(down2.code, 0, down2.stderr);
      assertEquals(present(id), [], "the next hd down removes a crashed hd's network");
      assertEquals(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_forward"), forward);
    } finally {
      if (exists(dir)) await hd(["down"], { store, cwd: dir });
      ext.stop();
      await reg.stop().catch(() => {});
      sh(`umount -l "${dir}/.hd/sandbox/root" 2>/dev/null; true`);
    }
  },
);

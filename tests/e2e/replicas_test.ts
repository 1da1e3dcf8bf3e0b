/**
 * `scale = 2` with a base (`hd up -d` of a busybox image from a registry on 127.0.0.1): two
 * replicas, each in its own container and network namespace with its own address, both listening
 * on the same port; a dependent waits for both, reaches a replica by its own name (`web-2`) and the
 * service by its name (`web`); `hd ps` lists each with its own pid.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFile } from "./_http.ts";
import { freePort } from "../oci/_fixtures.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "ip", "nft"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

testIf(
  skip,
  "scale = 2 in a sandbox: own containers and addresses, names, dependents",
  async () => {
    using tmp = tempDir();
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const store = `${tmp.path}/store`;
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(`${dir}/out`, { recursive: true });
    const port = freePort();
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "e2e-scale"
base = "${ref}"

[services.web]
command = '''
A=$(ip -o -4 addr show eth0 | sed 's/.* inet \\([0-9.]*\\).*/\\1/')
mkdir -p /tmp/w && echo "$A" > /tmp/w/who && echo "$A" > /app/out/addr.$A
exec httpd -f -p ${port} -h /tmp/w
'''
port = ${port}
scale = 2

[services.client]
command = '''
wget -q -O /app/out/by-name http://web:${port}/who
wget -q -O /app/out/by-replica http://web-2:${port}/who
exec sleep 300
'''
depends_on = ["web"]

[files]
exclude = ["out"]
`,
    );
    try {
      const up = await hd(["up", "-d", "--wait"], { store, cwd: dir });
      assertEquals(up.code, 0, up.stderr + up.stdout);
      const byReplica = (await waitFile(`${dir}/out/by-replica`)).trim();
      const byName = (await waitFile(`${dir}/out/by-name`)).trim();
      const addrs = [...Deno.readDirSync(`${dir}/out`)]
        .filter((e) => e.name.startsWith("addr."))
        .map((e) => e.name.slice(5))
        .sort();
      assertEquals(addrs.length, 2, "two replicas, two addresses");
      assert(addrs.includes(byReplica), `web-2 answered from ${byReplica}: ${addrs}`);
      assert(addrs.includes(byName), `web answered from a replica: ${byName}`);
      const ps = JSON.parse((await hd(["ps", "--json"], { store, cwd: dir })).stdout).services as {
        name: string;
        state: string;
        pid: number | null;
      }[];
      assertEquals(ps.map((s) => s.name), ["web-1", "web-2", "client"]);
      assert(ps.every((s) => s.state === "running"), JSON.stringify(ps));
      assertEquals(new Set(ps.map((s) => s.pid)).size, 3, "each its own process");
    } finally {
      await hd(["down"], { store, cwd: dir });
      await reg.stop().catch(() => {});
    }
  },
);

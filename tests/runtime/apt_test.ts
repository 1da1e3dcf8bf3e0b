/**
 * The apt provider and the apt layer against a real flat apt repository on 127.0.0.1: .debs from
 * this machine's /var/cache/apt/archives indexed by dpkg-scanpackages and served over HTTP; the
 * packages are resolved (versions, sha256, URLs), downloaded, verified, unpacked into a layer, and
 * seen by dpkg's status inside the sandbox.
 * @module
 */
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { aptProvider } from "../../src/config/providers/apt.ts";
import type { EnvSpec } from "../../src/config/types.ts";
import { unmountEnv } from "../../src/runtime/sandbox_steps.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { LOCK_FILE, resolveLock, writeLock } from "../../src/config/lockfile.ts";
import { busyboxRegistry } from "../sandbox/_image.ts";
import { Store } from "../../src/cas/store.ts";
import { captureLayer } from "../../src/sandbox/layers.ts";
import { baseStatus } from "../../src/runtime/apt_layer.ts";

const ARCHIVES = "/var/cache/apt/archives";
const DEBS = ["dns-root-data_2024071801~deb12u1_all.deb", "libwayland-egl1_1.21.0-1_amd64.deb"];

const skip = skipUnless({
  root: true,
  commands: ["dpkg-scanpackages", "dpkg-deb", "runc", "unshare", "docker-registry", "skopeo"],
  paths: DEBS.map((d) => `${ARCHIVES}/${d}`),
});

async function repo(dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  Deno.mkdirSync(`${dir}/pool`, { recursive: true });
  for (const d of DEBS) Deno.copyFileSync(`${ARCHIVES}/${d}`, `${dir}/pool/${d}`);
  const out = await new Deno.Command("sh", {
    args: ["-c", "dpkg-scanpackages -m pool /dev/null > Packages 2>/dev/null"],
    cwd: dir,
  }).output();
  assert(out.success, "dpkg-scanpackages");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    try {
      return new Response(await Deno.readFile(`${dir}${path}`));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, stop: () => server.shutdown() };
}

testIf(skip, "apt provider: resolves names and pins from a Packages index", async () => {
  using tmp = tempDir();
  const r = await repo(tmp.path);
  const prev = Deno.env.get("HD_APT_SOURCE");
  Deno.env.set("HD_APT_SOURCE", `${r.url} ./`);
  try {
    const ctx = { spec: {} as EnvSpec, dir: tmp.path };
    const res = await aptProvider.resolve(
      { provider: "apt", form: "list", packages: ["libwayland-egl1", "dns-root-data"] },
      ctx,
    );
    assertEquals(res.packages.map((p) => `${p.node.name}=${p.node.version}`), [
      "dns-root-data=2024071801~deb12u1",
      "libwayland-egl1=1.21.0-1",
    ]);
    const sum = new TextDecoder().decode(
      (await new Deno.Command("sha256sum", { args: [`${ARCHIVES}/${DEBS[1]}`], stdout: "piped" })
        .output()).stdout,
    ).split(" ")[0];
    assertEquals(res.packages[1].node.artifact, `sha256:${sum}`);
    assertEquals(res.packages[1].node.resolved, `${r.url}/pool/${DEBS[1]}`);
    await assertRejects(
      () =>
        aptProvider.resolve(
          { provider: "apt", form: "list", packages: ["libwayland-egl1=9.9"] },
          ctx,
        ),
      /libwayland-egl1 9\.9 is not in the repository \(it has 1\.21\.0-1\)/,
    );
    await assertRejects(
      () => aptProvider.resolve({ provider: "apt", form: "list", packages: ["nope"] }, ctx),
      /no package "nope"/,
    );
  } finally {
    if (prev === undefined) Deno.env.delete("HD_APT_SOURCE");
    else Deno.env.set("HD_APT_SOURCE", prev);
    await r.stop();
  }
});

testIf(
  skip,
  "apt layer: packages downloaded, verified and unpacked into the environment",
  async () => {
    using tmp = tempDir();
    const r = await repo(`${tmp.path}/repo`);
    const { reg, ref } = await busyboxRegistry(tmp.path);
    const dir = `${tmp.path}/proj`;
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "apt"
base = "${ref}"

[dependencies]
apt = ["dns-root-data", "libwayland-egl1"]
`,
    );
    const store = `${tmp.path}/store`;
    const env = { HD_APT_SOURCE: `${r.url} ./` };
    try {
      // hd lock records versions, sha256 and URLs; later runs read them from hd.lock
      // (in-process: `hd lock` itself does not load the apt provider yet)
      Deno.env.set("HD_APT_SOURCE", env.HD_APT_SOURCE);
      const spec = loadSpec(`${dir}/hd.toml`);
      writeLock(`${dir}/${LOCK_FILE}`, await resolveLock(spec));
      Deno.env.delete("HD_APT_SOURCE");
      const locked = Deno.readTextFileSync(`${dir}/hd.lock`);
      assertIncludes(locked, '"libwayland-egl1"');
      assertIncludes(locked, '"sha256:');
      const run = await hd([
        "shell",
        "--",
        "sh",
        "-c",
        "ls /usr/share/dns; grep -c '^Package:' /var/lib/dpkg/status; " +
        "cat /var/lib/dpkg/info/dns-root-data.list | grep -c root.hints",
      ], { store, cwd: dir, env });
      assertEquals(run.code, 0, run.stderr);
      assertIncludes(run.stdout, "root.hints");
      assertIncludes(run.stdout, "\n2\n1\n");
      assertIncludes(run.stderr, "apt: dns-root-data");
      // second run, repository gone: versions from hd.lock, the layer from the cache
      await r.stop();
      const again = await hd(["shell", "--", "ls", "/usr/share/dns"], { store, cwd: dir, env });
      assertEquals(again.code, 0, again.stderr);
      assert(!again.stderr.includes("apt:"), again.stderr);
    } finally {
      await reg.stop();
      await r.stop().catch(() => {});
      unmountEnv(loadSpec(`${dir}/hd.toml`));
    }
  },
);

Deno.test("apt layer: the base's dpkg status is read inside its layer; a link to a host file is not followed", () => {
  using s = tempDir("hd-store-");
  using src = tempDir("hd-layer-");
  using outside = tempDir("hd-outside-");
  const store = Store.open(s.path, { create: true });
  const host = `${outside.path}/shadow`;
  Deno.writeTextFileSync(host, "Package: host-secret\nStatus: install ok installed\nVersion: 1\n");
  const layerWith = (make: (dpkg: string) => void): string => {
    Deno.removeSync(src.path, { recursive: true });
    Deno.mkdirSync(`${src.path}/var/lib/dpkg`, { recursive: true });
    make(`${src.path}/var/lib/dpkg`);
    return captureLayer(store, src.path).id;
  };
  const real = "Package: bash\nStatus: install ok installed\nVersion: 5.2\n";
  // [what, the layer's dpkg directory, what is read]
  const cases: [string, (dpkg: string) => void, string][] = [
    ["a regular file", (d) => Deno.writeTextFileSync(`${d}/status`, real), real],
    ["a link inside the layer", (d) => {
      Deno.writeTextFileSync(`${d}/status.real`, real);
      Deno.symlinkSync("status.real", `${d}/status`);
    }, real],
    ["an absolute link: resolved in the layer, where nothing is", (d) => {
      Deno.symlinkSync(host, `${d}/status`);
    }, ""],
    ["a link climbing out: stops at the layer's root", (d) => {
      Deno.symlinkSync(`../../../../../../../..${host}`, `${d}/status`);
    }, ""],
    ["a directory", (d) => Deno.mkdirSync(`${d}/status`), ""],
  ];
  for (const [what, make, want] of cases) {
    assertEquals(baseStatus(store, [layerWith(make)]), want, what);
  }
});

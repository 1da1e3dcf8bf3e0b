/**
 * Volumes through the CLI: an image service (busybox image built here, pushed to a docker-registry
 * on 127.0.0.1) writes to a named volume seeded from the image, reads a read-only bind of a
 * project directory (and cannot write to it), and has a tmpfs; `hd down` keeps the volume (and
 * snapshots it into the store as `volumes/<env>/<name>`), `hd up` finds the data again, and
 * `hd down -v` removes the directory and the ref. Plus the pure decisions (which volumes `-v`
 * removes) and the hd.toml forms as tables.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { getWanted } from "./_http.ts";
import { throwsHd } from "../config/_util.ts";
import { freePort } from "../oci/_fixtures.ts";
import { imageRegistry, serviceImageLayers } from "../sandbox/_image.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { Store } from "../../src/cas/store.ts";
import { Tree } from "../../src/dag/tree.ts";
import { bindSource, volumesToRemove } from "../../src/runtime/volumes.ts";
import { secretFile } from "../../src/runtime/secrets.ts";
import { exists } from "../../src/sys/fs.ts";

Deno.test("volumesToRemove: only this environment's volume names", () => {
  const table: [string, string[], string[], string[]][] = [
    ["app", ["data", "cache"], [], ["cache", "data"]],
    ["app", [], ["volumes/app/data", "volumes/other/x", "builds/ab", "envs/app"], ["data"]],
    // a ref of environment "app" never matches "volumes/app/x/y" (no such env or volume name)
    ["app", [], ["volumes/app/x/y", "volumes/apple/z", "volumes/app/"], []],
    // what is not a volume name in the directory is left alone
    ["app", [".", "..", "data.tmp-1", ".hidden", "UPPER", "ok"], [], ["data.tmp-1", "ok"]],
    ["app", ["data"], ["volumes/app/data"], ["data"]],
  ];
  for (const [env, dirs, refs, want] of table) {
    assertEquals(volumesToRemove(env, dirs, refs), want, `${env} ${dirs} ${refs}`);
  }
});

Deno.test("volumes and tmpfs in hd.toml: forms and located errors", () => {
  const load = (svc: string, base = "") =>
    parseSpec(
      `[environment]\nname = "t"\n${base}\n[services.db]\nimage = "r"\n${svc}\n`,
      "/p/hd.toml",
    );
  const s = load(
    `volumes = ["data:/var/lib/x", "./src/:/app/src:ro", "/anon", ".:/proj",
  { type = "bind", source = "conf", target = "/etc/x", read_only = true },
  { type = "tmpfs", target = "/cache" }, "seed:/s:ro,nocopy"]
tmpfs = ["/run"]`,
  ).services.db;
  assertEquals(s.volumes, [
    { type: "volume", source: "data", target: "/var/lib/x", read_only: false },
    { type: "bind", source: "src", target: "/app/src", read_only: true },
    { type: "volume", source: "", target: "/anon", read_only: false },
    { type: "bind", source: ".", target: "/proj", read_only: false },
    { type: "bind", source: "conf", target: "/etc/x", read_only: true },
    { type: "tmpfs", source: "", target: "/cache", read_only: false },
    { type: "volume", source: "seed", target: "/s", read_only: true, nocopy: true },
    { type: "tmpfs", source: "", target: "/run", read_only: false },
  ]);
  const bad: [string, string][] = [
    ['volumes = ["../x:/a"]', 'leaves the project (a ".." component)'],
    ['volumes = ["/etc:/a"]', "is an absolute path"],
    ['volumes = ["~/x:/a"]', "names a home directory"],
    ['volumes = ["data:rel"]', "must be an absolute path inside the container"],
    ['volumes = ["data:/a/../b"]', 'has a ".." component'],
    ['volumes = ["data:/"]', "cannot be mounted on / itself"],
    ['volumes = ["data:/proc/x"]', "inside /proc"],
    ['volumes = ["data:/dev"]', "inside /dev"],
    ['volumes = ["Data:/a"]', 'volume name "Data" is not valid'],
    ['volumes = ["data:/a:rx"]', 'volume mode "rx" is not known'],
    ['volumes = ["a:/x", "b:/x/"]', "two volumes of the service mount /x"],
    ['volumes = [{ type = "nfs", target = "/x" }]', 'type must be "volume", "bind" or "tmpfs"'],
    ['volumes = [{ type = "bind", target = "/x" }]', "a bind mount needs a source"],
    ['volumes = [{ source = "d" }]', "a volume needs a target"],
    ['volumes = [{ source = "d", target = "/x", ro = true }]', 'unknown key "ro"'],
    ['tmpfs = ["run"]', "must be an absolute path"],
  ];
  for (const [svc, want] of bad) {
    const e = throwsHd(() => load(svc));
    assert(e.message.includes(want), `${svc}: ${e.message}`);
    assert(/hd\.toml:\d+:\d+: /.test(e.message), e.message);
  }
  // a host service cannot have volumes; a service of a base can
  const host = throwsHd(() =>
    parseSpec(
      `[environment]\nname = "t"\n[services.a]\ncommand = "x"\nvolumes = ["d:/x"]\n`,
      "/p/hd.toml",
    )
  );
  assert(host.message.includes("volumes needs a sandbox"), host.message);
  const onBase = parseSpec(
    `[environment]\nname = "t"\nbase = "b"\n[services.a]\ncommand = "x"\ntmpfs = ["/run"]\n` +
      `[volumes.d]\n`,
    "/p/hd.toml",
  );
  assertEquals(onBase.services.a.volumes?.length, 1);
  assertEquals(onBase.volumes, ["d"]);
});

const skip = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

const get = (url: string, ms = 20_000) => getWanted(url, undefined, ms);

testIf(skip, "a named volume survives hd down / hd up; hd down -v removes it", async () => {
  using tmp = tempDir();
  const { reg, ref } = await imageRegistry(tmp.path, serviceImageLayers(), "vol", {
    Env: ["PATH=/bin"],
  });
  const store = `${tmp.path}/store`;
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/conf`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/conf/c.txt`, "project config\n");
  const port = freePort();
  const script = [
    "cat /proc/sys/kernel/random/uuid >> /srv/starts",
    "cat /conf/c.txt > /srv/conf-copy",
    "if touch /conf/x 2>/dev/null; then echo writable; else echo refused; fi > /srv/ro",
    "grep -q ' /run tmpfs ' /proc/mounts && echo tmpfs > /srv/runfs",
    `exec httpd -f -p 127.0.0.1:${port} -h /srv`,
  ].join("; ");
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "e2e-vol"

[services.db]
image = "${ref}"
command = ${JSON.stringify(["sh", "-c", script])}
volumes = ["data:/srv", "./conf:/conf:ro"]
tmpfs = ["/run"]
port = ${port}

[volumes.data]
`,
  );
  const url = `http://127.0.0.1:${port}`;
  const volDir = `${store}/volumes/e2e-vol/data`;
  try {
    let r = await hd(["up", "-d"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    await reg.stop();
    // seeded from the image's /srv on first use
    assertEquals(await get(`${url}/index.html`), "hello from /srv\n");
    assertEquals(await get(`${url}/conf-copy`), "project config\n");
    assertEquals(await get(`${url}/ro`), "refused\n");
    assertEquals(await get(`${url}/runfs`), "tmpfs\n");
    assert(!exists(`${dir}/conf/x`), "the read-only bind was written");
    const first = await get(`${url}/starts`);
    assertEquals(first.split("\n").filter((l) => l).length, 1);

    r = await hd(["down"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assert(exists(`${volDir}/starts`), "the volume's directory is kept");
    {
      // snapshotted into the store: the tree holds what the service wrote
      const s = Store.open(store);
      const id = s.getRef("volumes/e2e-vol/data");
      assert(id, `no ref volumes/e2e-vol/data (${r.stderr})`);
      const t = Tree.load(s, id);
      assert(t.get("starts") && t.get("index.html"), "snapshot lacks files");
    }
    // gc keeps it (the ref is a root), verify checks it
    r = await hd(["cas", "gc"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    r = await hd(["cas", "verify"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    // the directory is the working copy: lost, it is checked out again from the store
    Deno.removeSync(volDir, { recursive: true });

    r = await hd(["up", "-d"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    const second = await get(`${url}/starts`);
    const lines = second.split("\n").filter((l) => l);
    assertEquals(lines.length, 2, second);
    assertEquals(lines[0], first.trim());

    r = await hd(["down", "-v"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assert(!exists(volDir), "hd down -v left the volume");
    assertEquals(Store.open(store).getRef("volumes/e2e-vol/data"), null);

    r = await hd(["up", "-d"], { store, cwd: dir });
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertEquals((await get(`${url}/starts`)).split("\n").filter((l) => l).length, 1);
  } finally {
    await hd(["down", "-v"], { store, cwd: dir });
    await reg.stop().catch(() => {});
  }
  assert(!exists(`${dir}/.hd/sandbox/services/db/upper`));
});

Deno.test("binds and file secrets refuse a symbolic link in their path", () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/proj`;
  Deno.mkdirSync(`${dir}/real`, { recursive: true });
  Deno.symlinkSync("/etc", `${dir}/conf`);
  Deno.symlinkSync("real", `${dir}/inner`);
  assertEquals(bindSource(dir, "real", "t"), `${dir}/real`);
  assertEquals(bindSource(dir, ".", "t"), dir);
  // a missing source is created as a directory, inside the project
  assertEquals(bindSource(dir, "new/sub", "t"), `${dir}/new/sub`);
  assert(Deno.statSync(`${dir}/new/sub`).isDirectory);
  for (const rel of ["conf", "conf/x", "inner/y"]) {
    const e = throwsHd(() => bindSource(dir, rel, 'service "db"'));
    assert(e.message.includes("is a symbolic link"), e.message);
  }
  assert(!exists("/etc/x"));
  const spec = parseSpec(
    `[environment]\nname = "s"\n[secrets.a]\nfile = "conf/passwd"\n`,
    `${dir}/hd.toml`,
    { env: {} },
  );
  const e = throwsHd(() => secretFile(spec, "a"));
  assert(e.message.includes("conf is a symbolic link"), e.message);
});

/**
 * End to end: an image built from Debian's busybox-static (layer 1 by GNU tar, layer 2 with a
 * whiteout, an opaque directory, a pax long name and a hardlink into layer 1) is pushed by skopeo
 * to a real docker-registry on 127.0.0.1, pulled by `hd pull`, checked out, and compared with
 * what `umoci unpack` makes of the same image. The same image read as `oci:` and as
 * `docker-archive:` must give the same root filesystem hash.
 */
import { lexists as exists } from "../../src/sys/fs.ts";
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { Tree } from "../../src/dag/tree.ts";
import { MemDir } from "../../src/dag/tree.ts";
import { pullImage, type PullProgress } from "../../src/oci/image.ts";
import { describeTree, makeTar, run, sha256, startRegistry, writeLayout } from "./_fixtures.ts";

const skip = skipUnless({
  commands: ["docker-registry", "skopeo", "umoci", "tar"],
  paths: ["/bin/busybox"],
});

function buildRootfs(dir: string): void {
  const mk = (p: string, mode = 0o755) => {
    Deno.mkdirSync(`${dir}/${p}`, { recursive: true });
    Deno.chmodSync(`${dir}/${p}`, mode);
  };
  Deno.chmodSync(dir, 0o755);
  for (const d of ["bin", "etc", "data/sub", "opt", "usr/bin", "var/empty"]) mk(d);
  Deno.copyFileSync("/bin/busybox", `${dir}/bin/busybox`);
  Deno.chmodSync(`${dir}/bin/busybox`, 0o755);
  for (const l of ["sh", "ls", "cat"]) Deno.symlinkSync("busybox", `${dir}/bin/${l}`);
  Deno.writeTextFileSync(`${dir}/etc/motd`, "hello from layer 1\n");
  Deno.writeTextFileSync(`${dir}/etc/secret`, "s3cret\n");
  Deno.chmodSync(`${dir}/etc/secret`, 0o600);
  Deno.chownSync(`${dir}/etc/secret`, 1000, 1000);
  Deno.writeTextFileSync(`${dir}/data/a`, "a\n");
  Deno.writeTextFileSync(`${dir}/data/sub/c`, "c\n");
  Deno.writeTextFileSync(`${dir}/opt/keep`, "keep\n");
  Deno.writeTextFileSync(`${dir}/usr/bin/hl1`, "linked twice\n");
  Deno.linkSync(`${dir}/usr/bin/hl1`, `${dir}/usr/bin/hl2`);
  Deno.writeTextFileSync(`${dir}/usr/bin/suid`, "#!/bin/sh\n");
  Deno.chmodSync(`${dir}/usr/bin/suid`, 0o4755);
  Deno.chownSync(`${dir}/var/empty`, 33, 33);
  // A file big enough for a manifest (more than 8 chunks).
  const big = new Uint8Array(600_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  Deno.writeFileSync(`${dir}/opt/big.bin`, big);
}

const LONG = "deep/" + "x".repeat(60) + "/" + "y".repeat(60) + "/long-name.txt";

function layer2(): Uint8Array {
  return makeTar([
    { path: "etc/", type: "dir" },
    { path: "etc/.wh.motd" },
    { path: "data/", type: "dir", mode: 0o750 },
    { path: "data/.wh..wh..opq" },
    { path: "data/new", data: "new in layer 2\n", uid: 1000, gid: 1000 },
    { path: "opt/", type: "dir" },
    { path: "opt/newfile", data: "added\n", mode: 0o640 },
    { path: "bin/", type: "dir" },
    { path: "bin/hello", type: "symlink", link: "busybox" },
    { path: "usr/", type: "dir" },
    { path: "usr/bin/", type: "dir" },
    { path: "usr/bin/hl3", type: "hardlink", link: "usr/bin/hl1" },
    { path: LONG, data: "pax path\n" },
  ]);
}

testIf(
  skip,
  "pull from docker-registry matches umoci unpack; oci: and docker-archive: agree",
  async () => {
    using tmp = tempDir("hd-oci-pull-");
    const root = `${tmp.path}/rootfs`;
    Deno.mkdirSync(root);
    buildRootfs(root);
    const l1 = await new Deno.Command("tar", {
      args: ["--numeric-owner", "-C", root, "-cf", "-", "."],
      stdout: "piped",
    }).output();
    assert(l1.success);
    const layout = `${tmp.path}/layout`;
    writeLayout(layout, "1", [{ tar: l1.stdout }, { tar: layer2() }]);
    const reg = await startRegistry(tmp.path);
    try {
      await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        `oci:${layout}:1`,
        `docker://${reg.host}/test:1`,
      ]);
      const store = `${tmp.path}/store`;
      const p = await hd(["pull", `${reg.host}/test:1`, "--json"], { store });
      assertEquals(p.code, 0, p.stderr);
      const img = JSON.parse(p.stdout);
      assert(/^sha256:[0-9a-f]{64}$/.test(img.digest));
      assertEquals(img.layers.length, 2);
      assertEquals(img.layers[0].diffId, sha256(l1.stdout));

      // Materialize and compare with umoci.
      const out = `${tmp.path}/out`;
      const c = await hd(["cas", "checkout", img.rootfs, out], { store });
      assertEquals(c.code, 0, c.stderr);
      await run("umoci", ["unpack", "--image", `${layout}:1`, `${tmp.path}/bundle`]);
      await run("diff", ["-r", "--no-dereference", out, `${tmp.path}/bundle/rootfs`]);
      assertEquals(await describeTree(out), await describeTree(`${tmp.path}/bundle/rootfs`));
      // The merge did what the layers say.
      assert(!exists(`${out}/etc/motd`), "whiteout removed etc/motd");
      assert(!exists(`${out}/data/a`) && !exists(`${out}/data/sub`), "opaque dir emptied data/");
      assertEquals(Deno.readTextFileSync(`${out}/data/new`), "new in layer 2\n");
      assertEquals(Deno.readTextFileSync(`${out}/${LONG}`), "pax path\n");
      assertEquals(Deno.readTextFileSync(`${out}/usr/bin/hl3`), "linked twice\n");
      assertEquals(Deno.statSync(`${out}/usr/bin/suid`).mode! & 0o7777, 0o4755);
      assertEquals(Deno.statSync(`${out}/etc/secret`).uid, 1000);

      // The layer's own tree keeps its whiteouts as plain files, under layers/sha256-<diff_id>.
      const s = Store.open(store, { create: false });
      const l2ref = s.getRef(`layers/${img.layers[1].diffId.replace(":", "-")}`);
      assertEquals(l2ref, img.layers[1].tree);
      const lt = Tree.load(s, l2ref!);
      assert(lt.get("etc/.wh.motd") !== undefined);
      assert(lt.get("data/.wh..wh..opq") !== undefined);
      assert(lt.get("data") instanceof MemDir);

      // Same image through the two local sources: same root filesystem.
      const o = await hd(["pull", `oci:${layout}:1`, "--json"], { store });
      assertEquals(o.code, 0, o.stderr);
      assertEquals(JSON.parse(o.stdout).rootfs, img.rootfs);
      const archive = `${tmp.path}/img.tar`;
      await run("skopeo", ["copy", `oci:${layout}:1`, `docker-archive:${archive}:test:1`]);
      const a = await hd(["pull", `docker-archive:${archive}`, "--json"], { store: `${store}2` });
      assertEquals(a.code, 0, a.stderr);
      assertEquals(JSON.parse(a.stdout).rootfs, img.rootfs);

      // gc keeps everything the image record names; verify finds nothing wrong.
      const gc = await hd(["cas", "gc"], { store });
      assertEquals(gc.code, 0, gc.stderr);
      const v = await hd(["cas", "verify"], { store });
      assertEquals(v.code, 0, v.stdout + v.stderr);
      const out2 = `${tmp.path}/out2`;
      assertEquals((await hd(["cas", "checkout", img.rootfs, out2], { store })).code, 0);
      await run("diff", ["-r", "--no-dereference", out, out2]);

      // Re-pull: up to date, nothing fetched.
      const again = await hd(["pull", `${reg.host}/test:1`, "--json"], { store });
      assertEquals(again.code, 0, again.stderr);
      assertEquals(JSON.parse(again.stdout).upToDate, true);
      assertEquals(JSON.parse(again.stdout).rootfs, img.rootfs);

      const list = await hd(["images", "--json"], { store });
      assertEquals(list.code, 0, list.stderr);
      const names = JSON.parse(list.stdout).map((i: { name: string }) => i.name);
      assert(names.includes(`${reg.host}/test:1`));
      assertEquals(names.length, 2);

      // A second image sharing layer 1: only the new layer is fetched.
      writeLayout(layout, "2", [{ tar: l1.stdout }, {
        tar: makeTar([{ path: "etc/extra", data: "2\n" }]),
      }]);
      await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        `oci:${layout}:2`,
        `docker://${reg.host}/test:2`,
      ]);
      const states: PullProgress["state"][] = [];
      const img2 = await pullImage(s, `${reg.host}/test:2`, {
        onProgress: (e) => e.state !== "fetch" && states.push(e.state),
      });
      assertEquals(states, ["cached", "done"]);
      const t2 = Tree.load(s, img2.rootfs);
      assert(t2.get("etc/extra") !== undefined && t2.get("etc/motd") !== undefined);
    } finally {
      await reg.stop();
    }
  },
);

testIf(skip, "zstd and gzip layers of the same tars give the same trees", async () => {
  using tmp = tempDir("hd-oci-zstd-");
  const t1 = makeTar([
    { path: "./", type: "dir" },
    { path: "a/b/c.txt", data: "c" },
    { path: "dev/null", type: "char", major: 1, minor: 3, mode: 0o666 },
    { path: "fifo", type: "fifo" },
  ]);
  const t2 = makeTar([{ path: "a/.wh.b" }, { path: "z", data: "z" }]);
  writeLayout(`${tmp.path}/l`, "gz", [{ tar: t1 }, { tar: t2 }]);
  writeLayout(`${tmp.path}/l`, "zst", [{ tar: t1, compression: "zstd" }, {
    tar: t2,
    compression: "none",
  }]);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const a = await pullImage(store, `oci:${tmp.path}/l:gz`);
  const b = await pullImage(store, `oci:${tmp.path}/l:zst`);
  assertEquals(a.rootfs, b.rootfs);
  assertEquals(a.layers.map((l) => l.tree), b.layers.map((l) => l.tree));
  const t = Tree.load(store, a.rootfs);
  assertEquals(t.get("a/b"), undefined);
  const dev = t.get("dev/null");
  assert(dev !== undefined && !(dev instanceof MemDir));
  assertEquals(dev.mode, 0o020666);
  assertEquals(dev.rdev, 0x103);
});

Deno.test("a legacy `docker save` archive (layer dirs, a symlinked repeated layer)", async () => {
  using tmp = tempDir("hd-oci-save-");
  const layer = makeTar([{ path: "etc/", type: "dir" }, { path: "etc/os", data: "saved\n" }]);
  const top = makeTar([{ path: "etc/.wh.os" }, { path: "etc/new", data: "top\n" }]);
  const config = new TextEncoder().encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [sha256(layer), sha256(layer), sha256(top)] },
  }));
  const cfgName = `${sha256(config).slice(7)}.json`;
  const manifest = JSON.stringify([{
    Config: cfgName,
    RepoTags: ["saved:1"],
    Layers: ["aaa/layer.tar", "bbb/layer.tar", "ccc/layer.tar"],
  }]);
  const archive = makeTar([
    { path: "aaa/", type: "dir" },
    { path: "aaa/layer.tar", data: layer },
    { path: "bbb/", type: "dir" },
    { path: "bbb/layer.tar", type: "symlink", link: "../aaa/layer.tar" },
    { path: "ccc/layer.tar", data: top },
    { path: cfgName, data: config },
    { path: "manifest.json", data: manifest },
  ]);
  Deno.writeFileSync(`${tmp.path}/save.tar`, archive);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const img = await pullImage(store, `docker-archive:${tmp.path}/save.tar:saved:1`);
  assertEquals(img.digest, sha256(config));
  assertEquals(img.layers.length, 3);
  const t = Tree.load(store, img.rootfs);
  assertEquals(t.get("etc/os"), undefined);
  assert(t.get("etc/new") !== undefined);
});

testIf(
  skipUnless({ commands: ["umoci", "tar"] }),
  "a tree of this host's real files (owners, setuid, hardlinks) matches umoci unpack",
  async () => {
    using tmp = tempDir("hd-oci-host-");
    const paths = [
      "etc",
      "usr/share/zoneinfo",
      "usr/lib/x86_64-linux-gnu/perl-base",
      "usr/bin/passwd",
      "usr/bin/chage",
      "usr/bin/su",
    ].filter((p) => {
      try {
        Deno.lstatSync(`/${p}`);
        return true;
      } catch {
        return false;
      }
    });
    const t = await new Deno.Command("tar", {
      args: ["--numeric-owner", "-C", "/", "-cf", "-", ...paths],
      stdout: "piped",
      stderr: "null",
    }).output();
    const layout = `${tmp.path}/layout`;
    writeLayout(layout, "host", [{ tar: t.stdout }]);
    const store = `${tmp.path}/store`;
    const p = await hd(["pull", `oci:${layout}:host`, "--json"], { store });
    assertEquals(p.code, 0, p.stderr);
    const out = `${tmp.path}/out`;
    const c = await hd(["cas", "checkout", JSON.parse(p.stdout).rootfs, out], { store });
    assertEquals(c.code, 0, c.stderr);
    await run("umoci", ["unpack", "--image", `${layout}:host`, `${tmp.path}/bundle`]);
    await run("diff", ["-r", "--no-dereference", out, `${tmp.path}/bundle/rootfs`]);
    assertEquals(await describeTree(out), await describeTree(`${tmp.path}/bundle/rootfs`));
  },
);

testIf(
  skipUnless({ root: true, commands: ["umoci"] }),
  "hardlinks of an image stay hardlinks in hd cas checkout and materialized layers (as umoci)",
  async () => {
    using tmp = tempDir("hd-oci-hl-");
    const layout = `${tmp.path}/layout`;
    const tar = makeTar([
      { path: "bin/", type: "dir" },
      { path: "bin/busybox", data: "big binary\n", mode: 0o755, mtime: 1700000000 },
      { path: "bin/ls", type: "hardlink", link: "bin/busybox" },
      { path: "bin/cat", type: "hardlink", link: "bin/busybox" },
      // the same bytes and metadata but not a link in the tar: two inodes, as umoci makes it
      { path: "bin/twin1", data: "same\n", mode: 0o644, mtime: 1700000000 },
      { path: "bin/twin2", data: "same\n", mode: 0o644, mtime: 1700000000 },
    ]);
    writeLayout(layout, "hl", [{ tar }]);
    const store = `${tmp.path}/store`;
    const p = await hd(["pull", `oci:${layout}:hl`, "--json"], { store });
    assertEquals(p.code, 0, p.stderr);
    const pulled = JSON.parse(p.stdout);
    await run("umoci", ["unpack", "--image", `${layout}:hl`, `${tmp.path}/bundle`]);
    const inodes = (d: string) =>
      ["busybox", "ls", "cat", "twin1", "twin2"].map((n) => Deno.lstatSync(`${d}/bin/${n}`));
    const shape = (d: string) => {
      const s = inodes(d);
      return s.map((x) => [s.findIndex((y) => y.ino === x.ino), x.nlink]);
    };
    const expected = shape(`${tmp.path}/bundle/rootfs`);
    assertEquals(expected, [[0, 3], [0, 3], [0, 3], [3, 1], [4, 1]]);
    const out = `${tmp.path}/out`;
    const c = await hd(["cas", "checkout", pulled.rootfs, out], { store });
    assertEquals(c.code, 0, c.stderr);
    assertEquals(shape(out), expected, "checkout");
    const { materializeLayer } = await import("../../src/sandbox/layers.ts");
    const s = Store.open(store);
    const m = materializeLayer(s, pulled.layers[0].tree);
    assertEquals(shape(m.dir), expected, "materialized layer");
  },
);

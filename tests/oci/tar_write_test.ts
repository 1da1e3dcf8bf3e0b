/**
 * The layer tar writer: a layer with hardlinks, xattrs, a device, a fifo, setuid and sticky modes,
 * owners, long and non-ASCII names, whiteouts and an opaque marker goes tree → tar → tree unchanged
 * (the same tree id); the bytes are the same twice; GNU tar lists what it wrote.
 */
import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { unpackLayer } from "../../src/oci/unpack.ts";
import { layerTar, splitDev } from "../../src/oci/tar_write.ts";
import { gzip, makeTar, run, sha256 } from "./_fixtures.ts";

const LONG = "deep/" + "n".repeat(120) + "/f.txt";

function layer(): Uint8Array {
  return makeTar([
    { path: "bin/", type: "dir" },
    { path: "bin/tool", data: "#!/bin/sh\necho tool\n", mode: 0o4755, uid: 0, gid: 0 },
    { path: "bin/tool2", type: "hardlink", link: "bin/tool" },
    { path: "etc/", type: "dir" },
    { path: "etc/.wh.gone" },
    { path: "opt/", type: "dir", uid: 1000, gid: 1000 },
    { path: "opt/.wh..wh..opq" },
    { path: "opt/cap", data: "x", xattrs: { "security.capability": new Uint8Array([1, 0, 0, 2]) } },
    { path: "opt/user", data: "y", xattrs: { "user.note": "héllo" }, uid: 70000, gid: 5 },
    { path: "tmp/", type: "dir", mode: 0o1777 },
    { path: "dev/", type: "dir" },
    { path: "dev/null", type: "char", major: 1, minor: 3, mode: 0o666 },
    { path: "dev/fifo", type: "fifo" },
    { path: "deep/", type: "dir" },
    { path: `deep/${"n".repeat(120)}/`, type: "dir" },
    { path: LONG, data: "long\n" },
    { path: "link", type: "symlink", link: "t".repeat(150) },
  ]);
}

testIf(
  skipUnless({ commands: ["tar"] }),
  "layer tar: tree → tar → tree is the identity",
  async () => {
    using tmp = tempDir("hd-tarw-");
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const tar = layer();
    const a = await unpackLayer(store, ReadableStream.from([gzip(tar)]), {
      compressedSize: gzip(tar).length,
    });
    assert(a.root);
    const parts = [...layerTar(store, a.root!, { mtime: 0 })];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) (out.set(p, o), o += p.length);
    // unpack what we wrote: the same tree, except the mtimes (all 0 now)
    const b = await unpackLayer(store, ReadableStream.from([out]), { compressedSize: out.length });
    const again = [...layerTar(store, b.root!, { mtime: 0 })];
    const out2 = new Uint8Array(again.reduce((n, p) => n + p.length, 0));
    o = 0;
    for (const p of again) (out2.set(p, o), o += p.length);
    assertEquals(sha256(out2), sha256(out), "tar(tree(tar(tree))) is byte-identical");
    const c = await unpackLayer(store, ReadableStream.from([out2]), {
      compressedSize: out2.length,
    });
    assertEquals(c.root, b.root, "and the tree it gives is the same");
    // GNU tar reads it: names, hardlink, device, modes, owners, xattrs
    Deno.writeFileSync(`${tmp.path}/l.tar`, out);
    const list = (await run("tar", ["--xattrs", "-tvf", `${tmp.path}/l.tar`, "--numeric-owner"]))
      .replace(/ +/g, " ");
    for (
      const want of [
        "-rwsr-xr-x 0/0",
        "bin/tool2 link to bin/tool",
        "crw-rw-rw- 0/0",
        "1,3",
        "drwxrwxrwt",
        LONG,
        "etc/.wh.gone",
        "opt/.wh..wh..opq",
        "70000/5",
        "1970-01-01",
      ]
    ) assert(list.includes(want), `tar -tv shows ${want}:\n${list}`);
    const x = `${tmp.path}/x`;
    Deno.mkdirSync(x);
    await run("tar", ["--xattrs", "--xattrs-include=user.*", "-xf", `${tmp.path}/l.tar`, "-C", x]);
    assertEquals(Deno.readTextFileSync(`${x}/${LONG}`), "long\n");
    assertEquals(Deno.statSync(`${x}/bin/tool`).ino, Deno.statSync(`${x}/bin/tool2`).ino);
    assertEquals(Deno.readLinkSync(`${x}/link`), "t".repeat(150));
    const xa = await run("getfattr", ["-n", "user.note", "--only-values", `${x}/opt/user`]).catch(
      () => null,
    );
    if (xa !== null) assertEquals(xa, "héllo");
  },
);

Deno.test("splitDev is glibc's major/minor", () => {
  assertEquals(splitDev(0x0103), [1, 3]);
  assertEquals(splitDev(((0x12345 & 0xff) | ((0x12345 & ~0xff) << 12) | (0x234 << 8)) >>> 0), [
    0x234,
    0x12345,
  ]);
});

testIf(
  skipUnless({ commands: ["tar"] }),
  "a build step's hardlinks (captured, no mtime) are written as hardlinks",
  async () => {
    using tmp = tempDir();
    const src = `${tmp.path}/upper`;
    Deno.mkdirSync(`${src}/bin`, { recursive: true });
    Deno.writeTextFileSync(`${src}/bin/a`, "same bytes\n");
    Deno.linkSync(`${src}/bin/a`, `${src}/bin/b`);
    Deno.writeTextFileSync(`${src}/bin/c`, "same bytes\n"); // a copy, not a link
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const { captureLayer } = await import("../../src/sandbox/layers.ts");
    const cap = captureLayer(store, src);
    const parts = [...layerTar(store, cap.id)];
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) (out.set(p, o), o += p.length);
    Deno.writeFileSync(`${tmp.path}/l.tar`, out);
    const list = await run("tar", ["-tvf", `${tmp.path}/l.tar`]);
    assert(/bin\/b link to bin\/a/.test(list), list);
    assert(!/bin\/c link to/.test(list), list);
  },
);

/**
 * Extended attributes kept end to end: pax `SCHILY.xattr.*` (and `LIBARCHIVE.xattr.*`) records
 * are read by the tar reader, land on the File/Dir nodes of `hd pull`, come back on
 * `hd cas checkout` (read with getfattr), on layer materialization, and match `umoci unpack`.
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { lgetxattr, llistxattr, openLibc } from "../../ffi/libc.ts";
import { Store } from "../../src/cas/store.ts";
import type { FileNode } from "../../src/dag/node.ts";
import { type MemDir, Tree } from "../../src/dag/tree.ts";
import { type TarHeader, TarReader } from "../../src/oci/tar.ts";
import { materializeLayer } from "../../src/sandbox/layers.ts";
import { makeTar, run, writeLayout } from "./_fixtures.ts";

const te = new TextEncoder();
/** A VFS_CAP_REVISION_2 capability set: cap_net_raw=ep (what Debian's ping carries). */
const CAP = new Uint8Array([
  0x01,
  0x00,
  0x00,
  0x02,
  0x00,
  0x20,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
  0x00,
]);
/** Not UTF-8, with a newline and "=" inside: must survive byte for byte. */
const ODD = new Uint8Array([0xff, 0x0a, 0x3d, 0x00, 0xc3]);

function headers(tar: Uint8Array, piece = 7): TarHeader[] {
  const out: TarHeader[] = [];
  const r = new TarReader({ entry: (h) => out.push(h), data: () => {}, end: () => {} });
  for (let i = 0; i < tar.length; i += piece) r.push(tar.subarray(i, i + piece));
  r.finish();
  return out;
}

Deno.test("the tar reader keeps SCHILY.xattr values as raw bytes and decodes LIBARCHIVE.xattr", () => {
  const tar = makeTar([
    { path: "bin/", type: "dir", xattrs: { "user.dir": "d" } },
    { path: "bin/ping", data: "x", xattrs: { "security.capability": CAP, "user.odd": ODD } },
    {
      path: "bin/arch",
      data: "y",
      // libarchive: %-encoded name, base64 value without padding
      pax: [["LIBARCHIVE.xattr.user.sp%20ace", btoa("hello").replace(/=+$/, "")]],
    },
    { path: "bin/plain", data: "z" },
  ]);
  const hs = headers(tar);
  assertEquals(hs.map((h) => h.path), ["bin/", "bin/ping", "bin/arch", "bin/plain"]);
  assertEquals(hs[0].xattrs, [["user.dir", te.encode("d")]]);
  assertEquals(hs[1].xattrs, [["security.capability", CAP], ["user.odd", ODD]]);
  assertEquals(hs[2].xattrs, [["user.sp ace", te.encode("hello")]]);
  assertEquals(hs[3].xattrs, undefined, "records apply to the next entry only");
});

testIf(
  skipUnless({ commands: ["tar", "setfattr"] }),
  "reads the xattrs GNU tar --xattrs writes",
  async () => {
    using tmp = tempDir("hd-tar-xattr-");
    Deno.writeTextFileSync(`${tmp.path}/f`, "f\n");
    await run("setfattr", ["-n", "user.from-gnu", "-v", "0x00ff10", `${tmp.path}/f`]);
    const t = await new Deno.Command("tar", {
      args: [
        "--format=pax",
        "--xattrs",
        "--xattrs-include=user.*",
        "-C",
        tmp.path,
        "-cf",
        "-",
        "f",
      ],
      stdout: "piped",
    }).output();
    assert(t.success);
    const h = headers(t.stdout, 512).find((h) => h.path === "f")!;
    assertEquals(h.xattrs, [["user.from-gnu", new Uint8Array([0x00, 0xff, 0x10])]]);
  },
);

/** getfattr's hex dump of every xattr below `dir`, one `path name=0x…` line each, sorted. */
async function getfattr(dir: string): Promise<string[]> {
  const out = await new Deno.Command("getfattr", {
    args: ["-R", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines: string[] = [];
  let file = "";
  for (const l of new TextDecoder().decode(out.stdout).split("\n")) {
    if (l.startsWith("# file: ")) file = l.slice(8).slice(dir.length) || "/";
    else if (l.includes("=") && !l.startsWith("security.selinux")) lines.push(`${file} ${l}`);
  }
  return lines.sort();
}

const hex = (b: Uint8Array) => "0x" + [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

testIf(
  skipUnless({ commands: ["getfattr", "umoci"], root: true }),
  "hd pull keeps security.capability and user.* xattrs; checkout and umoci unpack agree",
  async () => {
    using tmp = tempDir("hd-oci-xattr-");
    const layout = `${tmp.path}/layout`;
    const layer1 = makeTar([
      { path: "bin/", type: "dir", mode: 0o755, xattrs: { "user.dir": "bin" } },
      {
        path: "bin/ping",
        data: "#!/bin/sh\necho pong\n",
        mode: 0o755,
        xattrs: { "security.capability": CAP, "user.note": "ping needs raw sockets" },
      },
      { path: "bin/plain", data: "no xattrs\n", mode: 0o644 },
      { path: "etc/", type: "dir" },
      { path: "etc/odd", data: "odd\n", xattrs: { "user.odd": ODD } },
    ]);
    // Layer 2 replaces etc/odd without xattrs: the lower file's xattrs must not survive.
    const layer2 = makeTar([
      { path: "etc/", type: "dir" },
      { path: "etc/odd", data: "odd, again\n" },
      { path: "etc/new", data: "new\n", xattrs: { "user.layer": "2" } },
    ]);
    writeLayout(layout, "1", [{ tar: layer1 }, { tar: layer2 }]);
    const store = `${tmp.path}/store`;
    const p = await hd(["pull", `oci:${layout}:1`, "--json"], { store });
    assertEquals(p.code, 0, p.stderr);
    const img = JSON.parse(p.stdout);

    // The nodes carry them.
    const s = Store.open(store, { create: false });
    const t = Tree.load(s, img.rootfs);
    const ping = t.get("bin/ping") as FileNode;
    assertEquals(ping.xattrs, [
      ["security.capability", CAP],
      ["user.note", te.encode("ping needs raw sockets")],
    ]);
    assertEquals((t.get("bin/plain") as FileNode).xattrs, undefined);
    assertEquals((t.get("etc/odd") as FileNode).xattrs, undefined);
    assertEquals((t.get("bin") as MemDir).meta.xattrs, [["user.dir", te.encode("bin")]]);

    // Checkout: read back with getfattr, compare with umoci's unpack of the same layout.
    const out = `${tmp.path}/out`;
    const c = await hd(["cas", "checkout", img.rootfs, out], { store });
    assertEquals(c.code, 0, c.stderr);
    assert(!c.stderr.includes("skipped"), c.stderr);
    const ours = await getfattr(out);
    assertEquals(ours, [
      `/bin user.dir=${hex(te.encode("bin"))}`,
      `/bin/ping security.capability=${hex(CAP)}`,
      `/bin/ping user.note=${hex(te.encode("ping needs raw sockets"))}`,
      `/etc/new user.layer=${hex(te.encode("2"))}`,
    ]);
    await run("umoci", ["unpack", "--image", `${layout}:1`, `${tmp.path}/bundle`]);
    assertEquals(ours, await getfattr(`${tmp.path}/bundle/rootfs`));
    assertEquals(Deno.readTextFileSync(`${out}/bin/ping`), "#!/bin/sh\necho pong\n");

    // Layer materialization (the overlay lowerdirs) applies them too.
    const libc = openLibc();
    try {
      const m = materializeLayer(s, img.layers[0].tree);
      assertEquals(m.xattrsSkipped, 0);
      assertEquals(m.xattrs, 4);
      assertEquals(lgetxattr(libc, `${m.dir}/bin/ping`, "security.capability"), CAP);
      assertEquals(lgetxattr(libc, `${m.dir}/etc/odd`, "user.odd"), ODD);
      assertEquals(llistxattr(libc, `${m.dir}/bin/plain`), []);
    } finally {
      libc.close();
    }
  },
);

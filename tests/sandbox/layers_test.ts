/**
 * Layer directories round-trip: a directory with the things root filesystems hold (setuid, other
 * owners, a fifo, a device node, symlinks, private directories) and overlay whiteouts is captured
 * as a layer tree and materialized again, and `find` sees the same thing.
 * @module
 */
import { assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode } from "../../src/dag/dag.ts";
import {
  captureLayer,
  materializeLayer,
  OPAQUE_MARKER,
  OPAQUE_XATTR,
} from "../../src/sandbox/layers.ts";
import { libc } from "../../src/sys/libc.ts";
import { describeTree } from "../oci/_fixtures.ts";

const skip = skipUnless({ root: true, commands: ["find"] });

testIf(
  skip,
  "capture → materialize keeps modes, owners, devices, fifos, links, whiteouts",
  async () => {
    using tmp = tempDir();
    const src = `${tmp.path}/src`;
    Deno.mkdirSync(`${src}/usr/bin`, { recursive: true });
    Deno.writeTextFileSync(`${src}/usr/bin/su`, "#!/bin/sh\n");
    Deno.chmodSync(`${src}/usr/bin/su`, 0o4755);
    Deno.mkdirSync(`${src}/home/u`, { recursive: true });
    Deno.writeTextFileSync(`${src}/home/u/.profile`, "x=1\n");
    Deno.chownSync(`${src}/home/u/.profile`, 1000, 1000);
    Deno.chownSync(`${src}/home/u`, 1000, 1000);
    Deno.chmodSync(`${src}/home/u`, 0o700);
    Deno.symlinkSync("../usr/bin/su", `${src}/home/su-link`);
    libc().mknod(`${src}/home/fifo`, 0o010644, 0);
    libc().mknod(`${src}/home/null`, 0o020666, (1 << 8) | 3);
    // overlay whiteouts
    libc().mknodChar(`${src}/home/gone`, 0);
    Deno.mkdirSync(`${src}/opt/fresh`, { recursive: true });
    libc().setxattr(`${src}/opt/fresh`, OPAQUE_XATTR, "y");

    const store = Store.open(`${tmp.path}/store`, { create: true });
    const cap = captureLayer(store, src);
    assertEquals(cap.whiteouts, 2);
    const home = getNode(store, cap.id);
    assertEquals(home.type, "dir");
    const l = materializeLayer(store, cap.id);
    assertEquals(await describeTree(l.dir), await describeTree(src));
    assertEquals(Deno.lstatSync(`${l.dir}/home/null`).rdev, (1 << 8) | 3);
    assertEquals(Deno.lstatSync(`${l.dir}/home/gone`).rdev, 0);
    assertEquals(libc().getxattr(`${l.dir}/opt/fresh`, OPAQUE_XATTR), "y");
    // the tree itself holds OCI whiteouts, not devices
    const opt = getNode(store, cap.id);
    if (opt.type === "dir") {
      const o = opt.entries.find((e) => e.name === "opt")!;
      const fresh = getNode(store, o.dir!);
      const f = fresh.type === "dir" ? fresh.entries.find((e) => e.name === "fresh")! : null;
      const inner = getNode(store, f!.dir!);
      assertEquals(inner.type === "dir" ? inner.entries.map((e) => e.name) : [], [OPAQUE_MARKER]);
    }
    // capturing the materialized layer gives the same id
    assertEquals(captureLayer(store, l.dir).id, cap.id);
  },
);

testIf(skip, "capture keeps a step's hardlinks as one inode and its xattrs, not overlay's", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(`${src}/usr/bin`, { recursive: true });
  Deno.writeTextFileSync(`${src}/usr/bin/perl`, "#!perl\n");
  Deno.linkSync(`${src}/usr/bin/perl`, `${src}/usr/bin/perl5.36`);
  Deno.writeTextFileSync(`${src}/usr/bin/alone`, "#!perl\n"); // same bytes, its own inode
  const xattrs = (() => {
    try {
      libc().setxattr(`${src}/usr/bin/alone`, "user.mark", "kept");
      libc().setxattr(`${src}/usr/bin`, "trusted.hd-test", new Uint8Array([1, 2, 3]));
      return true;
    } catch {
      return false; // a filesystem without xattrs: the hardlink half still runs
    }
  })();
  libc().setxattr(`${src}/usr`, "trusted.overlay.redirect", "/elsewhere");

  const store = Store.open(`${tmp.path}/store`, { create: true });
  const cap = captureLayer(store, src);
  const l = materializeLayer(store, cap.id);
  const a = Deno.lstatSync(`${l.dir}/usr/bin/perl`);
  const b = Deno.lstatSync(`${l.dir}/usr/bin/perl5.36`);
  const c = Deno.lstatSync(`${l.dir}/usr/bin/alone`);
  assertEquals([a.ino === b.ino, a.nlink, a.ino === c.ino], [true, 2, false]);
  assertEquals(Deno.readTextFileSync(`${l.dir}/usr/bin/perl5.36`), "#!perl\n");
  // overlayfs's own state is never part of a layer
  assertEquals(libc().getxattr(`${l.dir}/usr`, "trusted.overlay.redirect"), null);
  if (xattrs) {
    assertEquals(libc().getxattr(`${l.dir}/usr/bin/alone`, "user.mark"), "kept");
    assertEquals(libc().xattrs(`${l.dir}/usr/bin`, (n) => n.startsWith("trusted.hd")), [
      ["trusted.hd-test", new Uint8Array([1, 2, 3])],
    ]);
  } else console.log("skipped the xattr half: the temp filesystem refuses user/trusted xattrs");
  assertEquals(captureLayer(store, l.dir).id, cap.id, "a materialized layer captures the same");
});

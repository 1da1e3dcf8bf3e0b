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

/**
 * Layer directories round-trip: a directory with the things root filesystems hold (setuid, other
 * owners, a fifo, a device node, symlinks, private directories) and overlay whiteouts is captured
 * as a layer tree and materialized again, and `find` sees the same thing.
 * @module
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { randomBytes, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode } from "../../src/dag/dag.ts";
import { MemDir, Tree } from "../../src/dag/tree.ts";
import { S_IFDIR } from "../../src/sys/mode.ts";
import {
  captureLayer,
  layerWriters,
  materializeLayer,
  OPAQUE_MARKER,
  OPAQUE_XATTR,
} from "../../src/sandbox/layers.ts";
import { libc } from "../../src/sys/libc.ts";
import { needsChmod } from "../../src/sandbox/layer_writer.ts";
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

testIf(
  skip,
  "writer threads write the same layer as one thread (modes, owners, times, links)",
  async () => {
    using tmp = tempDir();
    const src = `${tmp.path}/src`;
    // enough files for both writers, with what the writers must get right
    for (let d = 0; d < 6; d++) {
      Deno.mkdirSync(`${src}/d${d}/sub`, { recursive: true });
      for (let i = 0; i < 60; i++) {
        const p = `${src}/d${d}/${i % 2 ? "sub/" : ""}f${i}`;
        Deno.writeTextFileSync(p, `file ${d}/${i}\n`.repeat(i));
        Deno.chmodSync(p, [0o644, 0o664, 0o600, 0o755, 0o4755, 0o2750, 0o1777, 0o444][i % 8]);
        if (i % 7 === 0) Deno.chownSync(p, 1000 + i, 100 + d);
        Deno.utimeSync(p, 1_600_000_000 + i, 1_600_000_000 + i * 17);
      }
      Deno.linkSync(`${src}/d${d}/f0`, `${src}/d${d}/sub/f0-link`);
      Deno.symlinkSync(`../f2`, `${src}/d${d}/sub/to-f2`);
    }
    // one file of several chunks
    Deno.writeFileSync(`${src}/d0/big`, randomBytes(3 << 20, 7));
    Deno.utimeSync(`${src}/d0/big`, 1_500_000_000, 1_500_000_000);

    const store = Store.open(`${tmp.path}/store`, { create: true });
    // an image layer's tree keeps mtimes (a captured upperdir does not): add them, as a pull does
    const captured = captureLayer(store, src);
    const tree = new Tree(new MemDir(S_IFDIR | 0o755));
    const addTimes = (id: string, rel: string) => {
      const node = getNode(store, id);
      if (node.type !== "dir") return;
      for (const e of node.entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.dir !== undefined) (tree.setDir(r, new MemDir(S_IFDIR | 0o755)), addTimes(e.dir, r));
        else {
          const st = Deno.lstatSync(`${src}/${r}`);
          tree.setFile(r, { ...e.file, mtime: Math.floor(st.mtime!.getTime() / 1000) });
        }
      }
    };
    addTimes(captured.id, "");
    const cap = { id: tree.commit(store) };
    const listing = async (dir: string) => {
      const times = new Deno.Command("find", {
        args: [".", "-type", "f", "-printf", "%P %T@ %n %i\n"],
        cwd: dir,
        stdout: "piped",
      }).outputSync();
      const lines = new TextDecoder().decode(times.stdout).trim().split("\n").sort();
      // inode numbers only say which names share one: renumber them in order of appearance
      const inos = new Map<string, number>();
      const renumbered = lines.map((l) => {
        const f = l.split(" ");
        f[3] = String(inos.get(f[3]) ?? inos.set(f[3], inos.size).get(f[3]));
        return f.join(" ");
      });
      return `${await describeTree(dir)}\n${renumbered.join("\n")}`;
    };
    const threads = materializeLayer(store, cap.id, { writers: 2, inlineFiles: 10 });
    const viaThreads = await listing(threads.dir);
    Deno.renameSync(threads.dir, `${tmp.path}/threads`);
    const one = materializeLayer(store, cap.id, { writers: 0 });
    assertEquals(one.created, true);
    assertEquals([threads.files, threads.bytes], [one.files, one.bytes]);
    assertEquals(viaThreads, await listing(one.dir));
    assertEquals(
      viaThreads.includes("d0/sub/f0-link 1600000000.0000000000 2 "),
      true,
      "hardlink and mtime kept",
    );
    assertEquals(await describeTree(one.dir), await describeTree(src));
  },
);

Deno.test("needsChmod: only when the open's mode cannot be the file's", () => {
  const cases: [number, number, boolean, boolean][] = [
    [0o100644, 0o022, false, false],
    [0o100755, 0o022, false, false],
    [0o100664, 0o022, false, true], // umask takes group write
    [0o100664, 0o002, false, false],
    [0o104755, 0o022, false, true], // setuid is not set by open
    [0o101777, 0o000, false, true], // sticky
    [0o100644, 0o022, true, true], // chown may clear bits
    [0o100600, 0o077, false, false],
  ];
  for (const [mode, umask, chowned, want] of cases) {
    assertEquals(
      needsChmod(mode, umask, chowned),
      want,
      `${mode.toString(8)} ${umask.toString(8)}`,
    );
  }
});

testIf(skip, "a writer thread's failure fails the layer and leaves nothing behind", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(`${src}/d`, { recursive: true });
  for (let i = 0; i < 40; i++) Deno.writeTextFileSync(`${src}/d/f${i}`, `content ${i}\n`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const cap = captureLayer(store, src);
  // the one chunk of d/f17 goes missing from the store
  const root = getNode(store, cap.id);
  const d = root.type === "dir" ? getNode(store, root.entries[0].dir!) : null;
  const f17 = d?.type === "dir" ? d.entries.find((e) => e.name === "f17")!.file : null;
  store.removeObjects(new Set(f17!.chunks));
  for (const writers of [2, 0]) {
    let message = "";
    try {
      materializeLayer(store, cap.id, { writers, inlineFiles: 0 });
    } catch (e) {
      message = (e as Error).message;
    }
    assertEquals(message.includes("d/f17"), true, `writers ${writers}: ${message}`);
    assertEquals([...Deno.readDirSync(`${store.root}/layers`)].map((e) => e.name), []);
  }
});

Deno.test("HD_LAYER_WRITERS: a whole number, clamped; anything else is an error naming it", () => {
  const rows: [string | undefined, number][] = [
    [undefined, 2],
    ["", 2],
    ["0", 0],
    [" 3 ", 3],
    ["8", 8],
    ["1000", 8],
  ];
  for (const [raw, want] of rows) assertEquals(layerWriters(raw), want, String(raw));
  for (const raw of ["two", "1.5", "-1", "0x4", "1e3", "4 threads"]) {
    assertThrows(() => layerWriters(raw), /Cannot write layers with HD_LAYER_WRITERS=/);
  }
});

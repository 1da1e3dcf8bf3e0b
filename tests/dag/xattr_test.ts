/**
 * Extended attributes on File and Dir nodes: the optional tag-7 field, absent when empty (so every
 * id made before it existed stays the same), decoded, hashed, diffed and applied on checkout.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { lgetxattr, openLibc } from "../../ffi/libc.ts";
import { Store } from "../../src/cas/store.ts";
import { checkoutTree } from "../../src/dag/checkout.ts";
import { putNode } from "../../src/dag/dag.ts";
import { diffTrees } from "../../src/dag/diff.ts";
import {
  decodeNode,
  type DirNode,
  encodeNode,
  type FileNode,
  type Node,
  nodeId,
} from "../../src/dag/node.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { tempDir } from "../_helpers.ts";

const te = new TextEncoder();
const assertNotEquals = (a: string, b: string) => assert(a !== b, `${a} should differ`);
const id = (c: string) => c.repeat(64);
const CAP = new Uint8Array([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const plainFile: FileNode = {
  type: "file",
  mode: 0o100755,
  size: 9e6,
  manifest: id("b"),
  uid: 1000,
  gid: 1000,
  mtime: 1700000000,
  rdev: 5,
};
const plainDir: DirNode = {
  type: "dir",
  mode: 0o40755,
  entries: [{ name: "a", dir: id("c") }, {
    name: "b",
    file: { type: "file", mode: 0o100644, size: 3, chunks: [id("a")], uid: 0, gid: 0, mtime: 1 },
  }],
  uid: 0,
  gid: 0,
  mtime: 1700000000,
};

Deno.test("xattr-less nodes encode exactly as before the xattr field existed", () => {
  // Ids computed with the encoder before tag 7 was added: they must never change.
  assertEquals(
    nodeId(plainFile),
    "a46abbebebb24dd4d3e6eea635c69a124143c691998cf50fdf67f0e9ad8e1d43",
  );
  assertEquals(
    nodeId(plainDir),
    "98920409178fcdea7ec49d8c537db0b66f18cad76da33dc08a8109d601a20ced",
  );
  // An empty list is the same as none.
  assertEquals(nodeId({ ...plainFile, xattrs: [] }), nodeId(plainFile));
  assertEquals(nodeId({ ...plainDir, xattrs: [] }), nodeId(plainDir));
  assert(!("xattrs" in decodeNode(encodeNode(plainFile))));
});

Deno.test("xattrs round-trip on files and dirs, in canonical order, and change the id", () => {
  const f: FileNode = {
    ...plainFile,
    xattrs: [["user.note", te.encode("hi")], ["security.capability", CAP]],
  };
  const d: DirNode = {
    ...plainDir,
    entries: [plainDir.entries[0], { name: "b", file: f }],
    xattrs: [["user.dir", new Uint8Array([0, 255])]],
  };
  const sorted: [string, Uint8Array][] = [
    ["security.capability", CAP],
    ["user.note", te.encode("hi")],
  ];
  for (const n of [f, d] as Node[]) {
    const bytes = encodeNode(n);
    assertEquals(encodeNode(decodeNode(bytes)), bytes, "stable bytes");
  }
  assertEquals((decodeNode(encodeNode(f)) as FileNode).xattrs, sorted);
  const dd = decodeNode(encodeNode(d)) as DirNode;
  assertEquals(dd.xattrs, [["user.dir", new Uint8Array([0, 255])]]);
  assertEquals((dd.entries[1].file as FileNode).xattrs, sorted);
  // Order given does not matter; a value or name change does.
  assertEquals(nodeId(f), nodeId({ ...f, xattrs: [...f.xattrs!].reverse() }));
  assertNotEquals(nodeId(f), nodeId(plainFile));
  assertNotEquals(nodeId(f), nodeId({ ...f, xattrs: [["user.note", te.encode("ho")]] }));
  assertNotEquals(nodeId(d), nodeId(plainDir));
  // Duplicates are refused when encoding, unsorted or empty lists when decoding.
  assertThrows(
    () => encodeNode({ ...f, xattrs: [["user.a", CAP], ["user.a", CAP]] }),
    /appears twice/,
  );
  const bad = encodeNode({ ...plainFile, xattrs: [["user.b", CAP], ["user.c", CAP]] });
  const at = bad.indexOf(0x63, 20); // "c" of user.c
  bad[at] = 0x61; // user.b, user.a: out of order
  assertThrows(() => decodeNode(bad), /not sorted/);
});

Deno.test("diff reports a file whose only change is an xattr", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const f = ingestBytes(store, te.encode("x"), 0o100755);
  const mk = (file: FileNode) =>
    putNode(store, { type: "dir", mode: 0o40755, entries: [{ name: "ping", file }] });
  const a = mk(f);
  const b = mk({ ...f, xattrs: [["security.capability", CAP]] });
  assertNotEquals(a, b);
  assertEquals(diffTrees(store, a, b), { added: [], removed: [], changed: ["ping"] });
  // A directory whose xattrs change is reported too (as "dir/").
  const sub = (x?: [string, Uint8Array][]) =>
    putNode(store, {
      type: "dir",
      mode: 0o40755,
      entries: [{
        name: "d",
        dir: putNode(store, {
          type: "dir",
          mode: 0o40755,
          entries: [],
          ...(x ? { xattrs: x } : {}),
        }),
      }],
    });
  assertEquals(diffTrees(store, sub(), sub([["user.x", CAP]])).changed, ["d/"]);
});

Deno.test("checkout applies xattrs (user.* for anyone, every namespace as root)", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const f = ingestBytes(store, te.encode("#!/bin/sh\n"), 0o100755);
  const root = putNode(store, {
    type: "dir",
    mode: 0o40555, // read-only: xattrs go on before the mode
    entries: [
      {
        name: "ping",
        file: { ...f, xattrs: [["security.capability", CAP], ["user.note", te.encode("n")]] },
      },
      { name: "ro", file: { ...f, mode: 0o100444, xattrs: [["user.ro", te.encode("r")]] } },
    ],
    xattrs: [["user.top", te.encode("t")]],
  });
  const out = `${d.path}/out`;
  const stats = checkoutTree(store, root, out);
  const libc = openLibc();
  try {
    assertEquals(lgetxattr(libc, `${out}/ping`, "user.note"), te.encode("n"));
    assertEquals(lgetxattr(libc, `${out}/ro`, "user.ro"), te.encode("r"));
    assertEquals(lgetxattr(libc, out, "user.top"), te.encode("t"));
    if (Deno.uid() === 0) {
      assertEquals(lgetxattr(libc, `${out}/ping`, "security.capability"), CAP);
      assertEquals(stats.skipped, []);
    } else {
      assertEquals(stats.skipped.map((s) => s.path), ["ping"]);
    }
    assertEquals(Deno.statSync(out).mode! & 0o7777, 0o555);
  } finally {
    libc.close();
    Deno.chmodSync(out, 0o755);
  }
});

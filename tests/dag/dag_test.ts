import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { checkoutTree } from "../../src/dag/checkout.ts";
import { getNode, putNode, readFileContent } from "../../src/dag/dag.ts";
import { diffTrees } from "../../src/dag/diff.ts";
import { decodeNode, encodeNode, type FileNode, type Node, nodeId } from "../../src/dag/node.ts";
import { Tree } from "../../src/dag/tree.ts";
import { ingestBytes, ingestTree } from "../../src/scan/ingest.ts";
import { tempDir } from "../_helpers.ts";

const te = new TextEncoder();
const id = (c: string) => c.repeat(64);

Deno.test("every node type round-trips through its canonical encoding", () => {
  const nodes: Node[] = [
    { type: "file", mode: 0o100644, size: 3, chunks: [id("a")] },
    {
      type: "file",
      mode: 0o100755,
      size: 9e6,
      manifest: id("b"),
      uid: 1000,
      gid: 1000,
      mtime: 1700000000,
    },
    { type: "file", mode: 0o120777, size: 4, target: "../x" },
    {
      type: "dir",
      mode: 0o40755,
      entries: [{ name: "a", dir: id("c") }, {
        name: "b",
        file: { type: "file", mode: 0o100644, size: 0, chunks: [] },
      }],
    },
    {
      type: "package",
      provider: "npm",
      name: "left-pad",
      version: "1.3.0",
      artifact: "sha512-x",
      resolved: "u",
    },
    {
      type: "buildstep",
      command: "npm ci",
      inputs: [{ label: "package-lock.json", id: id("d") }],
      env: [["A", "1"], ["B", "2"]],
      outputs: ["node_modules"],
      cache: ["~/.npm"],
    },
    { type: "env", name: "demo", children: [{ role: "files", id: id("e") }] },
  ];
  for (const n of nodes) {
    const bytes = encodeNode(n);
    assertEquals(decodeNode(bytes), n);
    assertEquals(encodeNode(decodeNode(bytes)), bytes, "stable bytes");
    assertEquals(bytes.slice(0, 3), new Uint8Array([0x68, 0x64, 1]), "magic and version");
  }
});

Deno.test("encoding is canonical: env order does not matter, unsorted dir entries are refused", () => {
  const a: Node = {
    type: "buildstep",
    command: "x",
    inputs: [],
    env: [["B", "2"], ["A", "1"]],
    outputs: [],
    cache: [],
  };
  const b: Node = { ...a, env: [["A", "1"], ["B", "2"]] };
  assertEquals(nodeId(a), nodeId(b));
  const f: FileNode = { type: "file", mode: 0o100644, size: 0, chunks: [] };
  assertThrows(
    () =>
      encodeNode({
        type: "dir",
        mode: 0o40755,
        entries: [{ name: "b", file: f }, { name: "a", file: f }],
      }),
    /not sorted/,
  );
  assertThrows(() => decodeNode(new Uint8Array([0x68, 0x64, 1, 1, 9])), /Cannot decode node/);
});

Deno.test("one file change rehashes only that file and its ancestors", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const t = new Tree();
  // 4 levels: a/b/c/file plus many siblings at each level
  for (let i = 0; i < 10; i++) {
    for (let j = 0; j < 10; j++) {
      t.setFile(`d${i}/e${j}/f.txt`, ingestBytes(store, te.encode(`${i}/${j}`)));
    }
  }
  const root1 = t.commit(store);
  assertEquals(t.rehashed, 100 + 10 * 10 + 10 + 1, "first commit hashes everything");
  const sibling = (t.get("d1") as { id: string }).id;
  t.setFile("d3/e4/f.txt", ingestBytes(store, te.encode("changed")));
  const root2 = t.commit(store);
  assertEquals(t.rehashed, 1 + 3, "the file plus e4, d3 and the root");
  assert(root1 !== root2);
  assertEquals((t.get("d1") as { id: string }).id, sibling, "siblings keep their ids");
  // Re-loading from the store and applying the same change gives the same root.
  const t2 = Tree.load(store, root1);
  t2.setFile("d3/e4/f.txt", ingestBytes(store, te.encode("changed")));
  assertEquals(t2.commit(store), root2);
  // Deleting the file and re-adding the old one restores the old root.
  t2.setFile("d3/e4/f.txt", ingestBytes(store, te.encode("3/4")));
  assertEquals(t2.commit(store), root1);
});

Deno.test("diff of two roots lists added, removed and changed paths", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const t = new Tree();
  t.setFile("keep.txt", ingestBytes(store, te.encode("same")));
  t.setFile("edit.txt", ingestBytes(store, te.encode("v1")));
  t.setFile("gone/x.txt", ingestBytes(store, te.encode("x")));
  const a = t.commit(store);
  t.setFile("edit.txt", ingestBytes(store, te.encode("v2")));
  t.remove("gone");
  t.setFile("new/y.txt", ingestBytes(store, te.encode("y")));
  const b = t.commit(store);
  const diff = diffTrees(store, a, b);
  assertEquals(diff, {
    added: ["new/", "new/y.txt"],
    removed: ["gone/", "gone/x.txt"],
    changed: ["edit.txt"],
  });
  assertEquals(diffTrees(store, a, a), { added: [], removed: [], changed: [] });
});

Deno.test("checkout materializes contents, modes, symlinks and empty dirs exactly", () => {
  using d = tempDir();
  const src = `${d.path}/src`;
  Deno.mkdirSync(`${src}/sub/empty`, { recursive: true });
  Deno.writeTextFileSync(`${src}/sub/run.sh`, "#!/bin/sh\necho hi\n");
  Deno.chmodSync(`${src}/sub/run.sh`, 0o750);
  Deno.writeFileSync(`${src}/empty-file`, new Uint8Array(0));
  const big = new Uint8Array(5 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  Deno.writeFileSync(`${src}/big.bin`, big);
  Deno.symlinkSync("sub/run.sh", `${src}/link`);
  Deno.symlinkSync("/nonexistent/target", `${src}/dangling`);
  Deno.chmodSync(`${src}/sub/empty`, 0o700);
  const store = Store.open(`${d.path}/s`);
  const { root } = ingestTree(store, src);
  const out = `${d.path}/out`;
  checkoutTree(store, root, out);
  const diff = new Deno.Command("diff", { args: ["-r", "--no-dereference", src, out] })
    .outputSync();
  assert(diff.success, new TextDecoder().decode(diff.stdout));
  assertEquals(Deno.statSync(`${out}/sub/run.sh`).mode! & 0o7777, 0o750);
  assertEquals(Deno.statSync(`${out}/sub/empty`).mode! & 0o7777, 0o700);
  assertEquals(Deno.readLinkSync(`${out}/dangling`), "/nonexistent/target");
  assertEquals(Deno.statSync(`${out}/empty-file`).size, 0);
  assertThrows(() => checkoutTree(store, root, out), /not an empty directory/);
  const bigNode = (getNode(store, root) as { entries: { name: string; file?: FileNode }[] }).entries
    .find((e) => e.name === "big.bin")!.file!;
  assert(bigNode.manifest !== undefined, "a 5 MiB file uses a stored manifest");
  assertEquals(readFileContent(store, bigNode).length, big.length);
  assertEquals(putNode(store, bigNode), nodeId(bigNode));
});

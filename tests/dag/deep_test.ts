/**
 * Deep trees do not overflow the stack: a 10,000-level tree commits, diffs and merges as a layer
 * (every walk is iterative); checking it out fails with a clear error where the kernel's PATH_MAX
 * stops it, never "Maximum call stack size exceeded".
 */
import { assert, assertEquals } from "../_assert.ts";
import { HdError } from "../../src/sys/errors.ts";
import { Store } from "../../src/cas/store.ts";
import { checkoutTree } from "../../src/dag/checkout.ts";
import { diffTrees } from "../../src/dag/diff.ts";
import type { FileNode } from "../../src/dag/node.ts";
import { Tree } from "../../src/dag/tree.ts";
import { mergeLayer } from "../../src/oci/unpack.ts";
import { tempDir } from "../_helpers.ts";

/** Deep enough that a recursive walk overflowed the stack (5,000 already did). */
const DEPTH = 10_000;
const deepPath = (n: number, leaf: string) =>
  Array.from({ length: n }, () => "d").join("/") + "/" + leaf;
const file = (size: number): FileNode => ({ type: "file", mode: 0o100644, size, chunks: [] });

Deno.test("a 10,000-level tree commits, reloads, diffs and merges without recursion", () => {
  using tmp = tempDir("hd-deep-");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  // Stored in pack files (one write per batch, not one file per object).
  store.batch(() => run(store));
});

function run(store: Store): void {
  const t = new Tree();
  t.setFile(deepPath(DEPTH, "f"), file(0));
  const a = t.commit(store);
  assertEquals(t.rehashed, DEPTH + 2);
  const t2 = Tree.load(store, a);
  assertEquals(t2.get(deepPath(DEPTH, "f")), file(0));
  t2.setFile(deepPath(DEPTH, "g"), file(0));
  t2.setFile(deepPath(DEPTH, "f"), file(1));
  t2.setFile(deepPath(3, "h"), file(0));
  const b = t2.commit(store);
  const d = diffTrees(store, a, b);
  assertEquals(d.added, [deepPath(DEPTH, "g"), "d/d/d/h"]);
  assertEquals(d.changed, [deepPath(DEPTH, "f")]);
  const gone = diffTrees(store, b, new Tree().commit(store));
  assertEquals(gone.removed.length, DEPTH + 3);
  assertEquals(gone.removed[0], "d/");
  // As a layer over another: whiteouts at the bottom apply, the rest merges.
  const up = new Tree();
  up.setFile(deepPath(DEPTH, ".wh.f"), file(0));
  up.setFile(deepPath(DEPTH, "new"), file(2));
  const root = Tree.load(store, b);
  mergeLayer(store, root, up);
  const merged = Tree.load(store, root.commit(store));
  assertEquals(merged.get(deepPath(DEPTH, "f")), undefined);
  assertEquals(merged.get(deepPath(DEPTH, "new")), file(2));
  assertEquals(merged.get(deepPath(DEPTH, "g")), file(0));
  // Copied clean (a directory the lower tree lacks), whiteouts deep inside it applied too.
  const fresh = new Tree();
  mergeLayer(store, fresh, Tree.load(store, up.commit(store)));
  assertEquals(fresh.get(deepPath(DEPTH, ".wh.f")), undefined);
  assertEquals(fresh.get(deepPath(DEPTH, "new")), file(2));
}

Deno.test("checking out a tree deeper than PATH_MAX allows fails clearly and leaves nothing", () => {
  using tmp = tempDir("hd-deep-co-");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const t = new Tree();
  t.setFile(deepPath(DEPTH, "f"), file(0));
  const id = store.batch(() => t.commit(store));
  let err: unknown = null;
  try {
    checkoutTree(store, id, `${tmp.path}/out`);
  } catch (e) {
    err = e;
  }
  assert(err instanceof HdError, `expected an HdError, got ${err}`);
  assert(/^Cannot check out d\/d\/.*: /.test((err as HdError).message), (err as HdError).message);
  assert((err as HdError).message.length < 600, "the path is shortened");
  assertEquals([...Deno.readDirSync(tmp.path)].map((e) => e.name), ["store"]);
  // 1,000 levels fit: checked out whole.
  const s = new Tree();
  s.setFile(deepPath(1000, "f"), { ...file(0) });
  const stats = checkoutTree(store, s.commit(store), `${tmp.path}/ok`);
  assertEquals(stats.dirs, 1001);
  assert(Deno.statSync(`${tmp.path}/ok/${deepPath(1000, "f")}`).isFile);
});

import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { Tree } from "../../src/dag/tree.ts";
import { PathFilter } from "../../src/scan/filter.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { GlobSet } from "../../src/watch/pathmap.ts";
import { applyChanges } from "../../src/watch/update.ts";

function setup() {
  const tmp = tempDir();
  const proj = `${tmp.path}/proj`;
  Deno.mkdirSync(`${proj}/src/deep/er`, { recursive: true });
  Deno.mkdirSync(`${proj}/other`, { recursive: true });
  Deno.writeTextFileSync(`${proj}/src/a.js`, "a1");
  Deno.writeTextFileSync(`${proj}/src/deep/er/b.js`, "b1");
  Deno.writeTextFileSync(`${proj}/other/c.txt`, "c1");
  for (let i = 0; i < 50; i++) Deno.writeTextFileSync(`${proj}/other/f${i}.txt`, `f${i}`);
  const store = Store.open(`${tmp.path}/store`);
  const filter = new PathFilter([], ["**/*.log", "node_modules"]);
  const r = ingestTree(store, proj, { filter });
  return { tmp, proj, store, filter, tree: r.tree, root: r.root };
}

/** The root a full scan of the directory gives now (the reference for every incremental step). */
function fullRoot(store: Store, proj: string, filter: PathFilter): string {
  return ingestTree(store, proj, { filter }).root;
}

Deno.test("update: a modified file rehashes only its path to the root", () => {
  const { tmp, proj, store, filter, tree, root } = setup();
  using _ = tmp;
  Deno.writeTextFileSync(`${proj}/src/deep/er/b.js`, "b2");
  const r = applyChanges(store, tree, proj, ["src/deep/er/b.js"], { filter });
  assertEquals(r.oldRoot, root);
  assertEquals(r.modified, ["src/deep/er/b.js"]);
  assertEquals([r.added, r.removed, r.filesRead], [[], [], 1]);
  assertEquals(r.rehashed, 5); // the file + er, deep, src, root — not other/ with its 51 files
  assertEquals(r.root, fullRoot(store, proj, filter));
});

Deno.test("update: same bytes (touch) and excluded files change nothing", () => {
  const { tmp, proj, store, filter, tree, root } = setup();
  using _ = tmp;
  Deno.writeTextFileSync(`${proj}/src/a.js`, "a1");
  Deno.writeTextFileSync(`${proj}/src/debug.log`, "noise");
  const r = applyChanges(store, tree, proj, ["src/a.js", "src/debug.log"], { filter });
  assertEquals([r.root, r.modified, r.added], [root, [], []]);
});

Deno.test("update: delete, rename, new directory, atomic save", () => {
  const { tmp, proj, store, filter, tree } = setup();
  using _ = tmp;
  // deleted file
  Deno.removeSync(`${proj}/other/f1.txt`);
  let r = applyChanges(store, tree, proj, ["other/f1.txt"], { filter });
  assertEquals(r.removed, ["other/f1.txt"]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // rename: the watcher reports both names
  Deno.renameSync(`${proj}/src/a.js`, `${proj}/src/a2.js`);
  r = applyChanges(store, tree, proj, ["src/a.js", "src/a2.js"], { filter });
  assertEquals([r.added, r.removed], [["src/a2.js"], ["src/a.js"]]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // a new directory with files created before any watch on it: reported as the directory only
  Deno.mkdirSync(`${proj}/new/sub`, { recursive: true });
  Deno.writeTextFileSync(`${proj}/new/x.js`, "x");
  Deno.writeTextFileSync(`${proj}/new/sub/y.js`, "y");
  r = applyChanges(store, tree, proj, ["new"], { filter });
  assertEquals(r.added, ["new/sub/y.js", "new/x.js"]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // a directory renamed away
  Deno.renameSync(`${proj}/new`, `${proj}/moved`);
  r = applyChanges(store, tree, proj, ["new", "moved"], { filter });
  assertEquals(r.removed, ["new/sub/y.js", "new/x.js"]);
  assertEquals(r.added, ["moved/sub/y.js", "moved/x.js"]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // editor's atomic save: write a temp file, rename it over the original
  Deno.writeTextFileSync(`${proj}/src/.a2.js.swp`, "saved");
  Deno.renameSync(`${proj}/src/.a2.js.swp`, `${proj}/src/a2.js`);
  r = applyChanges(store, tree, proj, ["src/.a2.js.swp", "src/a2.js"], { filter });
  assertEquals([r.modified, r.added, r.removed], [["src/a2.js"], [], []]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // whole directory deleted
  Deno.removeSync(`${proj}/src`, { recursive: true });
  r = applyChanges(store, tree, proj, ["src"], { filter });
  assertEquals(r.removed, ["src/a2.js", "src/deep/er/b.js"]);
  assertEquals(r.root, fullRoot(store, proj, filter));
  // file replaced by a directory of the same name
  Deno.removeSync(`${proj}/other/c.txt`);
  Deno.mkdirSync(`${proj}/other/c.txt`);
  Deno.writeTextFileSync(`${proj}/other/c.txt/inner`, "i");
  r = applyChanges(store, tree, proj, ["other/c.txt"], { filter });
  assertEquals([r.added, r.removed], [["other/c.txt/inner"], ["other/c.txt"]]);
  assertEquals(r.root, fullRoot(store, proj, filter));
});

Deno.test("update: ignored globs (build outputs) are not tracked", () => {
  const { tmp, proj, store, tree, root } = setup();
  using _ = tmp;
  const filter = new PathFilter([], ["**/*.log", "node_modules"]);
  Deno.mkdirSync(`${proj}/dist`);
  Deno.writeTextFileSync(`${proj}/dist/out.js`, "built");
  const r = applyChanges(store, tree, proj, ["dist", "dist/out.js"], {
    filter,
    ignore: new GlobSet(["dist"]),
  });
  assertEquals(r.root, root);
  // a tree loaded back from the store updates the same way
  const t2 = Tree.load(store, root);
  Deno.writeTextFileSync(`${proj}/other/f3.txt`, "changed");
  const r2 = applyChanges(store, t2, proj, ["other/f3.txt"], {
    filter,
    ignore: new GlobSet(["dist"]),
  });
  assertEquals(r2.modified, ["other/f3.txt"]);
  assert(r2.root !== root);
});

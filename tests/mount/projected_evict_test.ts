/**
 * The projection's inode table under a cap: directories whose entries the kernel has all forgotten
 * are unloaded, least recently used first, once the table holds more than the cap; entries the
 * kernel still references stay, and unloaded directories read back right.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { type Inode, Projection } from "../../src/mount/projected.ts";

const DIRS = 30;
const FILES = 10;

function makeTree(dir: string): void {
  for (let d = 0; d < DIRS; d++) {
    Deno.mkdirSync(`${dir}/d${d}/sub`, { recursive: true });
    for (let f = 0; f < FILES; f++) Deno.writeTextFileSync(`${dir}/d${d}/f${f}`, `d${d} f${f}\n`);
    Deno.writeTextFileSync(`${dir}/d${d}/sub/deep`, `deep ${d}\n`);
  }
}

/** Looks every entry up the way the kernel does on a walk (each reply counts a reference). */
function walk(p: Projection): Inode[] {
  const seen: Inode[] = [];
  const visit = (dir: Inode) => {
    for (const name of [...p.children(dir).keys()]) {
      const n = p.lookup(dir.ino, name);
      p.remember(n);
      seen.push(n);
      if (n.children !== null || n.lowerDir) visit(n);
    }
  };
  visit(p.root);
  return seen;
}

function pathIno(p: Projection, path: string): number {
  let ino = 1;
  for (const part of path.split("/")) ino = p.lookup(ino, part).ino;
  return ino;
}

function setup(cap: number) {
  const tmp = tempDir();
  makeTree(`${tmp.path}/src`);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const { root } = ingestTree(store, `${tmp.path}/src`);
  return { tmp, p: new Projection(store, root, { inodeCap: cap }) };
}

Deno.test("inode cap: forgotten directories are unloaded down to the cap; referenced entries stay", () => {
  const { tmp, p } = setup(100);
  using _ = tmp;
  const all = walk(p);
  const total = DIRS * (FILES + 2 + 1); // files, sub, sub/deep, and d itself
  assertEquals(all.length, total);
  assertEquals(p.stats.live, total + 1);
  // nothing forgotten yet: nothing can go, whatever the cap
  assertEquals(p.stats.evicted, 0);
  // the kernel keeps d7/f3 and forgets everything else
  const keep = all.find((n) => n.name === "f3" && n.parent.name === "d7")!;
  for (const n of all) if (n !== keep && n.nlookup) p.forget(n.ino, n.nlookup);
  assert(p.stats.live <= 100, `${p.stats.live} inodes live, cap 100`);
  assert(p.stats.evicted > 0);
  assertEquals(p.stats.live + p.stats.evicted, p.stats.inodes);
  // the referenced file and the path to it are still served under their numbers
  assert(p.inode(keep.ino) === keep);
  assert(p.inode(keep.parent.ino) === keep.parent);
  assertEquals(new TextDecoder().decode(p.read(keep.ino, 0, 100)), "d7 f3\n");
  // an unloaded directory reads back from its Dir node, under new numbers, with the same content
  const d0 = p.lookup(1, "d0");
  const f0 = p.lookup(d0.ino, "f0");
  const before = all.find((n) => n.name === "f0" && n.parent.name === "d0")!;
  if (p.stats.evicted >= total - 100) {
    assert(f0.ino !== before.ino, "an unloaded entry came back under its old number");
    assertThrows(() => p.inode(before.ino));
  }
  assert(f0.ino < p.stats.inodes + 1, "numbers are handed out in order, never reused");
  assertEquals(new TextDecoder().decode(p.read(f0.ino, 0, 100)), "d0 f0\n");
  assertEquals(
    new TextDecoder().decode(p.read(p.lookup(p.lookup(d0.ino, "sub").ino, "deep").ino, 0, 100)),
    "deep 0\n",
  );
});

Deno.test("inode cap: under the cap, forgotten entries are kept; cap 0 never unloads", () => {
  for (const cap of [100_000, 0]) {
    const { tmp, p } = setup(cap);
    using _ = tmp;
    const all = walk(p);
    for (const n of all) p.forget(n.ino, n.nlookup ?? 0);
    assertEquals(p.stats.evicted, 0, `cap ${cap}`);
    assertEquals(p.stats.live, all.length + 1);
    for (const n of all) assert(p.inode(n.ino) === n);
  }
});

Deno.test("inode cap: a directory is kept while one entry below it is referenced", () => {
  const { tmp, p } = setup(1);
  using _ = tmp;
  const all = walk(p);
  const deep = all.find((n) => n.name === "deep" && n.parent.parent.name === "d3")!;
  for (const n of all) if (n !== deep) p.forget(n.ino, n.nlookup ?? 0);
  assert(p.inode(deep.ino) === deep);
  assert(p.inode(deep.parent.ino) === deep.parent);
  assert(p.inode(deep.parent.parent.ino) === deep.parent.parent);
  // root + d3 + d3's entries (files, sub) + deep: d3 cannot unload, its subtree holds `deep`
  assertEquals(p.stats.live, 1 + DIRS + (FILES + 1) + 1);
  // the last reference goes: everything unloads up to the root, which the kernel always holds
  p.forget(deep.ino, 1);
  assertEquals(p.stats.live, 1);
  assertEquals(new TextDecoder().decode(p.read(pathIno(p, "d3/sub/deep"), 0, 100)), "deep 3\n");
});

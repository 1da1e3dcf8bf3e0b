/**
 * A scan reads only what is below its root, even while something else swaps what it scans for
 * symlinks (src/sys/nofollow.ts): the primitives on real files (a table), then the race itself,
 * made deterministic: a filter that, when the walk asks about the first entry of `src/` (after
 * `src/` was listed, before the entry's lstat), swaps `src/` for a symlink to a directory outside
 * the project holding a secret under the same names. The walk (one thread, and the worker
 * threads of a large add), the watcher's update and a status worked out from the proof must
 * store none of the secret, neither its bytes, nor a link target, nor a name, and say what they
 * skipped.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { closeFd, listDir, openRegular, readLink } from "../../src/sys/nofollow.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree, ingestTreeParallel } from "../../src/scan/ingest.ts";
import { PathFilter } from "../../src/scan/filter.ts";
import { StatCache } from "../../src/scan/statcache.ts";
import { MemDir, type Tree } from "../../src/dag/tree.ts";
import type { FileNode } from "../../src/dag/node.ts";
import { readFileContent } from "../../src/dag/dag.ts";
import { applyChanges } from "../../src/watch/update.ts";

const SECRET = "TOP SECRET host key\n";
const hasMkfifo = new Deno.Command("sh", { args: ["-c", "command -v mkfifo"] }).outputSync()
  .success;

/** A project beside a directory outside it; `alias` is a symlink to the project's directory. */
function layout() {
  const t = tempDir("hd-nofollow-");
  const root = `${t.path}/real/proj`;
  const out = `${t.path}/outside`;
  Deno.mkdirSync(`${root}/src/sub`, { recursive: true });
  Deno.mkdirSync(`${out}/sub`, { recursive: true });
  Deno.writeTextFileSync(`${root}/src/secret.txt`, "decoy\n");
  Deno.writeTextFileSync(`${root}/src/sub/deep.txt`, "decoy deep\n");
  Deno.symlinkSync("secret.txt", `${root}/src/key`);
  Deno.writeTextFileSync(`${root}/top.txt`, "top\n");
  Deno.writeTextFileSync(`${out}/secret.txt`, SECRET);
  Deno.writeTextFileSync(`${out}/sub/deep.txt`, SECRET);
  Deno.symlinkSync("/root/.ssh/id_rsa", `${out}/key`);
  Deno.writeTextFileSync(`${out}/only-outside.txt`, SECRET);
  Deno.symlinkSync(`${t.path}/real`, `${t.path}/alias`);
  return { t, root, out, alias: `${t.path}/alias/proj` };
}

Deno.test("nofollow: below its root nothing opens through a symlink, the root's own path may hold one (table)", () => {
  const { t, root, out, alias } = layout();
  using _t = t;
  Deno.symlinkSync(out, `${root}/link`);
  if (hasMkfifo) {
    new Deno.Command("mkfifo", { args: [`${root}/fifo`] }).outputSync();
  }
  // [path below the root, opens?, what the error says]
  const cases: [string, boolean, string][] = [
    ["top.txt", true, ""],
    ["src/secret.txt", true, ""],
    ["link/secret.txt", false, "a symlink is in its way"],
    ["src/key", false, "a symlink is in its way"],
    ["src", false, "no longer a regular file"],
    ["missing.txt", false, "No such file"],
    ...(hasMkfifo
      ? [["fifo", false, "no longer a regular file"] as [string, boolean, string]]
      : []),
  ];
  for (const base of [root, alias]) {
    for (const [rel, opens, says] of cases) {
      const fd = openRegular(`${base}/${rel}`, base);
      assert(fd !== null, "libc is there");
      assertEquals(typeof fd === "number", opens, `${base}: ${rel}`);
      if (typeof fd === "number") closeFd(fd);
      else assert(fd.message.includes(says), `${rel}: ${fd.message}`);
    }
    assertEquals(listDir(`${base}/src`, base).map((e) => e.name).sort(), [
      "key",
      "secret.txt",
      "sub",
    ]);
    let listed: string | null = null;
    try {
      listDir(`${base}/link/sub`, base);
    } catch (e) {
      listed = (e as Error).message;
    }
    assert(listed?.includes("a symlink is in its way"), `a listing through a link: ${listed}`);
    assertEquals(readLink(`${base}/src/key`, base), "secret.txt");
    let read: string | null = null;
    try {
      readLink(`${base}/link/key`, base);
    } catch (e) {
      read = (e as Error).message;
    }
    assert(read?.includes("a symlink is in its way"), `a link through a link: ${read}`);
  }
  // without a root only the last component is not followed (the documented weaker form)
  const fd = openRegular(`${root}/link/secret.txt`);
  assertEquals(typeof fd, "number");
  closeFd(fd as number);
  assert(openRegular(`${root}/src/key`) instanceof Error, "a final symlink is never opened");
});

/** Swaps `src/` for a symlink to `out` the first time the walk asks about an entry below it. */
class SwappingFilter extends PathFilter {
  swapped = false;
  constructor(readonly root: string, readonly out: string) {
    super();
  }
  #maybeSwap(rel: string): void {
    if (this.swapped || !rel.startsWith("src/")) return;
    this.swapped = true;
    Deno.renameSync(`${this.root}/src`, `${this.root}/src.moved`);
    Deno.symlinkSync(this.out, `${this.root}/src`);
  }
  override excludedEntry(rel: string, name: string): boolean {
    this.#maybeSwap(rel);
    return super.excludedEntry(rel, name);
  }
  override excluded(rel: string): boolean {
    this.#maybeSwap(rel);
    return super.excluded(rel);
  }
}

/** Every file of a tree: path → its bytes as text, or `-> target` for a symlink. */
function contents(store: Store, tree: Tree): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: MemDir, prefix: string) => {
    for (const [name, e] of d.entries) {
      const p = prefix ? `${prefix}/${name}` : name;
      if (e instanceof MemDir) walk(e, p);
      else {
        const f = e as FileNode;
        out.set(
          p,
          f.target !== undefined
            ? `-> ${f.target}`
            : new TextDecoder().decode(readFileContent(store, f)),
        );
      }
    }
  };
  walk(tree.root, "");
  return out;
}

/** Nothing of the outside directory in `files`; `src/` is gone or holds only the decoys. */
function nothingOutside(files: Map<string, string>, what: string): void {
  for (const [p, text] of files) {
    assert(!text.includes("TOP SECRET"), `${what}: ${p} holds the secret`);
    assert(!text.includes("/root/.ssh"), `${what}: ${p} is the outside link`);
    assert(!p.includes("only-outside"), `${what}: ${p} is a name from outside`);
  }
}

Deno.test("nofollow: a directory swapped for a symlink during the walk gives the scan nothing from outside it", async () => {
  for (const how of ["one thread", "worker threads"] as const) {
    const { t, root, out } = layout();
    using _t = t;
    using s = tempDir("hd-store-");
    const store = Store.open(s.path, { create: true });
    if (how === "worker threads") {
      // enough to read for the parallel add to start its workers (8 MiB, 64 files)
      Deno.mkdirSync(`${root}/big`);
      const block = new Uint8Array(160 << 10).fill(7);
      for (let i = 0; i < 70; i++) {
        block[0] = i;
        Deno.writeFileSync(`${root}/big/f${i}`, block);
      }
      // the secret's names are read late, by a worker
      for (const n of ["secret.txt"]) Deno.writeTextFileSync(`${out}/${n}`, SECRET);
    }
    const filter = new SwappingFilter(root, out);
    const r = how === "one thread"
      ? ingestTree(store, root, { filter, cache: StatCache.empty(store) })
      : await ingestTreeParallel(store, root, { filter, cache: StatCache.empty(store) });
    assert(filter.swapped, `${how}: the swap happened`);
    const files = contents(store, r.tree);
    nothingOutside(files, how);
    assertEquals(files.get("top.txt"), "top\n", `${how}: the rest is scanned`);
    const skipped = r.skipped.map((x) => x.path).sort();
    assert(skipped.length > 0, `${how}: it says what it skipped`);
    for (const x of r.skipped) {
      assert(x.why.includes("symlink") || x.why.includes("No such file"), `${how}: ${x.why}`);
    }
  }
});

Deno.test("nofollow: a tree whose own path is a symlink (the root the caller trusts) is walked whole", async () => {
  const { t, root } = layout();
  using _t = t;
  using s = tempDir("hd-store-");
  const store = Store.open(s.path, { create: true });
  Deno.symlinkSync(root, `${t.path}/rootlink`);
  const direct = ingestTree(store, root, { cache: StatCache.empty(store) });
  const viaLink = ingestTree(store, `${t.path}/rootlink`, { cache: StatCache.empty(store) });
  assertEquals(viaLink.skipped, []);
  assertEquals(viaLink.root, direct.root);
  const parallel = await ingestTreeParallel(store, `${t.path}/rootlink`, {
    cache: StatCache.empty(store),
    workers: 2,
  });
  assertEquals(parallel.root, direct.root);
  assertEquals(contents(store, viaLink.tree).get("src/secret.txt"), "decoy\n");
});

Deno.test("nofollow: the watcher's update of a directory swapped for a symlink takes nothing from outside it", () => {
  const { t, root, out } = layout();
  using _t = t;
  using s = tempDir("hd-store-");
  const store = Store.open(s.path, { create: true });
  const tree = ingestTree(store, root, { cache: StatCache.empty(store) }).tree;
  // the watcher reports src/ changed; the swap comes as the update looks at its entries
  const filter = new SwappingFilter(root, out);
  applyChanges(store, tree, root, ["src"], { filter });
  assert(filter.swapped, "the swap happened");
  nothingOutside(contents(store, tree), "update");
  assertEquals(contents(store, tree).get("top.txt"), "top\n");
});

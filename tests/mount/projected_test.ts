/**
 * The projection and the overlay without FUSE: lazy verified reads over a real store, and
 * snapshots of overlay changes compared with ingesting the same tree from disk.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { Errno, FsError, Projection } from "../../src/mount/projected.ts";
import { Overlay } from "../../src/mount/overlay.ts";
import { corruptObject, randomBytes } from "./_util.ts";

function pathIno(p: Projection, path: string): number {
  let ino = 1;
  for (const part of path.split("/").filter(Boolean)) ino = p.lookup(ino, part).ino;
  return ino;
}

Deno.test("projection reads any range lazily, and only the chunks it needs", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(`${src}/d`, { recursive: true });
  const big = randomBytes(8 << 20, 7);
  Deno.writeFileSync(`${src}/d/big`, big);
  Deno.writeTextFileSync(`${src}/small`, "hello\n");
  Deno.writeFileSync(`${src}/empty`, new Uint8Array(0));
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const { root } = ingestTree(store, src);
  const p = new Projection(store, root);
  const ino = pathIno(p, "d/big");
  assertEquals(p.stats.chunkReads, 0);
  // 4 KiB in the middle: only the chunk(s) under it are read (sizes before it are probed).
  const off = 5 << 20;
  assertEquals(p.read(ino, off, 4096), big.subarray(off, off + 4096));
  assert(p.stats.chunkReads <= 2, `read ${p.stats.chunkReads} chunks for 4 KiB`);
  // Random ranges, including ones crossing chunk edges and the end of the file.
  const rnd = randomBytes(4096, 3);
  for (let i = 0; i < 200; i++) {
    const o = ((rnd[i] << 16) | (rnd[i + 1] << 8) | rnd[i + 2]) % big.length;
    const len = 1 + ((rnd[i + 3] << 10) | rnd[i + 4]) % 300000;
    const got = p.read(ino, o, len);
    assertEquals(got.length, Math.min(len, big.length - o));
    assert(
      got.every((b, k) => b === big[o + k]),
      `bytes differ at ${o}+${len}`,
    );
  }
  assertEquals(p.read(ino, big.length, 10).length, 0);
  assertEquals(new TextDecoder().decode(p.read(pathIno(p, "small"), 0, 100)), "hello\n");
  assertEquals(p.read(pathIno(p, "empty"), 0, 100).length, 0);
  // Inode numbers are stable.
  assertEquals(pathIno(p, "d/big"), ino);
});

Deno.test("projection: a corrupt chunk gives EIO and a log line, never wrong bytes", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(src);
  Deno.writeFileSync(`${src}/f`, randomBytes(300000, 9));
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const { root, tree } = ingestTree(store, src);
  const f = tree.get("f") as { chunks?: string[]; manifest?: string };
  const victim = (f.chunks ?? store.getManifest(f.manifest!).chunks)[1];
  corruptObject(store, victim);
  const logs: string[] = [];
  const p = new Projection(store, root, { log: (l) => logs.push(l) });
  const ino = pathIno(p, "f");
  const e = assertThrows(() => p.readAll(p.inode(ino)));
  assert(e instanceof FsError && e.errno === Errno.EIO, "expected EIO");
  assert(logs.some((l) => l.includes("/f") && l.includes(victim)), logs.join("\n"));
  assertEquals(p.stats.readErrors, 1);
});

function sortedWalk(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name < b.name ? -1 : 1)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory) out.push(...sortedWalk(`${dir}/${e.name}`, r));
  }
  return out;
}

Deno.test("overlay changes snapshot to the same root as ingesting the changed tree", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(`${src}/a/b`, { recursive: true });
  Deno.mkdirSync(`${src}/gone/x`, { recursive: true });
  Deno.writeTextFileSync(`${src}/a/b/keep.txt`, "keep\n");
  Deno.writeTextFileSync(`${src}/a/edit.txt`, "0123456789");
  Deno.writeTextFileSync(`${src}/gone/x/f`, "f");
  Deno.writeFileSync(`${src}/a/big`, randomBytes(400000, 5));
  Deno.writeTextFileSync(`${src}/rm.txt`, "rm");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const { root } = ingestTree(store, src);
  const p = new Projection(store, root);
  const ov = new Overlay(p);
  assertEquals(ov.snapshot(), root);
  const enc = new TextEncoder();
  // The same changes, on the overlay and on a copy on disk.
  const f = ov.create(1, "new.txt", 0o644);
  ov.write(f.ino, 0, enc.encode("new file\n"));
  ov.write(pathIno(p, "a/edit.txt"), 4, enc.encode("XY"));
  ov.truncate(pathIno(p, "a/big"), 1000);
  ov.unlink(1, "rm.txt");
  ov.unlink(pathIno(p, "gone/x"), "f");
  ov.rmdir(pathIno(p, "gone"), "x");
  const d = ov.mkdir(1, "made", 0o755);
  ov.symlink(d.ino, "ln", "../new.txt");
  ov.rename(pathIno(p, "a"), "b", d.ino, "moved");
  ov.setattr(pathIno(p, "made/moved/keep.txt"), { mode: 0o600 });
  assertThrows(() => ov.rmdir(1, "made"), /errno 39/);
  assertThrows(() => ov.rename(1, "made", d.ino, "inside"), /errno 22/);

  const disk = `${tmp.path}/disk`;
  new Deno.Command("cp", { args: ["-a", src, disk] }).outputSync();
  Deno.writeTextFileSync(`${disk}/new.txt`, "new file\n");
  Deno.writeTextFileSync(`${disk}/a/edit.txt`, "0123XY6789");
  Deno.truncateSync(`${disk}/a/big`, 1000);
  Deno.removeSync(`${disk}/rm.txt`);
  Deno.removeSync(`${disk}/gone/x`, { recursive: true });
  Deno.mkdirSync(`${disk}/made`);
  Deno.symlinkSync("../new.txt", `${disk}/made/ln`);
  Deno.renameSync(`${disk}/a/b`, `${disk}/made/moved`);
  Deno.chmodSync(`${disk}/made/moved/keep.txt`, 0o600);
  Deno.chmodSync(`${disk}/gone`, 0o755);

  const want = ingestTree(store, disk).root;
  const got = ov.snapshot();
  assertEquals(got, want, `tree ${sortedWalk(disk).join(",")}`);
  // rm.txt, a/b and gone/x (the whiteout of gone/x/f went with gone/x).
  assertEquals(ov.summary().whiteouts, 3);
});

Deno.test("projection: a Dir node decoded once in this process lists the same directory in another tree without the store", () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  Deno.mkdirSync(`${src}/shared/deep`, { recursive: true });
  // (the temp path in the content: no other test's tree has these nodes)
  Deno.writeTextFileSync(`${src}/shared/deep/f.txt`, `shared ${tmp.path}\n`);
  Deno.writeTextFileSync(`${src}/top.txt`, "top\n");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const { root } = ingestTree(store, src);
  const first = new Projection(Store.open(`${tmp.path}/store`), root, { log: () => {} });
  const shared = first.lookup(1, "shared");
  first.children(shared);
  first.children(first.lookup(shared.ino, "deep"));
  assertEquals(first.stats.dirCacheHits, 0);
  // the store's copy of "shared" is now corrupt: a listing that read it would fail (EIO)
  corruptObject(store, shared.lowerDir!);
  // a second tree holding the same subdirectory, as another mount would serve it
  Deno.mkdirSync(`${tmp.path}/other`);
  Deno.renameSync(`${src}/shared`, `${tmp.path}/other/shared`);
  const other = ingestTree(store, `${tmp.path}/other`).root;
  const second = new Projection(Store.open(`${tmp.path}/store`), other, { log: () => {} });
  const s2 = second.lookup(1, "shared");
  assertEquals(s2.lowerDir, shared.lowerDir);
  assertEquals([...second.children(s2).keys()], ["deep"]);
  assertEquals([...second.children(second.lookup(s2.ino, "deep")).keys()], ["f.txt"]);
  assertEquals(second.stats.dirCacheHits, 2);
  assertEquals(second.stats.readErrors, 0);
  assert(second.dirNodeCache().nodes >= 3, JSON.stringify(second.dirNodeCache()));
});

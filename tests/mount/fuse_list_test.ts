/**
 * Listings through a read-only mount: names (ASCII, UTF-8, long) and types as the kernel gets them
 * from readdir/readdirplus (whose `.` and `..` carry no attributes: the kernel answers those from
 * the directories themselves), and HD_FUSE_PROFILE's per-op times in the stats request.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { requestMount } from "../../src/mount/manager.ts";
import { fuseSkip, mountFixture, sh, withMount } from "./_util.ts";

const SKIP = fuseSkip();

const NAMES = [
  "index.js",
  "café.txt",
  "日本語.md",
  "emoji-😀",
  "n".repeat(64),
  "l".repeat(200),
  "a".repeat(63) + "é",
];

function makeSource(src: string): void {
  Deno.mkdirSync(`${src}/d/sub1/deep`, { recursive: true });
  Deno.mkdirSync(`${src}/d/sub2`);
  Deno.mkdirSync(`${src}/d/ünï-dir`);
  for (const n of NAMES) Deno.writeTextFileSync(`${src}/d/${n}`, n);
  for (let i = 0; i < 40; i++) Deno.mkdirSync(`${src}/wide/p${i}/lib`, { recursive: true });
}

function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => `${e.name}:${e.isDirectory ? "d" : "f"}`).sort();
}

testIf(SKIP, "listings give every name and type; . and .. stat as their directories", async () => {
  using tmp = tempDir();
  const { src, store, mnt, root } = await mountFixture(tmp.path, makeSource);
  await withMount(store, root, mnt, {}, () => {
    // the first listing of each directory is a readdirplus, the next chunks plain readdir
    assertEquals(listing(`${mnt}/d`), listing(`${src}/d`));
    assertEquals(listing(`${mnt}/wide`), listing(`${src}/wide`));
    for (const n of NAMES) assertEquals(Deno.readTextFileSync(`${mnt}/d/${n}`), n);
    // `.` and `..` were sent without attributes: what stat shows comes from the directories
    const d = Deno.statSync(`${mnt}/d`);
    const dot = Deno.statSync(`${mnt}/d/.`);
    assertEquals([dot.ino, dot.mode, dot.nlink], [d.ino, d.mode, d.nlink]);
    assertEquals(d.nlink, 2 + 3, "2 + the subdirectories sub1, sub2, ünï-dir");
    const up = Deno.statSync(`${mnt}/d/sub1/..`);
    assertEquals([up.ino, up.nlink], [d.ino, d.nlink]);
    const rootSt = Deno.statSync(mnt);
    assertEquals(Deno.statSync(`${mnt}/d/..`).ino, rootSt.ino);
    assertEquals(Deno.statSync(`${mnt}/wide`).nlink, 2 + 40);
  });
  // what `ls -la` and `find` make of it: the same entries as the source (sizes, types, names)
  await withMount(store, root, mnt, {}, async () => {
    const f = (dir: string) => sh(`cd '${dir}' && find . -printf '%y %s %P\\n' | sort`);
    const [a, b] = [await f(src), await f(mnt)];
    assertEquals(b.code, 0, b.stderr);
    assertEquals(b.stdout.replace(/^d \d+ /gm, "d "), a.stdout.replace(/^d \d+ /gm, "d "));
    const ls = await sh(`ls -la '${mnt}/d/sub1'`);
    assertEquals(ls.code, 0, ls.stderr);
    assert(/ \.\n/.test(ls.stdout) && / \.\.\n/.test(ls.stdout), ls.stdout);
  });
});

testIf(SKIP, "HD_FUSE_PROFILE=1 adds the milliseconds per op to the stats request", async () => {
  using tmp = tempDir();
  const { store, mnt, root } = await mountFixture(tmp.path, makeSource);
  const stats = async () =>
    await requestMount(Store.open(store, { create: false }), mnt, { op: "stats" });
  await withMount(store, root, mnt, {}, async () => {
    listing(`${mnt}/d`);
    const s = await stats();
    assertEquals(s.opMs, undefined, "no times unless asked");
    assert((s.ops as Record<string, number>).readdirplus >= 1, JSON.stringify(s.ops));
  });
  Deno.env.set("HD_FUSE_PROFILE", "1");
  try {
    await withMount(store, root, mnt, {}, async () => {
      listing(`${mnt}/d`);
      Deno.statSync(`${mnt}/d/sub1/deep`);
      const s = await stats();
      const ms = s.opMs as Record<string, number>;
      const ops = s.ops as Record<string, number>;
      assertEquals(Object.keys(ms).sort(), Object.keys(ops).sort(), JSON.stringify(s));
      for (const v of Object.values(ms)) assert(v >= 0 && Number.isFinite(v), JSON.stringify(ms));
    });
  } finally {
    Deno.env.delete("HD_FUSE_PROFILE");
  }
});

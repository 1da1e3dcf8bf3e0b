/**
 * Writable mounts: shell tools writing through the overlay, `hd snapshot` giving the same root as
 * adding the equally changed tree from disk; and the mount as an overlayfs lowerdir.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { addTree, fuseSkip, hdOk, mountFixture, randomBytes, sh, withMount } from "./_util.ts";

const SKIP = fuseSkip();

function makeSource(src: string): void {
  Deno.mkdirSync(`${src}/lib/deep`, { recursive: true });
  Deno.mkdirSync(`${src}/old/sub`, { recursive: true });
  Deno.writeTextFileSync(`${src}/lib/a.js`, "export const a = 1;\n");
  Deno.writeTextFileSync(`${src}/lib/deep/b.js`, "export const b = 2;\n");
  Deno.writeTextFileSync(`${src}/old/sub/x`, "x");
  Deno.writeTextFileSync(`${src}/README`, "readme\n");
  Deno.writeFileSync(`${src}/data.bin`, randomBytes(3 << 20, 8));
}

/** The same edits, as shell commands run in a directory. */
const EDITS = [
  "echo 'new' > new.txt",
  "printf 'patched' | dd of=README bs=1 seek=2 conv=notrunc 2>/dev/null",
  "echo more >> lib/a.js",
  "truncate -s 1000 data.bin",
  "rm -r old",
  "mkdir -p made/inner && echo y > made/inner/y",
  "echo over > lib/deep/b.js",
  "mv lib/deep made/deep",
  "ln -s ../README made/link",
  "chmod 700 lib/a.js",
  "cp lib/a.js lib/a-copy.js",
  "mv new.txt renamed.txt",
];

testIf(SKIP, "writes through a --rw mount, and hd snapshot stores exactly that view", async () => {
  using tmp = tempDir();
  const { src, store, mnt, root } = await mountFixture(tmp.path, makeSource);
  let snap = "";
  await withMount(store, root, mnt, { rw: true }, async () => {
    // Nothing changed yet: the snapshot is the mounted root.
    assertEquals((await hdOk(["snapshot", mnt], store)).trim(), root);
    for (const e of EDITS) {
      const r = await sh(e, { cwd: mnt });
      assertEquals(r.code, 0, `${e}: ${r.stderr}`);
    }
    assertEquals(Deno.readTextFileSync(`${mnt}/README`), "repatched"); // "re" + "patched"
    assertEquals(Deno.statSync(`${mnt}/data.bin`).size, 1000);
    assertEquals(Deno.readTextFileSync(`${mnt}/made/link`), "repatched");
    snap = JSON.parse(await hdOk(["snapshot", mnt, "--json", "--ref", "test/snap"], store)).root;
  });
  // The same edits on a copy on disk, added with hd cas add: the same root.
  const disk = `${tmp.path}/disk`;
  assertEquals((await sh(`cp -a ${src} ${disk}`)).code, 0);
  for (const e of EDITS) assertEquals((await sh(e, { cwd: disk })).code, 0, e);
  const want = await addTree(disk, store);
  assertEquals(snap, want);
  // The snapshot is a gc root and mounts read-only as it was.
  assertEquals(Deno.readTextFileSync(`${store}/refs/test/snap`).trim(), snap);
  await withMount(store, snap, mnt, {}, () => {
    assertEquals(Deno.readTextFileSync(`${mnt}/made/deep/b.js`), "over\n");
    assertEquals(Deno.readTextFileSync(`${mnt}/renamed.txt`), "new\n");
    assertEquals(Deno.statSync(`${mnt}/lib/a.js`).mode! & 0o777, 0o700);
  });
});

testIf(SKIP, "the mount works as an overlayfs lowerdir", async () => {
  using tmp = tempDir();
  const { store, mnt, root } = await mountFixture(tmp.path, makeSource);
  const up = `${tmp.path}/up`;
  const merged = `${tmp.path}/merged`;
  Deno.mkdirSync(`${up}/upper`, { recursive: true });
  Deno.mkdirSync(`${up}/work`);
  Deno.mkdirSync(merged);
  await withMount(store, root, mnt, {}, async () => {
    const m = await sh(
      `mount -t overlay overlay -o lowerdir=${mnt},upperdir=${up}/upper,workdir=${up}/work ${merged}`,
    );
    assertEquals(m.code, 0, m.stderr);
    try {
      assertEquals(Deno.readTextFileSync(`${merged}/lib/a.js`), "export const a = 1;\n");
      Deno.writeTextFileSync(`${merged}/lib/a.js`, "changed\n");
      Deno.writeTextFileSync(`${merged}/fresh`, "fresh\n");
      Deno.removeSync(`${merged}/README`);
      Deno.removeSync(`${merged}/old`, { recursive: true });
      const d = Deno.readFileSync(`${merged}/data.bin`);
      assert(d.length === 3 << 20, "data.bin through overlay");
      // Writes land in upper; the lower (the FUSE mount) is untouched.
      assertEquals(Deno.readTextFileSync(`${up}/upper/lib/a.js`), "changed\n");
      assertEquals(Deno.readTextFileSync(`${up}/upper/fresh`), "fresh\n");
      assert(Deno.lstatSync(`${up}/upper/README`).isCharDevice, "whiteout for README");
      assertEquals(Deno.readTextFileSync(`${mnt}/lib/a.js`), "export const a = 1;\n");
      assertEquals(Deno.readTextFileSync(`${mnt}/README`), "readme\n");
    } finally {
      await sh(`umount ${merged}`);
    }
  });
});

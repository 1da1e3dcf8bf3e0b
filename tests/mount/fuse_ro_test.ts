/**
 * Read-only FUSE mounts through the real CLI: the tree byte for byte (symlinks, hardlinks, empty
 * files, modes, the fixed mtime), reads at any offset, EROFS, lazy chunk reads, EIO on a corrupt
 * chunk, a 5 GiB file and a 100,000-entry directory.
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode, putNode } from "../../src/dag/dag.ts";
import { compareNames, type DirEntry, type FileNode } from "../../src/dag/node.ts";
import { S_IFDIR } from "../../src/sys/mode.ts";
import { FIXED_MTIME } from "../../src/mount/projected.ts";
import { requestMount } from "../../src/mount/manager.ts";
import {
  addTree,
  corruptObject,
  fuseSkip,
  mountFixture,
  randomBytes,
  sh,
  withMount,
} from "./_util.ts";

const SKIP = fuseSkip();

function walk(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory) out.push(...walk(`${dir}/${e.name}`, r));
  }
  return out.sort();
}

function makeSource(src: string): void {
  Deno.mkdirSync(`${src}/a/b/c`, { recursive: true });
  Deno.mkdirSync(`${src}/many`);
  Deno.mkdirSync(`${src}/emptydir`);
  Deno.writeTextFileSync(`${src}/a/hello.txt`, "hello\n");
  Deno.writeFileSync(`${src}/a/b/c/empty`, new Uint8Array(0));
  Deno.writeFileSync(`${src}/big.bin`, randomBytes(20 << 20, 11));
  Deno.writeTextFileSync(`${src}/run.sh`, "#!/bin/sh\necho hi\n");
  Deno.chmodSync(`${src}/run.sh`, 0o755);
  Deno.writeTextFileSync(`${src}/secret`, "s");
  Deno.chmodSync(`${src}/secret`, 0o600);
  Deno.symlinkSync("a/hello.txt", `${src}/rel-link`);
  Deno.symlinkSync("/etc/hostname", `${src}/abs-link`);
  Deno.symlinkSync("nowhere", `${src}/dangling`);
  Deno.linkSync(`${src}/a/hello.txt`, `${src}/hard`);
  for (let i = 0; i < 300; i++) {
    Deno.writeTextFileSync(`${src}/many/f${i}.js`, `module.exports = ${i};\n`.repeat(i % 7));
  }
}

testIf(SKIP, "mount shows the tree byte for byte, read-only, with lazy reads", async () => {
  using tmp = tempDir();
  const { src, store, mnt, root } = await mountFixture(tmp.path, makeSource);
  await withMount(store, root, mnt, {}, async () => {
    const st = Store.open(store, { create: false });
    // Lazy: nothing read yet; 4 KiB with O_DIRECT at 10 MiB reads a chunk or two.
    let stats = (await requestMount(st, mnt, { op: "stats" })).stats as Record<string, number>;
    assertEquals(stats.chunkReads, 0);
    const dd = await sh(
      `dd if=${mnt}/big.bin of=/dev/null bs=4096 skip=2560 count=1 iflag=direct 2>&1`,
    );
    assertEquals(dd.code, 0, dd.stdout);
    stats = (await requestMount(st, mnt, { op: "stats" })).stats as Record<string, number>;
    assert(stats.chunkReads >= 1 && stats.chunkReads <= 3, `chunkReads ${stats.chunkReads}`);

    const want = walk(src);
    assertEquals(walk(mnt), want);
    for (const p of want) {
      const a = Deno.lstatSync(`${src}/${p}`);
      const b = Deno.lstatSync(`${mnt}/${p}`);
      assertEquals(b.mode, a.mode, `mode of ${p}`);
      assertEquals(b.mtime?.getTime(), FIXED_MTIME * 1000, `mtime of ${p}`);
      if (a.isSymlink) {
        assertEquals(Deno.readLinkSync(`${mnt}/${p}`), Deno.readLinkSync(`${src}/${p}`));
      } else if (a.isFile) {
        assertEquals(b.size, a.size, `size of ${p}`);
        const x = Deno.readFileSync(`${src}/${p}`);
        const y = Deno.readFileSync(`${mnt}/${p}`);
        assert(x.length === y.length && x.every((v, i) => v === y[i]), `content of ${p}`);
      }
    }
    assertEquals(Deno.readTextFileSync(`${mnt}/rel-link`), "hello\n");
    assertEquals(Deno.readTextFileSync(`${mnt}/hard`), "hello\n");
    // Reads at odd offsets and sizes.
    const big = Deno.readFileSync(`${src}/big.bin`);
    const f = Deno.openSync(`${mnt}/big.bin`);
    const rnd = randomBytes(600, 2);
    for (let i = 0; i < 100; i++) {
      const off = ((rnd[i * 5] << 16) | (rnd[i * 5 + 1] << 8) | rnd[i * 5 + 2]) % big.length;
      const len = 1 + (((rnd[i * 5 + 3] << 8) | rnd[i * 5 + 4]) * 7) % 400000;
      const buf = new Uint8Array(len);
      f.seekSync(off, Deno.SeekMode.Start);
      let got = 0;
      while (got < len) {
        const n = f.readSync(buf.subarray(got));
        if (!n) break;
        got += n;
      }
      assertEquals(got, Math.min(len, big.length - off));
      assert(buf.subarray(0, got).every((v, k) => v === big[off + k]), `bytes at ${off}+${len}`);
    }
    f.close();
    // Read-only.
    for (const line of [`echo x > ${mnt}/new`, `echo x >> ${mnt}/a/hello.txt`, `mkdir ${mnt}/d`]) {
      const r = await sh(line);
      assert(r.code !== 0 && /Read-only/i.test(r.stderr), `${line}: ${r.stderr}`);
    }
  });
});

testIf(SKIP, "a corrupt chunk gives EIO for that file only, and a log line", async () => {
  using tmp = tempDir();
  const src = `${tmp.path}/src`;
  const store = `${tmp.path}/store`;
  const mnt = `${tmp.path}/mnt`;
  Deno.mkdirSync(src);
  Deno.writeFileSync(`${src}/bad`, randomBytes(200000, 4));
  Deno.writeTextFileSync(`${src}/good`, "fine\n");
  const root = await addTree(src, store);
  const st = Store.open(store, { create: false });
  const rootNode = getNode(st, root);
  assert(rootNode.type === "dir");
  const bad = rootNode.entries.find((e) => e.name === "bad")!.file!;
  const chunk = (bad.chunks ?? st.getManifest(bad.manifest!).chunks)[2];
  corruptObject(st, chunk);
  await withMount(store, root, mnt, {}, async () => {
    const r = await sh(`cat ${mnt}/bad > /dev/null`);
    assert(r.code !== 0 && /Input\/output error/.test(r.stderr), r.stderr);
    assertEquals(Deno.readTextFileSync(`${mnt}/good`), "fine\n");
    const stats = (await requestMount(st, mnt, { op: "stats" })).stats as Record<string, number>;
    assert(stats.readErrors >= 1, JSON.stringify(stats));
  });
  const logs = [...Deno.readDirSync(`${store}/mounts`)].filter((e) => e.name.endsWith(".log"));
  const text = logs.map((e) => Deno.readTextFileSync(`${store}/mounts/${e.name}`)).join("");
  assert(text.includes("cannot read /bad") && text.includes(chunk), text);
});

testIf(SKIP, "a 5 GiB file (64-bit offsets) and a directory of 100,000 entries", async () => {
  using tmp = tempDir();
  const store = `${tmp.path}/store`;
  const mnt = `${tmp.path}/mnt`;
  const st = Store.open(store, { create: true });
  const block = randomBytes(65536, 21);
  const c = st.putObject(block);
  const n = 5 * 16384; // 5 GiB of 64 KiB chunks
  const big: FileNode = {
    type: "file",
    mode: 0o100644,
    size: n * 65536,
    manifest: st.putManifest({ size: n * 65536, chunks: Array(n).fill(c) }),
  };
  const small: FileNode = {
    type: "file",
    mode: 0o100644,
    size: 2,
    chunks: [st.putObject(new TextEncoder().encode("x\n"))],
  };
  const names = Array.from({ length: 100_000 }, (_, i) => `entry-${i}`).sort(compareNames);
  const many = putNode(st, {
    type: "dir",
    mode: S_IFDIR | 0o755,
    entries: names.map((name) => ({ name, file: small })),
  });
  const entries: DirEntry[] = [{ name: "big", file: big }, { name: "many", dir: many }];
  const root = putNode(st, { type: "dir", mode: S_IFDIR | 0o755, entries });
  st.setRef("test/root", root);
  await withMount(store, root, mnt, {}, async () => {
    assertEquals(Deno.statSync(`${mnt}/big`).size, 5 * 2 ** 30);
    const f = Deno.openSync(`${mnt}/big`);
    for (const off of [2 ** 31 + 65536 * 3, 2 ** 32 + 100, 5 * 2 ** 30 - 70000]) {
      const buf = new Uint8Array(100000);
      f.seekSync(off, Deno.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const k = f.readSync(buf.subarray(got));
        if (!k) break;
        got += k;
      }
      assertEquals(got, Math.min(100000, 5 * 2 ** 30 - off));
      for (let i = 0; i < got; i += 997) {
        assertEquals(buf[i], block[(off + i) % 65536], `byte at ${off + i}`);
      }
    }
    f.close();
    const ls = await sh(`ls -f ${mnt}/many | wc -l`);
    assertEquals(ls.stdout.trim(), "100002");
    assertEquals(Deno.readTextFileSync(`${mnt}/many/entry-99999`), "x\n");
    assertEquals(Deno.statSync(`${mnt}/many/entry-5`).size, 2);
  });
});

import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { Packs } from "../../src/cas/packs.ts";
import { objectKey } from "../../src/cas/key.ts";
import { encodeObject } from "../../src/cas/compress.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import type { PackEntry } from "../../src/cas/pack.ts";
import { isNodeEncoding } from "../../src/dag/node.ts";
import { hd, randomBytes, tempDir } from "../_helpers.ts";

/** A tree of `dirs` directories, each with a few small files and one big (chunked) file. */
function tree(dir: string, dirs: number): void {
  for (let d = 0; d < dirs; d++) {
    const sub = `${dir}/a${d % 4}/b${d}`;
    Deno.mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 5; f++) Deno.writeFileSync(`${sub}/f${f}`, randomBytes(3000, d * 10 + f));
    if (d % 5 === 0) Deno.writeFileSync(`${sub}/big`, randomBytes(300_000, 7000 + d));
  }
}

/** Each packed entry with whether it is metadata (a node or a manifest), in pack order. */
function layout(store: Store): { pack: string; e: PackEntry; meta: boolean }[] {
  const out: { pack: string; e: PackEntry; meta: boolean }[] = [];
  for (const { pack, entries } of store.packEntries()) {
    for (const e of entries) {
      const meta = e.kind === "manifests" || isNodeEncoding(store.getObject(e.id));
      out.push({ pack, e, meta });
    }
  }
  return out.sort((a, b) => a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.e.offset - b.e.offset);
}

Deno.test("cas add: a pack keeps its Dir nodes and manifests together at its tail", async () => {
  using t = tempDir();
  const src = `${t.path}/src`;
  tree(src, 40);
  const storeDir = `${t.path}/store`;
  const add = await hd(["cas", "add", "--no-cache", src], { store: storeDir });
  assertEquals(add.code, 0, add.stderr);
  const root = add.stdout.trim().split("\n")[0];
  const store = Store.open(storeDir);
  const rows = layout(store);
  const metas = rows.filter((r) => r.meta);
  // 40 leaf dirs + 4 middle + the root, and 8 manifests of the big files
  assert(metas.length >= 45 + 8, `only ${metas.length} metadata entries`);
  assert(rows.some((r) => !r.meta), "no chunks");
  for (const pack of new Set(rows.map((r) => r.pack))) {
    const inPack = rows.filter((r) => r.pack === pack);
    const first = inPack.findIndex((r) => r.meta);
    if (first < 0) continue;
    // after the first metadata entry, only metadata, back to back
    for (let i = first; i < inPack.length; i++) {
      assert(inPack[i].meta, `a chunk at ${inPack[i].e.offset} among the metadata of ${pack}`);
      if (i > first) {
        const prev = inPack[i - 1].e;
        assertEquals(inPack[i].e.offset, prev.offset + prev.length);
      }
    }
  }
  // the root, written last, comes first in its section: a walk from the root reads forward
  const rootRow = metas.find((r) => r.e.id === root)!;
  assertEquals(
    rootRow.e.offset,
    Math.min(...metas.filter((r) => r.pack === rootRow.pack).map((r) => r.e.offset)),
  );
  const verify = await hd(["cas", "verify"], { store: storeDir });
  assertEquals(verify.code, 0, verify.stdout + verify.stderr);
  const out = `${t.path}/out`;
  const co = await hd(["cas", "checkout", root, out], { store: storeDir });
  assertEquals(co.code, 0, co.stderr);
  assertEquals(
    Deno.readFileSync(`${out}/a0/b0/big`),
    Deno.readFileSync(`${src}/a0/b0/big`),
  );
});

Deno.test("packs: metadata held for the tail reads back before the flush; a rewrite keeps pack order", () => {
  using t = tempDir();
  Deno.mkdirSync(`${t.path}/packs`, { recursive: true });
  const packs = new Packs(t.path);
  const items = Array.from({ length: 30 }, (_, i) => {
    const bytes = randomBytes(500, i + 1);
    return { id: blake3Hex(bytes), stored: encodeObject(bytes, false), meta: i % 3 === 0 };
  });
  packs.startBatch();
  for (const it of items) packs.add("objects", it.id, it.stored, it.meta);
  const held = items.find((it) => it.meta)!;
  assertEquals(packs.pendingBytes(objectKey("objects", held.id)), held.stored);
  assertEquals(packs.pendingSize, 4 + items.reduce((s, it) => s + it.stored.length, 0));
  const written = packs.flush();
  packs.stopBatch();
  assertEquals(written.length, items.length);
  const byOffset = (es: PackEntry[]) =>
    [...es].sort((a, b) => a.offset - b.offset).map((e) => e.id);
  const order = byOffset(written);
  const plain = items.filter((it) => !it.meta).map((it) => it.id);
  const meta = items.filter((it) => it.meta).map((it) => it.id).reverse();
  assertEquals(order, [...plain, ...meta]);
  for (const it of items) {
    const loc = packs.locate(objectKey("objects", it.id))!;
    assertEquals(packs.read(loc), it.stored);
  }
  // a gc rewrite of a subset copies entries in the old pack's order, not the index's id order
  const [{ pack, entries }] = packs.entries();
  const live = entries.filter((_, i) => i % 2 === 0);
  packs.rewrite(pack, live);
  packs.remove(pack);
  packs.forget();
  const [{ entries: after }] = packs.entries();
  assertEquals(byOffset(after), byOffset(live));
});

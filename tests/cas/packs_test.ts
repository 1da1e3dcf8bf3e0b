import { assert, assertEquals } from "../_assert.ts";
import { type ObjectKey, objectKey } from "../../src/cas/key.ts";
import { Packs, READ_MIN, READ_WINDOW, readSize } from "../../src/cas/packs.ts";
import { PackBuilder, PackStream, STREAM_BUFFER } from "../../src/cas/pack.ts";
import { encodeObject } from "../../src/cas/compress.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import { randomBytes, tempDir } from "../_helpers.ts";

/** Writes one pack of `items` through a batch; returns their keys and stored bytes. */
function writePack(
  packs: Packs,
  items: { kind: "objects" | "manifests"; id: string; stored: Uint8Array }[],
): void {
  packs.startBatch();
  for (const it of items) packs.add(it.kind, it.id, it.stored);
  assertEquals(packs.flush().length, items.length);
  packs.stopBatch();
}

function fixture(root: string) {
  Deno.mkdirSync(`${root}/packs`, { recursive: true });
  const packs = new Packs(root);
  const stored = new Map<ObjectKey, Uint8Array>();
  const item = (kind: "objects" | "manifests", seed: number, size = 200, id?: string) => {
    const bytes = randomBytes(size, seed);
    const it = { kind, id: id ?? blake3Hex(bytes), stored: encodeObject(bytes, false) };
    stored.set(objectKey(kind, it.id), it.stored);
    return it;
  };
  const a = Array.from({ length: 300 }, (_, i) => item("objects", i + 1));
  // Manifests under ids that are also objects' ids: the kind byte must tell them apart.
  const m = a.slice(0, 50).map((o, i) => item("manifests", 1000 + i, 100, o.id));
  writePack(packs, [...a, ...m]);
  const b = Array.from({ length: 200 }, (_, i) => item("objects", 2000 + i));
  b.push(item("objects", 9999, READ_WINDOW + 4096)); // bigger than the read window
  writePack(packs, b);
  return { stored, objectsOnly: a.slice(50).map((o) => o.id) };
}

Deno.test("packs: the binary search over raw indexes agrees with the full index", () => {
  using d = tempDir();
  const { stored, objectsOnly } = fixture(d.path);
  const absent: ObjectKey[] = [
    ...objectsOnly.slice(0, 40).map((id) => objectKey("manifests", id)),
    ...Array.from(
      { length: 40 },
      (_, i) => objectKey("objects", blake3Hex(randomBytes(8, 5000 + i))),
    ),
    objectKey("objects", "0".repeat(64)),
    objectKey("manifests", "f".repeat(64)),
  ];
  const raw = new Packs(d.path); // fresh: answers from the raw indexes
  const full = new Packs(d.path);
  for (const k of [...stored.keys(), ...absent]) {
    const want = stored.has(k);
    assertEquals(raw.has(k), want, `raw ${k}`);
    assertEquals(full.locate(k) !== undefined, want, `full ${k}`);
  }
  assertEquals(new Set(full.keys()), new Set(stored.keys()));
});

Deno.test("packs: reads give back the stored bytes, through the window and past it", () => {
  using d = tempDir();
  const { stored } = fixture(d.path);
  const packs = new Packs(d.path);
  let windowed = 0;
  // Backwards, then forwards: window misses and hits both.
  const keys = [...stored.keys()];
  for (const k of [...keys].reverse().concat(keys)) {
    const got = packs.read(packs.locate(k)!);
    if (packs.sharesWindow(got)) windowed++;
    assertEquals(blake3Hex(got), blake3Hex(stored.get(k)!), k);
  }
  assert(windowed > keys.length, `most reads come from the window (${windowed})`);
});

Deno.test("packs: a pack whose index does not fit its file hides its keys, not the others'", () => {
  using d = tempDir();
  const { stored } = fixture(d.path);
  const names = [...Deno.readDirSync(`${d.path}/packs`)].map((e) => e.name).sort();
  const victim = `${d.path}/packs/${names[0]}`;
  const bytes = Deno.readFileSync(victim);
  Deno.writeFileSync(victim, bytes.subarray(100)); // the trailer's offsets now point elsewhere
  const packs = new Packs(d.path);
  const lost = [...stored.keys()].filter((k) => !packs.has(k));
  assert(lost.length > 0 && lost.length < stored.size, `${lost.length} of ${stored.size} hidden`);
  assertEquals(packs.broken().map((b) => b.path), [victim]);
  for (const k of stored.keys()) assertEquals(packs.has(k), !lost.includes(k));
});

Deno.test("pack stream: pending objects read back (buffered and written), and the pack file equals PackBuilder's", () => {
  using dir = tempDir();
  const items = Array.from({ length: 40 }, (_, i) => {
    // Mixed sizes: some stay in the 1 MiB buffer, some force it out, one is larger than it.
    const raw = randomBytes(i === 7 ? STREAM_BUFFER + 1000 : 1000 + i * 20_000, i + 1);
    return { kind: "objects" as const, id: blake3Hex(raw), stored: encodeObject(raw, false) };
  });
  const s = new PackStream(`${dir.path}/tmp/p1`);
  const b = new PackBuilder();
  for (const it of items) (s.add(it.kind, it.id, it.stored), b.add(it.kind, it.id, it.stored));
  s.add(items[0].kind, items[0].id, items[0].stored); // a duplicate is ignored
  assertEquals(s.count, items.length);
  assertEquals(s.size, b.size);
  for (const it of items) assertEquals(s.pending(objectKey(it.kind, it.id)), it.stored);
  const built = b.finish();
  const { name, entries } = s.finish((n) => `${dir.path}/packs/${n}.pack`);
  assertEquals(name, built.name);
  assertEquals(entries, built.entries);
  assertEquals(Deno.readFileSync(`${dir.path}/packs/${name}.pack`), built.bytes);
  assertEquals([...Deno.readDirSync(`${dir.path}/tmp`)].length, 0);
});

Deno.test("pack stream: abort removes the temp file; an empty stream never creates one", () => {
  using dir = tempDir();
  const s = new PackStream(`${dir.path}/p`);
  s.add("objects", blake3Hex(new Uint8Array([1])), encodeObject(randomBytes(STREAM_BUFFER * 2, 3)));
  assert(Deno.statSync(`${dir.path}/p`).isFile);
  s.abort();
  assertEquals([...Deno.readDirSync(dir.path)].length, 0);
  const empty = new PackStream(`${dir.path}/q`);
  empty.abort();
  assertEquals([...Deno.readDirSync(dir.path)].length, 0);
});

Deno.test("packs: a batch's flushes append their packs to the binary-searched indexes (no full map)", () => {
  using d = tempDir();
  Deno.mkdirSync(`${d.path}/packs`, { recursive: true });
  const packs = new Packs(d.path);
  const stored = new Map<ObjectKey, Uint8Array>();
  packs.startBatch();
  for (let p = 0; p < 3; p++) {
    for (let i = 0; i < 100; i++) {
      const bytes = randomBytes(100, p * 1000 + i);
      const id = blake3Hex(bytes);
      const key = objectKey("objects", id);
      assert(!packs.has(key), "not stored yet"); // loads the (empty, then growing) raw indexes
      packs.add("objects", id, encodeObject(bytes, false));
      stored.set(key, encodeObject(bytes, false));
    }
    packs.flush();
  }
  packs.stopBatch();
  assertEquals(packs.usage().packs, 3);
  const fresh = new Packs(d.path);
  for (const [k, bytes] of stored) {
    const loc = packs.locate(k);
    assert(loc !== undefined, k);
    assertEquals(loc, fresh.locate(k));
    assertEquals(packs.read(loc).slice(), bytes);
  }
  assert(!packs.has(objectKey("manifests", [...stored.keys()][0])), "kinds stay apart");
  assert(!packs.has("not hex" as ObjectKey));
});

Deno.test("readSize: on forward the window doubles, back through a tree's nodes too; after a jump it reads what recent windows used", () => {
  const M = READ_MIN;
  const W = READ_WINDOW;
  const at = (start: number, end: number, hits = 0, pack = "p") => ({ pack, start, end, hits });
  // [what, window, jump size, pack, offset, length] → [bytes to read, jump size kept, and where
  // the read starts when not at the object]
  type Row = [string, ReturnType<typeof at>, number, string, number, number, number, number];
  const table: (Row | [...Row, number])[] = [
    ["first read", at(0, 0, 0, ""), M, "p", 0, 100, M, M],
    ["on from the window's end", at(0, M), M, "p", M, 100, 2 * M, M],
    ["just past its end (an object skipped)", at(0, M), M, "p", M + M / 2, 100, 2 * M, M],
    ["an object that straddles its end", at(2 * M, 4 * M), M, "p", 4 * M - 1024, M, 4 * M, M],
    ["doubling stops at READ_WINDOW", at(0, W), M, "p", W, 100, W, M],
    ["on forward, at least the jump size", at(0, M), 8 * M, "p", M, 100, 8 * M, 8 * M],
    ["a jump from a window that served none", at(0, 4 * M), 4 * M, "p", 20 * M, 100, 2 * M, 2 * M],
    ["… down to READ_MIN", at(0, M), M, "p", 20 * M, 100, M, M],
    [
      "a jump from a window that served one more",
      at(0, 2 * M, 1),
      2 * M,
      "p",
      20 * M,
      100,
      2 * M,
      2 * M,
    ],
    [
      "a jump from a window that served two more",
      at(0, 2 * M, 2),
      2 * M,
      "p",
      20 * M,
      100,
      4 * M,
      4 * M,
    ],
    ["… up to READ_WINDOW", at(0, W, 9), W, "p", 20 * W, 100, W, W],
    [
      "back from the window: the stretch that ends where it starts",
      at(4 * M, 5 * M),
      M,
      "p",
      3 * M,
      100,
      2 * M,
      M,
      2 * M,
    ],
    [
      "back farther, from a window that served more: from the object",
      at(4 * M, 5 * M, 1),
      M,
      "p",
      M,
      100,
      3 * M,
      M,
      M,
    ],
    [
      "back farther, from a window that served none: a jump",
      at(4 * M, 5 * M),
      M,
      "p",
      M,
      100,
      M,
      M,
    ],
    [
      "back from a big window: READ_WINDOW at most",
      at(2 * W, 3 * W),
      M,
      "p",
      2 * W - 100,
      100,
      W,
      M,
      W,
    ],
    ["back, near the pack's start", at(M, 2 * M), M, "p", 0, 100, M, M, 0],
    [
      "back farther than READ_WINDOW: a jump",
      at(20 * W, 21 * W, 5),
      M,
      "p",
      10 * W,
      100,
      2 * M,
      2 * M,
    ],
    [
      "an object across the window's start: back, through its end",
      at(4 * M, 5 * M),
      M,
      "p",
      4 * M - 50,
      100,
      2 * M,
      M,
      2 * M + 50,
    ],
    ["another pack", at(0, M), M, "q", M, 100, M, M],
    ["an object bigger than the window", at(0, 0, 0, ""), M, "p", 0, 3 * M, 3 * M, M],
  ];
  // (a tree's nodes: reads may go back)
  for (const [what, w, jump, pack, off, len, size, kept, start] of table) {
    assertEquals(
      readSize(w, jump, pack, off, len, true),
      { start: start ?? off, size, jump: kept },
      what,
    );
  }
  // file chunks never read back: the same read is a jump from the object
  assertEquals(readSize(at(4 * M, 5 * M, 3), M, "p", 3 * M, 100), {
    start: 3 * M,
    size: 2 * M,
    jump: 2 * M,
  });
});

Deno.test("packs: objects read out of pack order cost small reads, in pack order few big ones", () => {
  using d = tempDir();
  Deno.mkdirSync(`${d.path}/packs`);
  const packs = new Packs(d.path);
  // 400 objects of 2 KiB (incompressible): ~800 KiB of pack
  const items = Array.from({ length: 400 }, (_, i) => {
    const bytes = randomBytes(2048, 7000 + i);
    return { kind: "objects" as const, id: blake3Hex(bytes), stored: encodeObject(bytes, false) };
  });
  writePack(packs, items);
  const locs = items.map((it) => packs.locate(objectKey("objects", it.id))!);
  const total = locs.reduce((n, l) => n + l.length, 0);
  // in pack order: the window grows to READ_WINDOW, and everything is read about once
  const seq = new Packs(d.path);
  for (const l of [...locs].sort((a, b) => a.offset - b.offset)) seq.read(l);
  const s = seq.readStats();
  assert(s.calls <= 8, `${s.calls} reads in pack order`);
  assert(s.bytes < total + READ_WINDOW, `${s.bytes} bytes read for ${total}`);
  // backwards (a walk from a tree's root through nodes written children first): as few reads
  // when they are a tree's nodes; file chunks read forward from each object
  const back = new Packs(d.path);
  for (const l of [...locs].sort((a, b) => b.offset - a.offset)) back.read(l, true);
  const b = back.readStats();
  assert(b.calls <= 10, `${b.calls} reads back through the pack`);
  assert(b.bytes < total + READ_WINDOW, `${b.bytes} bytes read back for ${total}`);
  const chunks = new Packs(d.path);
  for (const l of [...locs].sort((a, b) => b.offset - a.offset)) chunks.read(l);
  assert(chunks.readStats().calls >= 100, `${chunks.readStats().calls} chunk reads back`);
  // every 7th object, around the pack (a read order unrelated to the pack's): each read small
  const jumpy = new Packs(d.path);
  const order = locs.map((_, i) => locs[(i * 7) % locs.length]);
  for (const l of order) assertEquals(jumpy.read(l).length, l.length);
  const j = jumpy.readStats();
  assert(j.bytes <= order.length * READ_MIN, `${j.bytes} bytes for ${order.length} jumps`);
  // (each of them read READ_WINDOW bytes before: 400 × 512 KiB)
  // all over the pack (~300 KiB apart): the windows serve nothing, so each read stays small
  const far = new Packs(d.path);
  const spread = locs.map((_, i) => locs[(i * 157) % locs.length]);
  for (const l of spread) assertEquals(far.read(l).length, l.length);
  const fr = far.readStats();
  assert(fr.bytes <= spread.length * READ_MIN * 1.2, `${fr.bytes} bytes, reads all over`);
});

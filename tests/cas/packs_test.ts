import { assert, assertEquals } from "../_assert.ts";
import { type ObjectKey, objectKey } from "../../src/cas/key.ts";
import { Packs, READ_WINDOW } from "../../src/cas/packs.ts";
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

import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { CorruptObjectError, MissingObjectError } from "../../src/cas/errors.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import { collectGarbage } from "../../src/cas/gc.ts";
import { Store } from "../../src/cas/store.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { putNode } from "../../src/dag/dag.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { ingestBytes } from "../../src/scan/ingest.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";

const te = new TextEncoder();

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

testIf(
  skipUnless({ commands: ["b3sum"] }),
  "a small file's chunk id equals b3sum of the file",
  async () => {
    using d = tempDir();
    const bytes = te.encode("hello, content-addressed world\n".repeat(50));
    Deno.writeFileSync(`${d.path}/f`, bytes);
    const out = await new Deno.Command("b3sum", {
      args: ["--no-names", `${d.path}/f`],
      stdout: "piped",
    }).output();
    const b3 = new TextDecoder().decode(out.stdout).trim();
    const store = Store.open(`${d.path}/store`);
    const f = ingestBytes(store, bytes);
    assertEquals(f.chunks, [b3]);
    assertEquals(blake3Hex(bytes), b3);
  },
);

Deno.test("objects over 512 bytes are compressed when it saves space, and read back verified", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const text = te.encode("abcdefgh".repeat(1000));
  const id = store.putObject(text);
  const onDisk = Deno.readFileSync(store.path("objects", id));
  assertEquals(onDisk[0], 1, "codec byte zstd");
  assert(onDisk.length < text.length / 10, `compressed to ${onDisk.length}`);
  assertEquals(store.getObject(id), text);
  const small = te.encode("tiny");
  const sid = store.putObject(small);
  assertEquals(Deno.readFileSync(store.path("objects", sid))[0], 0, "small objects stay raw");
  const random = crypto.getRandomValues(new Uint8Array(4096));
  const rid = store.putObject(random);
  assertEquals(Deno.readFileSync(store.path("objects", rid))[0], 0, "incompressible stays raw");
});

Deno.test("a corrupted loose object is reported with its path on read", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const id = store.putObject(te.encode("x".repeat(2000)));
  const p = store.path("objects", id);
  const raw = Deno.readFileSync(p);
  raw[raw.length - 1] ^= 0xff;
  Deno.writeFileSync(p, raw);
  const fresh = Store.open(`${d.path}/s`);
  const e = assertThrows(() => fresh.getObject(id), /corrupt/);
  assert(e instanceof CorruptObjectError);
  assert(e.message.includes(p), e.message);
  assertThrows(() => fresh.getObject("00".repeat(32)), /not in the store/) instanceof
    MissingObjectError;
});

Deno.test("a corrupted packed object is caught by read and by verify", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const ids = store.batch(() =>
    [1, 2, 3].map((i) => store.putObject(te.encode(`object ${i} `.repeat(300))))
  );
  const packs = [...Deno.readDirSync(`${d.path}/s/packs`)];
  assertEquals(packs.length, 1);
  const pp = `${d.path}/s/packs/${packs[0].name}`;
  const bytes = Deno.readFileSync(pp);
  for (let i = 6; i < 10; i++) bytes[i] ^= 0x55; // the first entry: its zstd magic and header
  Deno.writeFileSync(pp, bytes);
  const fresh = Store.open(`${d.path}/s`);
  let corrupt = 0;
  for (const id of ids) {
    try {
      fresh.getObject(id);
    } catch (e) {
      assert(e instanceof CorruptObjectError && e.message.includes(".pack@"), (e as Error).message);
      corrupt++;
    }
  }
  assertEquals(corrupt, 1, "exactly the damaged object");
  const report = verifyStore(fresh, dagReferences);
  assertEquals(report.corrupt.length, corrupt);
});

Deno.test("refs are written atomically and listed sorted; bad names are refused", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const id = store.putObject(te.encode("a"));
  store.setRef("trees/b", id);
  store.setRef("a", id);
  assertEquals(store.listRefs().map(([n]) => n), ["a", "trees/b"]);
  assertEquals(store.getRef("trees/b"), id);
  assertThrows(() => store.setRef("../evil", id), /Cannot use ref name/);
  assert(store.deleteRef("a"));
  assertEquals(store.getRef("a"), null);
  assertEquals([...Deno.readDirSync(`${d.path}/s/tmp`)].length, 0, "no temp files left");
});

Deno.test("gc keeps what refs reach (through dirs, manifests and chunks) and removes the rest", async () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const keep = ingestBytes(store, randomBytes(300_000)); // > 8 chunks: manifest
  assert(keep.manifest !== undefined);
  const dir = putNode(store, {
    type: "dir",
    mode: 0o40755,
    entries: [{ name: "big", file: keep }],
  });
  store.setRef("keep", dir);
  const drop = ingestBytes(store, te.encode("garbage ".repeat(500)));
  const dry = await collectGarbage(store, { dryRun: true, references: dagReferences });
  assertEquals(dry.removedObjects, 1);
  assert(store.has(drop.chunks![0]), "dry run removes nothing");
  const r = await collectGarbage(store, { references: dagReferences });
  assertEquals(r.removedObjects, 1);
  const fresh = Store.open(`${d.path}/s`);
  assert(!fresh.has(drop.chunks![0]));
  assert(fresh.has(dir) && fresh.has(keep.manifest!, "manifests"));
  assertEquals(verifyStore(fresh, dagReferences).missing, []);
});

Deno.test("gc rewrites a pack that holds garbage and keeps its live objects", async () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const [a, b] = store.batch(() => [
    ingestBytes(store, te.encode("live ".repeat(400))),
    ingestBytes(store, te.encode("dead ".repeat(400))),
  ]);
  store.setRef(
    "a",
    putNode(store, { type: "dir", mode: 0o40755, entries: [{ name: "a", file: a }] }),
  );
  const r = await collectGarbage(store, { references: dagReferences });
  assertEquals(r.removedObjects, 1);
  const fresh = Store.open(`${d.path}/s`);
  assertEquals(new TextDecoder().decode(fresh.getObject(a.chunks![0])).slice(0, 5), "live ");
  assert(!fresh.has(b.chunks![0]));
});

Deno.test("gc waits for a concurrent add that holds the store lock", async () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  let addDone = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const adding = store.withLock("shared", async () => {
    const f = ingestBytes(store, te.encode("being added ".repeat(100)));
    await gate; // the add has written its chunk but not yet its ref
    store.setRef(
      "new",
      putNode(store, { type: "dir", mode: 0o40755, entries: [{ name: "f", file: f }] }),
    );
    addDone = true;
  });
  const other = Store.open(`${d.path}/s`);
  const gc = collectGarbage(other, { references: dagReferences });
  await new Promise((r) => setTimeout(r, 200));
  assert(!addDone);
  release();
  await adding;
  const r = await gc;
  assertEquals(r.removedObjects, 0, "nothing the add wrote was swept");
  assertEquals(verifyStore(other, dagReferences).missing, []);
});

Deno.test("two hd processes adding the same tree at once both succeed and leave a valid store", async () => {
  using d = tempDir();
  const src = `${d.path}/src`;
  for (let i = 0; i < 300; i++) {
    Deno.mkdirSync(`${src}/d${i % 10}`, { recursive: true });
    Deno.writeTextFileSync(`${src}/d${i % 10}/f${i}.txt`, `file ${i}\n`.repeat(i * 3 + 1));
  }
  const store = `${d.path}/store`;
  const [a, b] = await Promise.all([
    hd(["cas", "add", src, "--json"], { store }),
    hd(["cas", "add", src, "--json"], { store }),
  ]);
  assertEquals([a.code, b.code], [0, 0], a.stderr + b.stderr);
  assertEquals(JSON.parse(a.stdout).root, JSON.parse(b.stdout).root);
  const v = await hd(["cas", "verify", "--json"], { store });
  assertEquals(v.code, 0, v.stdout);
  assertEquals(JSON.parse(v.stdout).ok, true);
});

Deno.test("opening a directory of another format is refused", async () => {
  using d = tempDir();
  Deno.writeTextFileSync(`${d.path}/FORMAT`, "something else 9\n");
  assertThrows(() => Store.open(d.path), /format "something else 9"/);
  await assertRejects(() => Promise.reject(new Error("x")), /x/);
});

Deno.test("a long-lived store handle forgets what it knew after another process's gc", async () => {
  using d = tempDir();
  const longLived = Store.open(`${d.path}/s`);
  const f = await longLived.withLock(
    "shared",
    () => ingestBytes(longLived, te.encode("soon garbage ".repeat(50))),
  );
  assert(longLived.has(f.chunks![0]));
  await collectGarbage(Store.open(`${d.path}/s`), { references: dagReferences }); // no ref: swept
  // Re-adding the same bytes under the lock must write them again, not trust the stale memory.
  const again = await longLived.withLock(
    "shared",
    () => ingestBytes(longLived, te.encode("soon garbage ".repeat(50))),
  );
  assertEquals(
    new TextDecoder().decode(Store.open(`${d.path}/s`).getObject(again.chunks![0])).slice(0, 4),
    "soon",
  );
});

Deno.test("a pack with a damaged index is reported by verify; other objects stay readable", () => {
  using d = tempDir();
  const store = Store.open(`${d.path}/s`);
  const loose = store.putObject(te.encode("loose object"));
  const packed = store.batch(() => store.putObject(te.encode("packed object ".repeat(100))));
  const name = [...Deno.readDirSync(`${d.path}/s/packs`)][0].name;
  const pp = `${d.path}/s/packs/${name}`;
  const b = Deno.readFileSync(pp);
  b[b.length - 1] ^= 0xff; // trailer magic
  Deno.writeFileSync(pp, b);
  const fresh = Store.open(`${d.path}/s`);
  assertEquals(new TextDecoder().decode(fresh.getObject(loose)), "loose object");
  assertThrows(() => fresh.getObject(packed), /not in the store/);
  const r = verifyStore(fresh, dagReferences);
  assertEquals(r.corrupt.map((c) => c.path), [pp]);
});

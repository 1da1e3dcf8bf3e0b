import { assert, assertEquals } from "../_assert.ts";
import { objectKey } from "../../src/cas/key.ts";
import { Store } from "../../src/cas/store.ts";
import { hd, tempDir } from "../_helpers.ts";

/** `n` files of random bytes (40–94 kB) in 20 directories. */
function tree(dir: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const sub = `${dir}/d${i % 20}`;
    Deno.mkdirSync(sub, { recursive: true });
    const b = new Uint8Array(40_000 + (i % 7) * 9000);
    for (let o = 0; o < b.length; o += 65536) {
      crypto.getRandomValues(b.subarray(o, Math.min(b.length, o + 65536)));
    }
    Deno.writeFileSync(`${sub}/f${i}`, b);
  }
}

/** Copies of each id across loose files and packs. */
function copies(store: Store): Map<string, number> {
  const n = new Map<string, number>();
  for (const { entries } of store.packEntries()) {
    for (const e of entries) {
      const k = objectKey(e.kind, e.id);
      n.set(k, (n.get(k) ?? 0) + 1);
    }
  }
  for (const kind of ["objects", "manifests"] as const) {
    for (const id of store.list(kind)) {
      try {
        Deno.lstatSync(store.path(kind, id));
        const k = objectKey(kind, id);
        n.set(k, (n.get(k) ?? 0) + 1);
      } catch { /* packed only */ }
    }
  }
  return n;
}

Deno.test("gc reclaims the duplicate packs of two concurrent hd cas add of the same tree", async () => {
  using d = tempDir();
  const src = `${d.path}/src`;
  tree(src, 300);
  // What two concurrent adds leave (both found the objects absent, each wrote its own pack),
  // made without a race: a second store of the same key adds the same files (and one more, so
  // its pack differs and does not share the first one's name), and its pack joins the first store.
  const storeDir = `${d.path}/s`;
  const other = `${d.path}/o`;
  Store.open(storeDir);
  Deno.mkdirSync(other);
  Deno.copyFileSync(`${storeDir}/KEY`, `${other}/KEY`);
  const a = await hd(["cas", "add", "--ref", "a", src], { store: storeDir });
  assertEquals(a.code, 0, a.stderr);
  const src2 = `${d.path}/src2`;
  await new Deno.Command("cp", { args: ["-a", src, src2] }).output();
  Deno.writeTextFileSync(`${src2}/one-more`, "makes the second pack another file\n");
  const b = await hd(["cas", "add", "--ref", "b", src2], { store: other });
  assertEquals(b.code, 0, b.stderr);
  for (const e of Deno.readDirSync(`${other}/packs`)) {
    Deno.copyFileSync(`${other}/packs/${e.name}`, `${storeDir}/packs/${e.name}`);
  }
  Store.open(storeDir).setRef("b", Store.open(other).getRef("b")!);
  const dups = [...copies(Store.open(storeDir)).values()].filter((c) => c > 1).length;
  assert(dups > 300, `the two packs hold ${dups} ids twice`);
  const before = Store.open(storeDir).usage().bytes;
  const dry = await hd(["cas", "gc", "--dry-run", "--json"], { store: storeDir });
  assertEquals(JSON.parse(dry.stdout).duplicates.copies, dups);
  const gc = await hd(["cas", "gc", "--json"], { store: storeDir });
  assertEquals(gc.code, 0, gc.stderr);
  const r = JSON.parse(gc.stdout);
  assertEquals(r.removedObjects, 0, "nothing was garbage");
  assertEquals(r.duplicates.copies, dups);
  const s = Store.open(storeDir);
  assertEquals([...copies(s).values()].filter((c) => c > 1).length, 0, "one copy of each id");
  const after = s.usage().bytes;
  assert(after < before * 0.7, `store shrank from ${before} to ${after} bytes`);
  const v = await hd(["cas", "verify"], { store: storeDir });
  assertEquals(v.code, 0, v.stdout + v.stderr);
  const again = await hd(["cas", "gc", "--json"], { store: storeDir });
  assertEquals(JSON.parse(again.stdout).duplicates.copies, 0);
});

Deno.test("gc keeps the copy that verifies when a duplicate is damaged", async () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const text = new TextEncoder().encode("a chunk stored twice ".repeat(100));
  // Two packs with the same object (as two concurrent adds write them).
  let id = "";
  for (let i = 0; i < 2; i++) {
    const w = Store.open(`${d.path}/s`);
    w.batch(() => (id = w.putObject(text, { compress: false })));
  }
  s.setRef("x", id);
  const packs = s.packEntries();
  assertEquals(packs.length, 1, "same bytes, same pack name: one file");
  // Damage a loose copy of the same id instead: gc must keep the packed one that verifies.
  Deno.mkdirSync(s.path("objects", id).slice(0, -63), { recursive: true });
  Deno.writeFileSync(s.path("objects", id), new Uint8Array([0, 1, 2, 3]));
  const { collectGarbage } = await import("../../src/cas/gc.ts");
  const { dagReferences } = await import("../../src/dag/refs.ts");
  const r = await collectGarbage(s, { references: dagReferences });
  assertEquals(r.duplicates.copies, 1);
  let loose = true;
  try {
    Deno.lstatSync(s.path("objects", id));
  } catch {
    loose = false;
  }
  assertEquals(loose, false, "the damaged loose copy went");
  assertEquals(Store.open(`${d.path}/s`).getObject(id), text);
});

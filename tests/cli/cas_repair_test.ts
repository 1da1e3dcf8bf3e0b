import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { getNode } from "../../src/dag/dag.ts";
import { hd, tempDir } from "../_helpers.ts";

/** The first chunk id of `name` in the root Dir `root`. */
function chunkOf(store: Store, root: string, name: string): string {
  const dir = getNode(store, root);
  assert(dir.type === "dir");
  const e = dir.entries.find((x) => x.name === name)!;
  const f = e.file!;
  return f.chunks ? f.chunks[0] : store.getManifest(f.manifest!).chunks[0];
}

/** Flips a byte in the middle of the stored copy of `id`. */
function corrupt(store: Store, id: string): void {
  const loc = store.location("objects", id)!;
  const [path, off] = loc.includes("@") ? loc.split("@") : [loc, "0"];
  const len = store.storedSize("objects", id);
  const f = Deno.openSync(path, { read: true, write: true });
  const at = Number(off) + Math.floor(len / 2);
  const b = new Uint8Array(1);
  f.seekSync(at, Deno.SeekMode.Start);
  f.readSync(b);
  b[0] ^= 0xff;
  f.seekSync(at, Deno.SeekMode.Start);
  f.writeSync(b);
  f.close();
}

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

Deno.test("hd cas verify --repair re-supplies a corrupt chunk from the working tree, and names what nobody can supply", async () => {
  using d = tempDir();
  const proj = `${d.path}/proj`;
  Deno.mkdirSync(proj);
  Deno.writeFileSync(`${proj}/big.bin`, random(300_000)); // a manifest of many chunks
  Deno.writeTextFileSync(`${proj}/small.txt`, "small file\n".repeat(200));
  Deno.writeTextFileSync(`${proj}/gone.txt`, "edited away later\n".repeat(300));
  const store = `${d.path}/s`;
  const add = await hd(["cas", "add", proj], { store });
  assertEquals(add.code, 0, add.stderr);
  const root = add.stdout.trim();
  const s = Store.open(store);
  const big = chunkOf(s, root, "big.bin");
  const small = chunkOf(s, root, "small.txt");
  const gone = chunkOf(s, root, "gone.txt");
  corrupt(s, big);
  corrupt(s, small);
  const v = await hd(["cas", "verify"], { store });
  assertEquals(v.code, 1);
  assert(v.stdout.includes(`corrupt ${big}`), v.stdout);

  const r = await hd(["cas", "verify", "--repair", "--json"], { store });
  assertEquals(r.code, 0, r.stdout + r.stderr);
  const j = JSON.parse(r.stdout);
  assertEquals(j.ok, true);
  assertEquals(
    j.repaired.map((x: { id: string; from: string }) => [x.id, x.from]).sort(),
    [[big, `${Deno.realPathSync(proj)}/big.bin`], [small, `${Deno.realPathSync(proj)}/small.txt`]]
      .sort(),
  );
  assertEquals(j.unrepaired, []);
  assertEquals((await hd(["cas", "verify"], { store })).code, 0);
  assertEquals(
    new TextDecoder().decode(
      Store.open(store).getObject(small),
    ).startsWith("small file\n"),
    true,
  );

  // Content nobody holds any more: edited in the working tree, then its stored chunk damaged.
  Deno.writeTextFileSync(`${proj}/gone.txt`, "something else\n");
  corrupt(Store.open(store), gone);
  const r2 = await hd(["cas", "verify", "--repair", "--json"], { store });
  assertEquals(r2.code, 1);
  const j2 = JSON.parse(r2.stdout);
  assertEquals(j2.repaired, []);
  assertEquals(j2.unrepaired.map((x: { id: string }) => x.id), [gone]);
  assert(/no source holds its bytes/.test(j2.unrepaired[0].why), j2.unrepaired[0].why);
  const text = await hd(["cas", "verify", "--repair"], { store });
  assertEquals(text.code, 1);
  assert(text.stdout.includes(`not repaired object ${gone}`), text.stdout);
  assert(text.stdout.includes("1 remain"), text.stdout);
});

Deno.test("hd cas verify --repair --from DIR: a copy of the files elsewhere is a source too", async () => {
  using d = tempDir();
  const proj = `${d.path}/proj`;
  Deno.mkdirSync(proj);
  Deno.writeTextFileSync(`${proj}/a.txt`, "alpha\n".repeat(500));
  const store = `${d.path}/s`;
  const add = await hd(["cas", "add", "--no-cache", proj], { store });
  assertEquals(add.code, 0);
  Deno.mkdirSync(`${d.path}/copy`);
  Deno.copyFileSync(`${proj}/a.txt`, `${d.path}/copy/renamed.txt`);
  Deno.removeSync(proj, { recursive: true });
  const s = Store.open(store);
  // No stat cache (--no-cache saved one anyway for the next add; remove it): only --from helps.
  Deno.removeSync(`${store}/cache`, { recursive: true });
  const id = chunkOf(s, add.stdout.trim(), "a.txt");
  corrupt(s, id);
  assertEquals((await hd(["cas", "verify", "--repair"], { store })).code, 1);
  const r = await hd(["cas", "verify", "--repair", "--from", `${d.path}/copy`], { store });
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assert(r.stdout.includes(`repaired object ${id} from`), r.stdout);
  const bad = await hd(["cas", "verify", "--from", `${d.path}/copy`], { store });
  assertEquals(bad.code, 2);
});

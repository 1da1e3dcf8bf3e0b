/**
 * gc's cleanup of the store's `tmp/`: entries older than an hour go, whatever they are (a crashed
 * writer's temp file, a scratch store a killed `hd cas verify --repair` left); newer ones stay.
 */
import { assertEquals } from "../_assert.ts";
import { collectGarbage } from "../../src/cas/gc.ts";
import { Store } from "../../src/cas/store.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { tempDir } from "../_helpers.ts";

Deno.test("gc removes old temp files and old scratch directories in tmp/, keeps fresh ones", async () => {
  using d = tempDir();
  const s = Store.open(`${d.path}/s`);
  const tmp = `${s.root}/tmp`;
  const old = new Date(Date.now() - 2 * 3600_000);
  // a directory first (readdir order is not sorted, so several of each)
  for (const n of ["a-repair", "m-repair"]) {
    Deno.mkdirSync(`${tmp}/${n}/objects/ab`, { recursive: true });
    Deno.writeTextFileSync(`${tmp}/${n}/objects/ab/cd`, "x");
    Deno.utimeSync(`${tmp}/${n}`, old, old);
  }
  for (const n of ["b-obj", "z-obj"]) {
    Deno.writeTextFileSync(`${tmp}/${n}`, "partial");
    Deno.utimeSync(`${tmp}/${n}`, old, old);
  }
  Deno.writeTextFileSync(`${tmp}/fresh`, "being written");
  Deno.mkdirSync(`${tmp}/fresh-repair`);
  await collectGarbage(s, { references: dagReferences });
  assertEquals([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), ["fresh", "fresh-repair"]);
});

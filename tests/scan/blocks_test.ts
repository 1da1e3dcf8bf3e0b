import { assertEquals } from "../_assert.ts";
import { readWhole } from "../../src/scan/blocks.ts";
import { randomBytes, tempDir } from "../_helpers.ts";

Deno.test("readWhole: the whole file, even when it grew past the size given, into a reused buffer", () => {
  using dir = tempDir();
  const big = randomBytes(300_000, 1);
  const small = randomBytes(10, 2);
  Deno.writeFileSync(`${dir.path}/big`, big);
  Deno.writeFileSync(`${dir.path}/small`, small);
  assertEquals(readWhole(`${dir.path}/big`, 1000), big); // size from an older lstat
  const first = readWhole(`${dir.path}/small`, 10).slice();
  assertEquals(first, small);
  assertEquals(readWhole(`${dir.path}/big`, big.length), big);
  Deno.writeFileSync(`${dir.path}/empty`, new Uint8Array(0));
  assertEquals(readWhole(`${dir.path}/empty`, 0).length, 0);
});

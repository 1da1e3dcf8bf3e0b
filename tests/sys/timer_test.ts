import { assert, assertEquals } from "../_assert.ts";
import { after } from "../../src/sys/timer.ts";

Deno.test("after: runs once, not before its delay, on a later turn", async () => {
  const ran: number[] = [];
  const t0 = performance.now();
  after(30, () => ran.push(performance.now() - t0));
  assertEquals(ran, [], "not synchronously");
  // a setTimeout keeps the test's process alive meanwhile (after() does not)
  await new Promise((r) => setTimeout(r, 120));
  assertEquals(ran.length, 1);
  assert(ran[0] >= 29, `ran after ${ran[0]} ms`);
});

Deno.test("after: a cancelled timer never runs", async () => {
  let ran = false;
  const t = after(0, () => ran = true);
  t.cancel();
  await new Promise((r) => setTimeout(r, 30));
  assertEquals(ran, false);
});

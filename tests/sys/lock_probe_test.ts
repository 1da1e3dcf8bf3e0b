/** src/sys/fs.ts's lock probes: whether a lock file is held, and the pid its holder wrote. */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { lockHeld, lockPid } from "../../src/sys/fs.ts";

Deno.test("lockHeld: held while another open file holds the flock, free after; no file: free", () => {
  using tmp = tempDir();
  const path = `${tmp.path}/x.lock`;
  assertEquals(lockHeld(path), false);
  Deno.writeTextFileSync(path, `${Deno.pid}\n`);
  assertEquals(lockHeld(path), false);
  const holder = Deno.openSync(path, { read: true, write: true });
  assert(holder.tryLockSync(true));
  assertEquals(lockHeld(path), true);
  assertEquals(lockHeld(path), true, "probing does not take the lock over");
  holder.close();
  assertEquals(lockHeld(path), false);
});

Deno.test("lockPid: a plain positive pid, anything else null (a lock file is untrusted text)", () => {
  using tmp = tempDir();
  const path = `${tmp.path}/x.lock`;
  assertEquals(lockPid(path), null);
  for (
    const [text, want] of [
      ["4242\n", 4242],
      ["  17  ", 17],
      ["0", null],
      ["-5", null],
      ["12 34", null],
      ["abc", null],
      ["99999999999", null],
      ["", null],
    ] as [string, number | null][]
  ) {
    Deno.writeTextFileSync(path, text);
    assertEquals(lockPid(path), want, JSON.stringify(text));
  }
});

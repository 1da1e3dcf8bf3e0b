import { assert, assertEquals } from "../_assert.ts";
import { FileReader } from "../../src/scan/readfile.ts";
import { tempDir } from "../_helpers.ts";

Deno.test("FileReader: whole files through libc, larger than its buffer, empty, missing", () => {
  const r = FileReader.open();
  if (!r) {
    console.log("skip: libc cannot be bound here");
    return;
  }
  using t = tempDir();
  const big = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
  Deno.writeFileSync(`${t.path}/big`, big);
  Deno.writeFileSync(`${t.path}/empty`, new Uint8Array());
  Deno.writeTextFileSync(`${t.path}/small`, "hello");
  // opened (and prefetched) ahead, read later in order, as the workers do
  const fds = ["big", "empty", "small"].map((n) => r.prefetch(`${t.path}/${n}`));
  // a size hint smaller than the file: the buffer grows
  const b = r.read(fds[0] as number, "big", 10);
  assert(!(b instanceof Error));
  assertEquals(b.length, big.length);
  assertEquals(b, big);
  const e = r.read(fds[1] as number, "empty", 0);
  assert(!(e instanceof Error));
  assertEquals(e.length, 0);
  const s = r.read(fds[2] as number, "small", 5);
  assert(!(s instanceof Error));
  assertEquals(new TextDecoder().decode(s), "hello");
  const missing = r.prefetch(`${t.path}/nope`);
  assert(missing instanceof Error);
  assert(missing.message.startsWith(`Cannot read ${t.path}/nope: `), missing.message);
  // a directory opens but does not read: an error, and the fd is closed
  const d = r.prefetch(t.path);
  assert(typeof d === "number");
  const de = r.read(d, t.path, 0);
  assert(de instanceof Error && /errno 21/.test(de.message), String(de));
});

import { assert, assertEquals } from "../_assert.ts";
import { FileReader } from "../../src/scan/readfile.ts";
import { tempDir } from "../_helpers.ts";

Deno.test("FileReader: whole files through libc, larger than its buffer, empty, missing; only regular files, read to a bound", () => {
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
  // only a regular file opens (a directory, a symlink: an error; src/sys/nofollow.ts)
  const d = r.prefetch(t.path);
  assert(d instanceof Error && /no longer a regular file/.test(d.message), String(d));
  Deno.symlinkSync("small", `${t.path}/link`);
  const l = r.prefetch(`${t.path}/link`);
  assert(l instanceof Error && /symlink|errno 40/.test(l.message), String(l));
  // a file far larger than its lstat said (written to without end while read) is not read whole
  Deno.writeFileSync(`${t.path}/grown`, new Uint8Array((16 << 20) + 4096));
  const g = r.read(r.prefetch(`${t.path}/grown`) as number, "grown", 100);
  assert(g instanceof Error && /grew by more than 16 MiB/.test(g.message), String(g));
});

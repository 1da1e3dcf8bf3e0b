/**
 * lstatLight (libc fstatat into a reused buffer) against Deno.lstatSync on real files: every
 * field the scan uses agrees for files, directories, symlinks (dangling too), hardlinks, a fifo,
 * long and non-ASCII names, and a file with an old and a sub-millisecond mtime; errors are Deno's.
 */
import { assert, assertEquals } from "../_assert.ts";
import { fromFileInfo, lstatLight, statKey, statKeyCtimeMs } from "../../src/sys/lstat.ts";
import { tempDir } from "../_helpers.ts";

Deno.test("lstatLight agrees with Deno.lstatSync on every kind of entry", () => {
  using d = tempDir();
  const p = d.path;
  Deno.writeTextFileSync(`${p}/file.txt`, "hello\n");
  Deno.mkdirSync(`${p}/dir`);
  Deno.symlinkSync("file.txt", `${p}/link`);
  Deno.symlinkSync("nowhere", `${p}/dangling`);
  Deno.linkSync(`${p}/file.txt`, `${p}/hard`);
  Deno.writeTextFileSync(`${p}/ünïcødé ✓.js`, "x");
  const long = `${p}/${"d".repeat(200)}/${"e".repeat(200)}`;
  Deno.mkdirSync(long, { recursive: true });
  Deno.writeTextFileSync(`${long}/${"f".repeat(250)}`, "deep");
  Deno.writeTextFileSync(`${p}/old`, "old");
  Deno.utimeSync(`${p}/old`, new Date(86_400_123), new Date(86_400_123));
  Deno.writeTextFileSync(`${p}/frac`, "frac");
  Deno.utimeSync(`${p}/frac`, 1_700_000_000.0009, 1_700_000_000.9999);
  const fifo = new Deno.Command("mkfifo", { args: [`${p}/fifo`] }).outputSync().success;
  const paths = [
    "file.txt",
    "dir",
    "link",
    "dangling",
    "hard",
    "ünïcødé ✓.js",
    `${"d".repeat(200)}/${"e".repeat(200)}/${"f".repeat(250)}`,
    "old",
    "frac",
    ...(fifo ? ["fifo"] : []),
  ].map((r) => `${p}/${r}`);
  for (const path of [...paths, p]) {
    assertEquals(lstatLight(path), fromFileInfo(Deno.lstatSync(path)), path);
  }
  const l = lstatLight(`${p}/link`);
  assert(l.isSymlink && !l.isFile);
  assertEquals(lstatLight(`${p}/hard`).nlink, 2);
});

Deno.test("lstatLight fails as Deno.lstatSync does", () => {
  using d = tempDir();
  let err: unknown = null;
  try {
    lstatLight(`${d.path}/missing`);
  } catch (e) {
    err = e;
  }
  assert(err instanceof Deno.errors.NotFound, String(err));
  // a NUL in the path never reaches libc (it would name another file there)
  Deno.writeTextFileSync(`${d.path}/a`, "a");
  let nul: unknown = null;
  try {
    lstatLight(`${d.path}/a\0ignored`);
  } catch (e) {
    nul = e;
  }
  assert(nul !== null, "a path with a NUL is refused");
});

Deno.test("statKey: stable while nothing is written, moves on a same-size edit, null when absent", () => {
  using d = tempDir("hd-statkey-");
  const p = `${d.path}/f`;
  Deno.writeTextFileSync(p, "one\n");
  const k = statKey(p);
  assert(k !== null);
  assertEquals(statKey(p), k);
  const ctime = Deno.lstatSync(p).ctime!.getTime();
  assert(Math.abs(statKeyCtimeMs(k) - ctime) < 1000, "ctime agrees with Deno's to the second");
  Deno.writeTextFileSync(p, "two\n");
  assert(statKey(p) !== k, "an edit of the same size moves the key (ctime, mtime)");
  assertEquals(statKey(`${d.path}/absent`), null);
});

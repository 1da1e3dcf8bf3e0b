/**
 * lstatLight (libc fstatat into a reused buffer) against Deno.lstatSync on real files: every
 * field the scan uses agrees for files, directories, symlinks (dangling too), hardlinks, a fifo,
 * long and non-ASCII names, and a file with an old and a sub-millisecond mtime; errors are Deno's.
 */
import { assert, assertEquals } from "../_assert.ts";
import {
  closeDir,
  fromFileInfo,
  lstatLight,
  openDir,
  STAT_WORDS,
  statAllMatch,
  statWords,
  wordsCtimeMs,
} from "../../src/sys/lstat.ts";
import { tempDir } from "../_helpers.ts";

/** Whether `name` lstats now to the words saved at `saved[at ..]` (statWords again, compared). */
function statMatches(dir: number, name: Uint8Array, saved: Uint32Array, at: number): boolean {
  const now = new Uint32Array(STAT_WORDS);
  statWords(dir, name, now, 0);
  return now.every((x, k) => x === saved[at + k]);
}

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

Deno.test("statWords/statMatches: stable while nothing is written, a same-size edit breaks the match, absence is recorded", () => {
  using d = tempDir("hd-statwords-");
  const dir = openDir(d.path);
  if (dir === null) {
    console.log("skipped: the fast lstat needs x86_64 Linux and --allow-ffi");
    return;
  }
  try {
    const name = new TextEncoder().encode("f\0");
    Deno.writeTextFileSync(`${d.path}/f`, "one\n");
    const w = new Uint32Array(STAT_WORDS * 2);
    assert(statWords(dir, name, w, STAT_WORDS));
    assert(statMatches(dir, name, w, STAT_WORDS));
    const st = Deno.lstatSync(`${d.path}/f`);
    assertEquals(w[STAT_WORDS + 2], st.mode, "st_mode");
    assertEquals(w[STAT_WORDS + 3] + w[STAT_WORDS + 4] * 2 ** 32, 4, "size");
    const ctime = wordsCtimeMs(w, STAT_WORDS);
    assert(Math.abs(ctime - st.ctime!.getTime()) < 1000, "ctime agrees with Deno's to the second");
    Deno.writeTextFileSync(`${d.path}/f`, "two\n");
    assert(
      !statMatches(dir, name, w, STAT_WORDS),
      "an edit of the same size moves mtime and ctime",
    );
    const gone = new TextEncoder().encode("absent\0");
    assert(!statWords(dir, gone, w, 0), "an absent path");
    assert(statMatches(dir, gone, w, 0), "recorded absent, still absent");
    assert(!statMatches(dir, name, w, 0), "recorded absent, now present");
  } finally {
    closeDir(dir);
  }
});

Deno.test("statAllMatch: agrees with statMatches name by name, at any offset of the names' buffer, and refuses a wrong count", () => {
  using d = tempDir("hd-statall-");
  const dir = openDir(d.path);
  if (dir === null) {
    console.log("skipped: the fast lstat needs x86_64 Linux and --allow-ffi");
    return;
  }
  try {
    Deno.mkdirSync(`${d.path}/sub/deep`, { recursive: true });
    const rel = ["a", "sub", "sub/b.txt", "sub/deep", "sub/deep/ü ✓.js", "absent"];
    for (const r of ["a", "sub/b.txt", "sub/deep/ü ✓.js"]) {
      Deno.writeTextFileSync(`${d.path}/${r}`, r);
    }
    const te = new TextEncoder();
    const one = rel.map((r) => te.encode(`${r}\0`));
    const w = new Uint32Array(STAT_WORDS * rel.length);
    one.forEach((n, i) => statWords(dir, n, w, i * STAT_WORDS));
    // the names at an odd offset of a larger buffer, as a proof file's subarray is
    const joined = te.encode(`xyz${rel.map((r) => `${r}\0`).join("")}`).subarray(3);
    assert(statAllMatch(dir, joined, rel.length, w), "nothing changed");
    assert(!statAllMatch(dir, joined, rel.length - 1, w), "fewer names than the buffer holds");
    assert(!statAllMatch(dir, joined, rel.length + 1, w), "more names than the buffer holds");
    assert(
      !statAllMatch(dir, joined.subarray(0, joined.length - 1), rel.length, w),
      "no final NUL",
    );
    assert(statAllMatch(dir, new Uint8Array(0), 0, w), "no names");
    for (const [i, r] of rel.entries()) {
      const again = new Uint32Array(w);
      if (r === "absent") Deno.writeTextFileSync(`${d.path}/absent`, "now");
      else if (r.endsWith("deep") || r === "sub") Deno.writeTextFileSync(`${d.path}/${r}/new`, "");
      else Deno.writeTextFileSync(`${d.path}/${r}`, "edited");
      assert(!statMatches(dir, one[i], again, i * STAT_WORDS), `${r}: statMatches sees it`);
      assert(!statAllMatch(dir, joined, rel.length, again), `${r}: statAllMatch sees it`);
      one.forEach((n, k) => statWords(dir, n, w, k * STAT_WORDS));
      assert(statAllMatch(dir, joined, rel.length, w), `${r}: matches once recorded again`);
    }
    Deno.removeSync(`${d.path}/absent`);
    assert(!statAllMatch(dir, joined, rel.length, w), "a removed path");
  } finally {
    closeDir(dir);
  }
});

import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";

Deno.test("hd cas add then checkout of /usr/share/doc gives diff -r no differences", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  // a private copy: /usr/share/doc itself changes whenever a package is installed meanwhile
  const src = `${d.path}/doc`;
  const cp = await new Deno.Command("cp", { args: ["-a", "/usr/share/doc", src] }).output();
  assert(cp.success, "cp -a /usr/share/doc");
  const add = await hd(["cas", "add", src, "--json"], { store });
  assertEquals(add.code, 0, add.stderr);
  const { root, files } = JSON.parse(add.stdout);
  assert(files > 100, `only ${files} files`);
  const co = await hd(["cas", "checkout", root, `${d.path}/out`], { store });
  assertEquals(co.code, 0, co.stderr);
  const diff = await new Deno.Command("diff", {
    args: ["-r", "--no-dereference", src, `${d.path}/out`],
    stdout: "piped",
  }).output();
  assert(diff.success, new TextDecoder().decode(diff.stdout).slice(0, 2000));
  // Adding again prints the same root (and reads nothing thanks to the stat cache).
  const again = await hd(["cas", "add", src, "--json"], { store });
  assertEquals(JSON.parse(again.stdout).root, root);
});

Deno.test("hd cas verify and hd cas cat catch a corrupted object; exit 1", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/t`);
  Deno.writeTextFileSync(`${d.path}/t/a.txt`, "precious data\n".repeat(100));
  const add = await hd(["cas", "add", `${d.path}/t`, "--json"], { store });
  const root = JSON.parse(add.stdout).root;
  const cat = await hd(["cas", "cat", `${root}:a.txt`], { store });
  assertEquals(cat.stdout, "precious data\n".repeat(100));
  assertEquals((await hd(["cas", "verify"], { store })).code, 0);
  // Damage the pack that holds the chunk.
  const packs = [...Deno.readDirSync(`${store}/packs`)];
  for (const p of packs) {
    const path = `${store}/packs/${p.name}`;
    const b = Deno.readFileSync(path);
    for (let i = 8; i < 40; i++) b[i] ^= 0xa5;
    Deno.writeFileSync(path, b);
  }
  const v = await hd(["cas", "verify"], { store });
  assertEquals(v.code, 1);
  assertIncludes(v.stdout, "corrupt");
  assertIncludes(v.stdout, ".pack@");
  const bad = await hd(["cas", "cat", `${root}:a.txt`], { store });
  assertEquals(bad.code, 1);
  assertIncludes(bad.stderr, "Cannot read object");
  assertIncludes(bad.stderr, "corrupt");
});

Deno.test("hd cas gc --dry-run reports and keeps; gc removes unreferenced trees", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/t`);
  Deno.writeTextFileSync(`${d.path}/t/a.txt`, "version one\n".repeat(100));
  const r1 = JSON.parse((await hd(["cas", "add", `${d.path}/t`, "--json"], { store })).stdout).root;
  Deno.writeTextFileSync(`${d.path}/t/a.txt`, "version two\n".repeat(100));
  const r2 = JSON.parse((await hd(["cas", "add", `${d.path}/t`, "--json"], { store })).stdout).root;
  assert(r1 !== r2);
  const dry = JSON.parse((await hd(["cas", "gc", "--dry-run", "--json"], { store })).stdout);
  assertEquals(dry.dryRun, true);
  assertEquals(dry.removedObjects, 2, "the old root and its chunk");
  assertEquals((await hd(["cas", "cat", r1], { store })).code, 0, "dry run removed nothing");
  const gc = JSON.parse((await hd(["cas", "gc", "--json"], { store })).stdout);
  assertEquals(gc.removedObjects, 2);
  assertEquals((await hd(["cas", "cat", r1], { store })).code, 1);
  assertEquals(
    (await hd(["cas", "cat", `${r2}:a.txt`], { store })).stdout,
    "version two\n".repeat(100),
  );
  assertEquals((await hd(["cas", "verify"], { store })).code, 0);
});

Deno.test("bad input: unknown command, unknown option, missing path, existing checkout dir", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  const a = await hd(["cas", "ad", "x"], { store });
  assertEquals(a.code, 2);
  assertIncludes(a.stderr, "did you mean `hd cas add`");
  const b = await hd(["cas", "add", "--jsno", "x"], { store });
  assertEquals(b.code, 2);
  assertIncludes(b.stderr, "did you mean --json");
  const c = await hd(["cas", "add", `${d.path}/missing`], { store });
  assertEquals(c.code, 1);
  assertIncludes(c.stderr, "Cannot add");
  assert(!c.stderr.includes("    at "), "no stack trace without --debug");
  Deno.mkdirSync(`${d.path}/t`);
  Deno.writeTextFileSync(`${d.path}/t/f`, "x");
  const root =
    JSON.parse((await hd(["cas", "add", `${d.path}/t`, "--json"], { store })).stdout).root;
  Deno.mkdirSync(`${d.path}/busy`);
  Deno.writeTextFileSync(`${d.path}/busy/keep.txt`, "mine");
  const e = await hd(["cas", "checkout", root, `${d.path}/busy`], { store });
  assertEquals(e.code, 1);
  assertIncludes(e.stderr, "not an empty directory");
  assertEquals(Deno.readTextFileSync(`${d.path}/busy/keep.txt`), "mine", "nothing lost");
  const j = await hd(["cas", "cat", "nothex", "--json"], { store });
  assertEquals(j.code, 1);
  assert(JSON.parse(j.stdout).error.startsWith("Cannot"), j.stdout);
});

Deno.test("hd cas stats --json counts objects", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/t`);
  Deno.writeTextFileSync(`${d.path}/t/f`, "x");
  await hd(["cas", "add", `${d.path}/t`], { store });
  const s = JSON.parse((await hd(["cas", "stats", "--json"], { store })).stdout);
  assertEquals(s.objects, 2, "one chunk and one dir node");
  assertEquals(s.refs, 1);
});

testIf(
  skipUnless({ commands: ["script"] }),
  "a long add shows progress on a terminal and none under CI",
  async () => {
    using d = tempDir();
    const run = async (ci: boolean) => {
      const line = `${Deno.execPath()} run -A --quiet ${REPO}/cli.ts cas add --store ${d.path}/s${
        ci ? 1 : 2
      } /usr/share/doc`;
      const env: Record<string, string> = { ...Deno.env.toObject(), TERM: "xterm" };
      delete env.CI;
      if (ci) env.CI = "true";
      const out = await new Deno.Command("script", {
        args: ["-qec", line, "/dev/null"],
        env,
        clearEnv: true,
        stdout: "piped",
      })
        .output();
      return new TextDecoder().decode(out.stdout);
    };
    const tty = await run(false);
    assertIncludes(tty, "adding /usr/share/doc:");
    const ci = await run(true);
    assert(!ci.includes("adding /usr/share/doc:"), "no progress under CI");
    assert(/^[0-9a-f]{64}/m.test(ci), "the root is printed");
  },
);

/**
 * Broken input across commands and files: each fails with one clear `Cannot …` line and a hint,
 * a non-zero exit, and nothing half-written — or, for generated files, is repaired.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { StatCache } from "../../src/scan/statcache.ts";
import { fsErrorToHdError } from "../../src/cli/fs_error.ts";

const lockToml =
  '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n';

Deno.test("a damaged hd.lock: status says what and how; hd lock rewrites it; --check refuses", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.writeTextFileSync(`${d.path}/hd.toml`, lockToml);
  Deno.writeTextFileSync(`${d.path}/package-lock.json`, '{"lockfileVersion":3,"packages":{"":{}}}');
  Deno.writeTextFileSync(`${d.path}/hd.lock`, "{broken");
  const st = await hd(["status"], { store, cwd: d.path });
  assertEquals(st.code, 1);
  assertIncludes(st.stderr, "Cannot read");
  assertIncludes(st.stderr, "hd.lock: not valid JSON");
  assertIncludes(st.stderr, "run `hd lock`");
  const check = await hd(["lock", "--check"], { store, cwd: d.path });
  assertEquals(check.code, 1);
  assertEquals(Deno.readTextFileSync(`${d.path}/hd.lock`), "{broken", "--check writes nothing");
  const fix = await hd(["lock"], { store, cwd: d.path });
  assertEquals(fix.code, 0, fix.stderr);
  assertIncludes(fix.stderr, "writing a new one");
  assertEquals(JSON.parse(Deno.readTextFileSync(`${d.path}/hd.lock`)).environment, "p");
  assertEquals((await hd(["status"], { store, cwd: d.path })).code, 0);
});

Deno.test("a truncated stat cache is ignored: the scan reads everything and is right", () => {
  using d = tempDir();
  Deno.mkdirSync(`${d.path}/t`);
  for (let i = 0; i < 20; i++) Deno.writeTextFileSync(`${d.path}/t/f${i}`, `file ${i}\n`);
  const store = Store.open(`${d.path}/s`);
  const cachePath = `${d.path}/cache.json`;
  const c = StatCache.load(cachePath, store);
  const first = ingestTree(store, `${d.path}/t`, { cache: c });
  c.save(cachePath);
  const full = Deno.readTextFileSync(cachePath);
  Deno.writeTextFileSync(cachePath, full.slice(0, full.length >> 1));
  const again = ingestTree(store, `${d.path}/t`, {
    cache: StatCache.load(cachePath, store),
  });
  assertEquals(again.cacheHits, 0);
  assertEquals(again.root, first.root);
});

Deno.test("mount commands on the wrong target say so and change nothing", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.mkdirSync(`${d.path}/dir`);
  Deno.writeTextFileSync(`${d.path}/dir/a`, "a");
  Deno.writeTextFileSync(`${d.path}/file`, "not a directory");
  const root = JSON.parse((await hd(["cas", "add", `${d.path}/dir`, "--json"], { store })).stdout)
    .root;
  const un = await hd(["unmount", `${d.path}/dir`], { store });
  assertEquals(un.code, 1);
  assertIncludes(un.stderr, "Cannot unmount");
  assertIncludes(un.stderr, "nothing hd mounted is there");
  const snap = await hd(["snapshot", `${d.path}/dir`], { store });
  assertEquals(snap.code, 1);
  assertIncludes(snap.stderr, "not mounted");
  const onFile = await hd(["mount", root, `${d.path}/file`], { store });
  assertEquals(onFile.code, 1);
  assertIncludes(onFile.stderr, "Cannot mount on");
  assertIncludes(onFile.stderr, "not a directory");
  assertEquals(Deno.readTextFileSync(`${d.path}/file`), "not a directory");
  assertEquals(Deno.readTextFileSync(`${d.path}/dir/a`), "a");
  for (const r of [un, snap, onFile]) assert(!r.stderr.includes("    at "), "no stack trace");
});

/** A project whose `hd status` has recorded nothing yet, and a store with refs/envs/ ready. */
function refProject(d: string): { cwd: string; store: string } {
  Deno.mkdirSync(`${d}/p`);
  Deno.writeTextFileSync(`${d}/p/hd.toml`, '[environment]\nname = "t"\n');
  Deno.writeTextFileSync(`${d}/p/a.txt`, "a");
  Deno.mkdirSync(`${d}/store/refs/envs`, { recursive: true });
  return { cwd: `${d}/p`, store: `${d}/store` };
}

Deno.test("filesystem errors name the path and say what to do, not 'a bug in hd'", async () => {
  using d = tempDir();
  const opts = refProject(d.path);
  const ref = `${opts.store}/refs/envs/t`;
  const cases: [string, () => void, RegExp, RegExp][] = [
    [
      "a ref that is a directory",
      () => Deno.mkdirSync(ref),
      /^error: Cannot read \S+\/refs\/envs\/t: it is a directory where hd expects a file$/m,
      /^hint: move \S+\/refs\/envs\/t away/m,
    ],
    [
      "a ref under a file",
      () => {
        Deno.removeSync(`${opts.store}/refs/envs`);
        Deno.writeTextFileSync(`${opts.store}/refs/envs`, "x");
      },
      /^error: Cannot read \S+\/refs\/envs\/t: a part of the path is a file where hd expects a directory$/m,
      /^hint: check each parent of /m,
    ],
    [
      "a ref that is a symlink loop",
      () => Deno.symlinkSync(ref, ref),
      /^error: Cannot read \S+\/refs\/envs\/t: too many levels of symbolic links$/m,
      /^hint: fix or remove the symlink loop at /m,
    ],
  ];
  for (const [what, make, err, hint] of cases) {
    Deno.removeSync(`${opts.store}/refs/envs`, { recursive: true });
    Deno.mkdirSync(`${opts.store}/refs/envs`);
    make();
    const r = await hd(["status"], opts);
    assertEquals(r.code, 1, `${what}: ${r.stderr}`);
    assert(err.test(r.stderr), `${what}: ${r.stderr}`);
    assert(hint.test(r.stderr), `${what}: ${r.stderr}`);
    assert(!r.stderr.includes("bug"), `${what}: ${r.stderr}`);
    const j = await hd(["status", "--json"], opts);
    assertEquals(JSON.parse(j.stdout).error.startsWith("Cannot read "), true, what);
  }
});

Deno.test("fsErrorToHdError: real errors of Deno, and what it leaves alone", () => {
  using d = tempDir();
  const err = (f: () => void) => {
    try {
      f();
    } catch (e) {
      return fsErrorToHdError(e);
    }
    throw new Error("no error");
  };
  assertEquals(
    err(() => Deno.readTextFileSync(d.path))?.message,
    `Cannot read ${d.path}: it is a directory where hd expects a file`,
  );
  assertEquals(
    err(() => Deno.renameSync(`${d.path}/nope`, `${d.path}/x`))?.message,
    `Cannot rename ${d.path}/nope to ${d.path}/x: no such file or directory`,
  );
  Deno.writeTextFileSync(`${d.path}/f`, "");
  assertEquals(
    err(() => Deno.mkdirSync(`${d.path}/f/sub`))?.message,
    `Cannot create the directory ${d.path}/f/sub: a part of the path is a file where hd expects a directory`,
  );
  assertEquals(fsErrorToHdError(new TypeError("x is undefined")), null);
  assertEquals(fsErrorToHdError(new Error("No space left on device (os error 28)")), null); // no path
});

Deno.test("durations past their limit are refused with file:line and the key", async () => {
  using d = tempDir();
  const cases: [string, RegExp][] = [
    [
      'restart_grace = "99999999999h"',
      /hd\.toml:4:\d+: .*restart_grace must be at most 1h, not 99999999999h/,
    ],
    ['restart_grace = "61m"', /restart_grace must be at most 1h, not 1h1m/],
    ['debounce = "2m"', /debounce must be at most 1m, not 2m/],
  ];
  for (const [line, re] of cases) {
    Deno.writeTextFileSync(`${d.path}/hd.toml`, `[environment]\nname = "t"\n[options]\n${line}\n`);
    const r = await hd(["status"], { cwd: d.path, store: `${d.path}/store` });
    assertEquals(r.code, 1, r.stderr);
    assert(re.test(r.stderr), `${re}: ${r.stderr}`);
    assert(!r.stderr.includes("bug"), r.stderr);
  }
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    '[environment]\nname = "t"\n[options]\nrestart_grace = "1h"\ndebounce = "1m"\n',
  );
  const ok = await hd(["status"], { cwd: d.path, store: `${d.path}/store` });
  assertEquals(ok.code, 0, ok.stderr);
});

Deno.test("the new commands refuse bad arguments with one Cannot line, a hint, exit 1, no writes", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    '[environment]\nname = "p"\n[services.a]\ncommand = "sleep 1"\n',
  );
  const cases: [string[], string, string][] = [
    [["stop", "nope"], 'Cannot stop "nope": no such service', "services: a"],
    [["start", "nope"], 'Cannot start "nope": no such service', "services: a"],
    [["cache", "push"], "Cannot use the remote cache: none is configured", "[remote] cache"],
    [["cache", "ls"], "Cannot use the remote cache: none is configured", "HD_REMOTE_CACHE"],
    [["export", "--to", "oci:"], "Cannot export p", "hint:"],
    [["ingest", "missing.Dockerfile"], "Cannot ingest missing.Dockerfile: no such file", "hint:"],
    [["completions", "xyz"], 'Cannot write completions for "xyz"', "bash, zsh, fish"],
  ];
  for (const [args, what, hint] of cases) {
    const r = await hd(args, { store, cwd: d.path });
    assert(r.code !== 0, `hd ${args.join(" ")} exits non-zero`);
    assertIncludes(r.stderr, what);
    assertIncludes(r.stderr, hint);
    assertEquals(r.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).length, 1);
  }
  // nothing written beside hd.toml: no hd.toml rewrite, no export layout, no ingest output
  assertEquals(
    [...Deno.readDirSync(d.path)].map((e) => e.name).filter((n) => n !== "store" && n !== ".hd")
      .sort(),
    ["hd.toml"],
  );
});

Deno.test("hd exec --user: empty, or on the host, is a clear usage error (exit 2) and runs nothing", async () => {
  using d = tempDir();
  const store = `${d.path}/store`;
  Deno.writeTextFileSync(
    `${d.path}/hd.toml`,
    '[environment]\nname = "u"\n[services.web]\ncommand = "sleep 60"\n',
  );
  const empty = await hd(["exec", "--user", "", "web", "touch", "ran"], { store, cwd: d.path });
  assertEquals(empty.code, 2);
  assertIncludes(empty.stderr, "Cannot use --user: no user given");
  const host = await hd(["exec", "--user", "nobody", "touch", "ran"], { store, cwd: d.path });
  assertEquals(host.code, 2);
  assertIncludes(host.stderr, "Cannot exec as another user in u: it runs on the host (no base)");
  const svc = await hd(["exec", "--user", "nobody", "web", "touch", "ran"], {
    store,
    cwd: d.path,
  });
  assertEquals(svc.code, 2);
  assertIncludes(svc.stderr, "Cannot exec as another user in web");
  let ran = true;
  try {
    Deno.statSync(`${d.path}/ran`);
  } catch {
    ran = false;
  }
  assertEquals(ran, false, "no command ran");
});

/**
 * hd.lock and the providers: determinism (byte-identical, independent of key order), the npm
 * provider on a real npm v3 lockfile and on v2/v1 lockfiles, staleness, unavailable providers.
 */
import { assert, assertEquals } from "../_assert.ts";
import { blake3Hex } from "../../src/cas/hash.ts";
import { nodeId } from "../../src/dag/node.ts";
import {
  diffLocks,
  encodeLock,
  LOCK_FILE,
  lockPackageNode,
  lockState,
  readLock,
  resolveLock,
  stableJson,
  writeLock,
} from "../../src/config/lockfile.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { parseNpmLockfile } from "../../src/config/providers/npm.ts";
import { registerProvider } from "../../src/config/providers/registry.ts";
import { parsePackagePin } from "../../src/config/providers/provider.ts";
import { hd, REPO, tempDir } from "../_helpers.ts";
import { assertMatch, rejectsHd } from "./_util.ts";

const FIXTURE = `${REPO}/tests/config/fixtures/npm-v3`;

function project(dir: string, toml: string, lockfile?: string): string {
  Deno.writeTextFileSync(`${dir}/hd.toml`, toml);
  if (lockfile !== undefined) Deno.writeTextFileSync(`${dir}/package-lock.json`, lockfile);
  return `${dir}/hd.toml`;
}

Deno.test("npm provider reads a real v3 lockfile: every installed package, integrity, nesting", () => {
  const text = Deno.readTextFileSync(`${FIXTURE}/package-lock.json`);
  const raw = JSON.parse(text).packages as Record<string, Record<string, unknown>>;
  const pkgs = parseNpmLockfile(text, "package-lock.json");
  const installed = Object.keys(raw).filter((k) => k.startsWith("node_modules/"));
  assertEquals(pkgs.length, installed.length);
  assertEquals(pkgs.map((p) => p.path).sort(), installed.sort());
  for (const p of pkgs) {
    const e = raw[p.path!];
    assertEquals(p.node.version, e.version);
    assertEquals(p.node.provider, "npm");
    if (typeof e.integrity === "string") assertEquals(p.node.artifact, e.integrity);
    assertEquals(p.dev ?? false, e.dev === true);
    const tail = p.path!.slice(p.path!.lastIndexOf("node_modules/") + 13);
    assertEquals(p.node.name, tail);
  }
  // a nested copy keeps its own version and its name without the parent path
  const nested = pkgs.find((p) => p.path!.split("node_modules/").length > 2)!;
  assert(nested, "fixture has nested packages");
  assert(!nested.node.name.includes("node_modules"));
  // scoped names keep their scope
  assert(pkgs.some((p) => p.node.name.startsWith("@babel/")));
});

Deno.test("npm provider reads v2 (packages) and v1 (nested dependencies) lockfiles", () => {
  const v2 = JSON.stringify({
    name: "p",
    lockfileVersion: 2,
    packages: {
      "": { name: "p", dependencies: { a: "^1" } },
      "node_modules/a": {
        version: "1.2.3",
        resolved: "https://registry.npmjs.org/a/-/a-1.2.3.tgz",
        integrity: "sha512-AAAA",
      },
      "node_modules/a/node_modules/b": { version: "2.0.0", integrity: "sha512-BBBB", dev: true },
      "node_modules/loc": { resolved: "libs/loc", link: true },
      "libs/loc": { version: "0.1.0" },
    },
    dependencies: { a: { version: "1.2.3" } },
  });
  const p2 = parseNpmLockfile(v2, "package-lock.json");
  assertEquals(
    p2.map((p) => [p.path, p.node.name, p.node.version, p.node.artifact, p.node.resolved ?? null]),
    [
      [
        "node_modules/a",
        "a",
        "1.2.3",
        "sha512-AAAA",
        "https://registry.npmjs.org/a/-/a-1.2.3.tgz",
      ],
      ["node_modules/a/node_modules/b", "b", "2.0.0", "sha512-BBBB", null],
      ["node_modules/loc", "loc", "0.1.0", "link:libs/loc", null],
    ],
  );
  assertEquals(p2[1].dev, true);
  const v1 = JSON.stringify({
    name: "p",
    lockfileVersion: 1,
    dependencies: {
      a: {
        version: "1.2.3",
        resolved: "https://r/a.tgz",
        integrity: "sha1-xx",
        dependencies: { b: { version: "2.0.0", integrity: "sha1-yy", dev: true } },
      },
      c: { version: "file:vendor/c" },
    },
  });
  const p1 = parseNpmLockfile(v1, "package-lock.json");
  assertEquals(p1.map((p) => [p.path, p.node.name, p.node.version, p.node.artifact]), [
    ["node_modules/a", "a", "1.2.3", "sha1-xx"],
    ["node_modules/a/node_modules/b", "b", "2.0.0", "sha1-yy"],
    ["node_modules/c", "c", "0.0.0", "link:vendor/c"],
  ]);
});

Deno.test("hd.lock is byte-identical across runs and independent of key order", async () => {
  using a = tempDir("hd-lock-");
  using b = tempDir("hd-lock-");
  const lockText = Deno.readTextFileSync(`${FIXTURE}/package-lock.json`);
  // The same lockfile with every object's keys reversed: same packages, different byte order.
  const reversed = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(reversed)
      : v && typeof v === "object"
      ? Object.fromEntries(Object.keys(v).reverse().map((k) => [k, reversed((v as never)[k])]))
      : v;
  const fa = project(
    a.path,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n',
    lockText,
  );
  const fb = project(
    b.path,
    '[dependencies]\nnpm = { file = "package-lock.json" }\n\n[environment]\nname = "p"\n',
    JSON.stringify(reversed(JSON.parse(lockText)), null, 1),
  );
  const la = await resolveLock(loadSpec(fa));
  assert(writeLock(`${a.path}/${LOCK_FILE}`, la), "first write");
  const first = Deno.readFileSync(`${a.path}/${LOCK_FILE}`);
  const st1 = Deno.statSync(`${a.path}/${LOCK_FILE}`);
  assert(!writeLock(`${a.path}/${LOCK_FILE}`, await resolveLock(loadSpec(fa))), "unchanged");
  assertEquals(Deno.readFileSync(`${a.path}/${LOCK_FILE}`), first);
  assertEquals(Deno.statSync(`${a.path}/${LOCK_FILE}`).ino, st1.ino);

  const lb = await resolveLock(loadSpec(fb));
  writeLock(`${b.path}/${LOCK_FILE}`, lb);
  const second = Deno.readTextFileSync(`${b.path}/${LOCK_FILE}`);
  // Only the input hash differs (the lockfile bytes differ); everything else is identical.
  const strip = (s: string) => s.replace(/"package-lock\.json": "[0-9a-f]{64}"/, "");
  assertEquals(strip(second), strip(new TextDecoder().decode(first)));
  assertEquals(la.packages, lb.packages);
  assertEquals(la.dependencies, lb.dependencies);
  assert(second.endsWith("}\n"));
  // entries are sorted and keys sorted
  const parsed = readLock(`${b.path}/${LOCK_FILE}`)!;
  const paths = parsed.packages.map((p) => p.path!);
  assertEquals(paths, [...paths].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
  assertEquals(Object.keys(JSON.parse(second)), [
    "dependencies",
    "environment",
    "inputs",
    "packages",
    "version",
  ]);
  assertEquals(
    parsed.inputs["package-lock.json"],
    blake3Hex(Deno.readFileSync(`${b.path}/package-lock.json`)),
  );
  for (const p of parsed.packages) assertEquals(p.id, nodeId(lockPackageNode(p)));
  assertEquals(encodeLock(parsed), second);
  // no temp files left behind
  assertEquals([...Deno.readDirSync(b.path)].map((e) => e.name).sort(), [
    "hd.lock",
    "hd.toml",
    "package-lock.json",
  ]);
});

Deno.test("lock state follows the lockfile and [dependencies]; diffLocks names changes", async () => {
  using d = tempDir("hd-lock-");
  const lockv = (ver: string) =>
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        "": { name: "p" },
        "node_modules/a": { version: ver, integrity: `sha512-${ver}` },
        "node_modules/b": { version: "1.0.0", integrity: "sha512-b" },
      },
    });
  const file = project(
    d.path,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n',
    lockv("1.0.0"),
  );
  const spec = loadSpec(file);
  assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "missing");
  const l1 = await resolveLock(spec);
  writeLock(`${d.path}/hd.lock`, l1);
  assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "current");
  Deno.writeTextFileSync(`${d.path}/package-lock.json`, lockv("1.1.0"));
  assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "stale");
  const l2 = await resolveLock(spec);
  const changes = diffLocks(l1, l2);
  assertEquals(changes.map((c) => [c.kind, c.what, c.from, c.to]), [
    ["changed", "npm node_modules/a", "1.0.0", "1.1.0"],
    ["input", "package-lock.json", l1.inputs["package-lock.json"], l2.inputs["package-lock.json"]],
  ]);
  // editing [dependencies] (here: pointing at another file) makes the lock stale too
  writeLock(`${d.path}/hd.lock`, l2);
  Deno.copyFileSync(`${d.path}/package-lock.json`, `${d.path}/other-lock.json`);
  const file2 = project(
    d.path,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "other-lock.json" }\n',
  );
  assertEquals(lockState(loadSpec(file2), readLock(`${d.path}/hd.lock`)), "stale");
});

Deno.test("unavailable, unknown and misused providers fail clearly", async () => {
  using d = tempDir("hd-lock-");
  const pip = loadSpec(
    project(d.path, '[environment]\nname = "p"\n[dependencies]\npip = ["requests"]\n'),
  );
  const e1 = await rejectsHd(() => resolveLock(pip));
  assertMatch(
    e1.message,
    /^Cannot resolve dependency "pip" \(.*hd\.toml:4:1\): the pip provider is not available yet$/,
  );
  assert(e1.hint.length > 0);
  const typo = loadSpec(
    project(d.path, '[environment]\nname = "p"\n[dependencies]\nnpn = { file = "x" }\n'),
  );
  const e2 = await rejectsHd(() => resolveLock(typo));
  assertMatch(e2.message, /no provider is called "npn"/);
  assertMatch(e2.hint, /did you mean "npm"\?/);
  const form = loadSpec(project(d.path, '[environment]\nname = "p"\n[dependencies]\nnpm = "10"\n'));
  const e3 = await rejectsHd(() => resolveLock(form));
  assertMatch(e3.message, /the npm provider does not take the version form/);
  const missing = loadSpec(
    project(d.path, '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "nope.json" }\n'),
  );
  const e4 = await rejectsHd(() => resolveLock(missing));
  assertMatch(e4.message, /nope\.json does not exist/);
  Deno.writeTextFileSync(`${d.path}/nope.json`, "{ not json");
  const e5 = await rejectsHd(() => resolveLock(missing));
  assertMatch(e5.message, /nope\.json: not valid JSON/);
  // the project's lockfile is untrusted: not read through a symlink out of the project, not a
  // device or a FIFO (which would never end or never answer)
  using outside = tempDir("hd-outside-");
  Deno.writeTextFileSync(`${outside.path}/lock.json`, '{ "lockfileVersion": 3, "packages": {} }');
  const linked = (target: string) => {
    Deno.removeSync(`${d.path}/nope.json`);
    Deno.symlinkSync(target, `${d.path}/nope.json`);
  };
  linked(`${outside.path}/lock.json`);
  assertMatch((await rejectsHd(() => resolveLock(missing))).message, /leads outside/);
  linked("/dev/zero");
  assertMatch((await rejectsHd(() => resolveLock(missing))).message, /leads outside/);
  Deno.removeSync(`${d.path}/nope.json`);
  if (new Deno.Command("mkfifo", { args: [`${d.path}/nope.json`] }).outputSync().success) {
    assertMatch(
      (await rejectsHd(() => resolveLock(missing))).message,
      /nope\.json is not a regular file/,
    );
  }
});

Deno.test("an hd.lock input that is now a FIFO or a link out of the project makes the lock stale, without hanging", async () => {
  using d = tempDir("hd-lock-");
  const file = project(
    d.path,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n',
    JSON.stringify({ lockfileVersion: 3, packages: { "": { name: "p" } } }),
  );
  const spec = loadSpec(file);
  writeLock(`${d.path}/hd.lock`, await resolveLock(spec));
  assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "current");
  using outside = tempDir("hd-outside-");
  Deno.copyFileSync(`${d.path}/package-lock.json`, `${outside.path}/same.json`);
  Deno.removeSync(`${d.path}/package-lock.json`);
  // the same bytes, but outside the project: not read
  Deno.symlinkSync(`${outside.path}/same.json`, `${d.path}/package-lock.json`);
  assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "stale");
  Deno.removeSync(`${d.path}/package-lock.json`);
  if (new Deno.Command("mkfifo", { args: [`${d.path}/package-lock.json`] }).outputSync().success) {
    assertEquals(lockState(spec, readLock(`${d.path}/hd.lock`)), "stale");
  }
});

Deno.test("a registered provider is used for its entries", async () => {
  using d = tempDir("hd-lock-");
  registerProvider({
    name: "testpkg",
    summary: "test provider",
    forms: ["list"],
    resolve(dep) {
      if (dep.form !== "list") throw new Error("unreachable");
      return Promise.resolve({
        packages: dep.packages.map((p) => {
          const [name, version = "1"] = p.split("=");
          return {
            node: { type: "package", provider: "testpkg", name, version, artifact: `t:${name}` },
          };
        }),
        inputs: [],
      });
    },
  });
  const spec = loadSpec(
    project(d.path, '[environment]\nname = "p"\n[dependencies]\ntestpkg = ["zz=2", "aa"]\n'),
  );
  const lock = await resolveLock(spec);
  assertEquals(lock.packages.map((p) => `${p.name}@${p.version}`), ["aa@1", "zz@2"]);
});

Deno.test("list-form pins: name=version, name@version, scoped names", () => {
  assertEquals(parsePackagePin("curl"), { name: "curl", version: null });
  assertEquals(parsePackagePin("git=1:2.39.5-0+deb12u1"), {
    name: "git",
    version: "1:2.39.5-0+deb12u1",
  });
  assertEquals(parsePackagePin("left-pad@1.3.0"), { name: "left-pad", version: "1.3.0" });
  assertEquals(parsePackagePin("@scope/pkg@2.0.0"), { name: "@scope/pkg", version: "2.0.0" });
  assertEquals(parsePackagePin("@scope/pkg"), { name: "@scope/pkg", version: null });
});

/** A project with a real hd.lock of two npm packages; returns the dir's lock text. */
async function lockedProject(dir: string): Promise<string> {
  const file = project(
    dir,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n',
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        "": { name: "p" },
        "node_modules/a": { version: "1.0.0", integrity: "sha512-a" },
        "node_modules/b": { version: "2.0.0", integrity: "sha512-b" },
      },
    }),
  );
  writeLock(`${dir}/${LOCK_FILE}`, await resolveLock(loadSpec(file)));
  return Deno.readTextFileSync(`${dir}/${LOCK_FILE}`);
}

Deno.test("hd.lock entries of the wrong type: file:line and the key", async () => {
  using d = tempDir("hd-lock-");
  const good = await lockedProject(d.path);
  const path = `${d.path}/${LOCK_FILE}`;
  const lineOf = (text: string, needle: string) =>
    text.split("\n").findIndex((l) => l.includes(needle)) + 1;
  // deno-lint-ignore no-explicit-any
  const edit = (f: (j: Record<string, any>) => void): string => {
    const j = JSON.parse(good);
    f(j);
    return stableJson(j);
  };
  const cases: [string, string, RegExp][] = [
    [edit((j) => j.version = 3), '"version": 3', /version must be 1 \(found 3\)/],
    [edit((j) => j.version = "1"), '"version": "1"', /version must be 1 \(found "1"\)/],
    [
      edit((j) => j.packages[1].version = 3),
      '"version": 3',
      /packages\[1\]\.version must be a non-empty string \(found 3\)/,
    ],
    [
      edit((j) => j.packages[0].artifact = []),
      '"artifact": []',
      /packages\[0\]\.artifact must be a non-empty string \(found \[\]\)/,
    ],
    [
      edit((j) => j.inputs["package-lock.json"] = []),
      '"package-lock.json": []',
      /inputs\["package-lock\.json"\] must be a BLAKE3 hex string/,
    ],
    [
      edit((j) => j.packages[0].dev = "yes"),
      '"dev": "yes"',
      /packages\[0\]\.dev must be true or false/,
    ],
    [
      edit((j) => j.packages[0].path = "../../etc"),
      '"path": "../../etc"',
      /packages\[0\]\.path must be a path inside the project/,
    ],
    [
      edit((j) => j.inputs["/etc/passwd"] = "0".repeat(64)),
      '"/etc/passwd"',
      /inputs\["\/etc\/passwd"\] must be a path inside the project/,
    ],
    [
      edit((j) => delete j.packages[1].id),
      '"name": "b"',
      /packages\[1\]\.id must be a node id \(missing\)/,
    ],
    [edit((j) => j.packages = {}), '"packages"', /packages must be an array/],
  ];
  for (const [text, needle, re] of cases) {
    Deno.writeTextFileSync(path, text);
    let msg = "";
    try {
      readLock(path);
    } catch (e) {
      msg = (e as Error).message;
    }
    const line = needle === '"name": "b"' ? lineOf(text, needle) - 3 : lineOf(text, needle);
    assert(msg.startsWith(`Cannot read ${path}:`), msg);
    assert(re.test(msg), `${re}: ${msg}`);
    if (needle !== '"name": "b"') assert(msg.includes(`${path}:${line}: `), `line ${line}: ${msg}`);
    else assert(/:\d+: /.test(msg), msg);
  }
});

Deno.test("a hand-edited hd.lock entry: `hd status` and `hd lock --check` agree it is stale", async () => {
  using d = tempDir("hd-lock-");
  using store = tempDir();
  const good = await lockedProject(d.path);
  const st0 = await hd(["status", "--json"], { cwd: d.path, store: store.path });
  assertEquals(JSON.parse(st0.stdout).lock, "current", st0.stderr);
  assertEquals((await hd(["lock", "--check"], { cwd: d.path, store: store.path })).code, 0);
  // the version of b, edited by hand (the id still names 2.0.0)
  Deno.writeTextFileSync(
    `${d.path}/${LOCK_FILE}`,
    good.replace('"version": "2.0.0"', '"version": "9.9.9"'),
  );
  const st = await hd(["status"], { cwd: d.path, store: store.path });
  assertEquals(st.code, 0, st.stderr);
  assert(st.stdout.includes("hd.lock stale"), st.stdout);
  const check = await hd(["lock", "--check"], { cwd: d.path, store: store.path });
  assertEquals(check.code, 1);
  assert(
    check.stderr.includes("out of date (the entry of npm node_modules/b was edited"),
    check.stderr,
  );
  // and `hd lock` puts it right
  assertEquals((await hd(["lock"], { cwd: d.path, store: store.path })).code, 0);
  assertEquals(Deno.readTextFileSync(`${d.path}/${LOCK_FILE}`), good);
});

Deno.test("hd.lock itself is read only as a regular file of the project: a link out of it, a device or a FIFO is a one-line error", () => {
  using d = tempDir("hd-lock-");
  using outside = tempDir("hd-outside-");
  Deno.writeTextFileSync(`${outside.path}/lock.json`, "{}");
  const lock = `${d.path}/hd.lock`;
  const cases: [string, () => void, RegExp][] = [
    [
      "a link out of the project",
      () => Deno.symlinkSync(`${outside.path}/lock.json`, lock),
      /leads outside/,
    ],
    ["a link to a device", () => Deno.symlinkSync("/dev/zero", lock), /leads outside/],
  ];
  if (new Deno.Command("mkfifo", { args: [`${d.path}/probe`] }).outputSync().success) {
    Deno.removeSync(`${d.path}/probe`);
    cases.push([
      "a FIFO",
      () => void new Deno.Command("mkfifo", { args: [lock] }).outputSync(),
      /not a regular file/,
    ]);
  }
  for (const [what, make, says] of cases) {
    try {
      Deno.removeSync(lock);
    } catch { /* none */ }
    make();
    let msg = "";
    try {
      readLock(lock);
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.startsWith(`Cannot read ${lock}: `), `${what}: ${msg}`);
    assertMatch(msg, says);
  }
  Deno.removeSync(lock);
  assertEquals(readLock(lock), null, "absent");
});

Deno.test("writeLock over an hd.lock linked to /dev/zero or out of the project: replaced, the target untouched", async () => {
  using a = tempDir();
  using outside = tempDir();
  const fa = project(
    a.path,
    '[environment]\nname = "p"\n[dependencies]\nnpm = { file = "package-lock.json" }\n',
    Deno.readTextFileSync(`${FIXTURE}/package-lock.json`),
  );
  const lock = await resolveLock(loadSpec(fa));
  const target = `${outside.path}/precious.txt`;
  Deno.writeTextFileSync(target, "keep me\n");
  for (const link of ["/dev/zero", target]) {
    const path = `${a.path}/${LOCK_FILE}`;
    try {
      Deno.removeSync(path);
    } catch { /* none */ }
    Deno.symlinkSync(link, path);
    assert(writeLock(path, lock), `${link}: written (before: /dev/zero read without end)`);
    assert(!Deno.lstatSync(path).isSymlink, `${link}: the link replaced`);
    assertEquals(readLock(path)?.packages.length, lock.packages.length, link);
  }
  assertEquals(Deno.readTextFileSync(target), "keep me\n");
});

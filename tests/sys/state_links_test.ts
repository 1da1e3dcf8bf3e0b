/**
 * A cloned project may ship a `.hd/` whose links lead out of it: hd refuses to make, write, append
 * to or truncate anything through such a link (src/sys/fs.ts `symlinkInState`), and the places
 * it would have written stay as they were.
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import {
  openPrivateAppend,
  privateDir,
  readStateFile,
  symlinkInState,
  writePrivateAtomic,
} from "../../src/sys/fs.ts";
import { acquireUpLock } from "../../src/services/control.ts";

/** A victim directory (0755, one file) outside the project, and the project. */
function setup(root: string): { proj: string; victim: string; file: string } {
  const proj = `${root}/proj`;
  const victim = `${root}/victim`;
  Deno.mkdirSync(proj);
  Deno.mkdirSync(victim, { mode: 0o755 });
  Deno.chmodSync(victim, 0o755);
  const file = `${victim}/passwd`;
  Deno.writeTextFileSync(file, "root:x:0:0\n");
  return { proj, victim, file };
}

function unchanged(victim: string, file: string): void {
  assertEquals(Deno.statSync(victim).mode! & 0o777, 0o755, "the victim directory's mode");
  assertEquals([...Deno.readDirSync(victim)].map((e) => e.name), ["passwd"], "nothing added");
  assertEquals(Deno.readTextFileSync(file), "root:x:0:0\n", "the victim file");
}

Deno.test("symlinkInState: .hd itself, a directory below it, or the file itself", () => {
  using t = tempDir();
  const { proj, victim, file } = setup(t.path);
  assertEquals(symlinkInState(`${proj}/.hd`), null, "not there yet");
  Deno.symlinkSync(victim, `${proj}/.hd`);
  assertEquals(symlinkInState(`${proj}/.hd`), `${proj}/.hd`);
  assertEquals(symlinkInState(`${proj}/.hd/logs/web.log`), `${proj}/.hd`);
  Deno.removeSync(`${proj}/.hd`);
  Deno.mkdirSync(`${proj}/.hd/logs`, { recursive: true });
  Deno.symlinkSync(file, `${proj}/.hd/logs/web.log`);
  assertEquals(symlinkInState(`${proj}/.hd/logs/web.log`), `${proj}/.hd/logs/web.log`);
  assertEquals(symlinkInState(`${t.path}/elsewhere/file`), null, "not below a .hd");
});

Deno.test("hd's state writers refuse a .hd that links out; the victim is untouched", () => {
  using t = tempDir();
  const { proj, victim, file } = setup(t.path);
  Deno.symlinkSync(victim, `${proj}/.hd`);
  const why = /Cannot write .*\.hd.*: .*\.hd is a symlink/;
  assertThrows(() => privateDir(`${proj}/.hd`), why);
  assertThrows(() => writePrivateAtomic(`${proj}/.hd/up.json`, "{}"), why);
  assertThrows(() => openPrivateAppend(`${proj}/.hd/logs/hd.log`), why);
  assertThrows(() => acquireUpLock(proj), why);
  unchanged(victim, file);
});

Deno.test("a shipped .hd/up.lock or log file linking to a host file is neither truncated nor appended to", () => {
  using t = tempDir();
  const { proj, victim, file } = setup(t.path);
  Deno.mkdirSync(`${proj}/.hd/logs`, { recursive: true });
  Deno.symlinkSync(file, `${proj}/.hd/up.lock`);
  Deno.symlinkSync(file, `${proj}/.hd/logs/web.log`);
  assertThrows(() => acquireUpLock(proj), /up\.lock is a symlink/);
  assertThrows(() => openPrivateAppend(`${proj}/.hd/logs/web.log`), /web\.log is a symlink/);
  unchanged(victim, file);
});

Deno.test("CLI: hd up -d refuses a project whose .hd links out, naming it; hd status writes nothing there", async () => {
  using t = tempDir();
  const { proj, victim, file } = setup(t.path);
  Deno.writeTextFileSync(
    `${proj}/hd.toml`,
    '[environment]\nname = "links"\n[services.web]\ncommand = "sleep 60"\n',
  );
  Deno.symlinkSync(victim, `${proj}/.hd`);
  const store = `${t.path}/store`;
  const up = await hd(["up", "-d"], { store, cwd: proj });
  assert(up.code !== 0, "hd up -d fails");
  assert(/\.hd is a symlink/.test(up.stderr), up.stderr);
  assert(/remove it/.test(up.stderr), up.stderr);
  const st = await hd(["status"], { store, cwd: proj });
  assert(!/up\.json|status\.bin/.test([...Deno.readDirSync(victim)].map((e) => e.name).join()));
  unchanged(victim, file);
  assert(st.code === 0 || /symlink/.test(st.stderr), `status: ${st.code} ${st.stderr}`);
});

Deno.test("readStateFile: a regular file is read; a link, a FIFO, a device or an oversized file is refused", async () => {
  using d = tempDir("hd-readstate-");
  const { proj, file } = setup(d.path);
  Deno.mkdirSync(`${proj}/.hd`);
  const at = (n: string) => `${proj}/.hd/${n}`;
  assertEquals(readStateFile(at("missing"), 100), null);
  Deno.writeTextFileSync(at("ok"), "state");
  assertEquals(new TextDecoder().decode(readStateFile(at("ok"), 100)!), "state");
  assertThrows(() => readStateFile(at("ok"), 3), /more than the 3/);
  Deno.symlinkSync("/dev/zero", at("zero"));
  assertThrows(() => readStateFile(at("zero"), 100), /is a symlink/);
  Deno.symlinkSync(file, at("passwd"));
  assertThrows(() => readStateFile(at("passwd"), 100), /is a symlink/);
  const mk = await new Deno.Command("mkfifo", { args: [at("fifo")] }).output();
  assert(mk.success, "mkfifo");
  assertThrows(() => readStateFile(at("fifo"), 100), /not a regular file/); // and does not block
  // .hd itself a link to a directory elsewhere
  const other = `${d.path}/other`;
  Deno.mkdirSync(`${other}/.hd`, { recursive: true });
  Deno.writeTextFileSync(`${other}/.hd/up.json`, "{}");
  Deno.mkdirSync(`${d.path}/p2`);
  Deno.symlinkSync(`${other}/.hd`, `${d.path}/p2/.hd`);
  assertThrows(() => readStateFile(`${d.path}/p2/.hd/up.json`, 100), /is a symlink/);
});

Deno.test("CLI: a project shipping .hd/status.bin and .hd/up.json as links to /dev/zero: hd status answers, hd down removes the link only", async () => {
  using d = tempDir("hd-readstate-");
  const proj = `${d.path}/proj`;
  Deno.mkdirSync(`${proj}/.hd`, { recursive: true });
  Deno.writeTextFileSync(`${proj}/hd.toml`, '[environment]\nname = "x"\n');
  Deno.symlinkSync("/dev/zero", `${proj}/.hd/status.bin`);
  Deno.symlinkSync("/dev/zero", `${proj}/.hd/up.json`);
  const store = `${d.path}/store`;
  const st = await hd(["status", "--json"], { store, cwd: proj });
  assertEquals(st.code, 0, st.stderr);
  assertEquals(JSON.parse(st.stdout).name, "x");
  let proofLink = false;
  try {
    proofLink = Deno.lstatSync(`${proj}/.hd/status.bin`).isSymlink;
  } catch { /* dropped: this scan was too recent to prove */ }
  assert(!proofLink, "the shipped link is replaced or dropped, never followed");
  const down = await hd(["down"], { store, cwd: proj });
  assertEquals(down.code, 0, down.stderr);
  assert(down.stdout.includes("is a symlink") || down.stderr.includes("is a symlink"), down.stdout);
  let gone = false;
  try {
    Deno.lstatSync(`${proj}/.hd/up.json`);
  } catch {
    gone = true;
  }
  assert(gone, "the shipped link is removed");
  assert(Deno.statSync("/dev/zero").isCharDevice !== false, "/dev/zero is still there");
});

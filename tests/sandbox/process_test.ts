/**
 * spawnGroup's start line: the group's command starts once hd registered it, and its stdin then
 * holds nothing (the `go` line is read by the shell, written once, at once: writeStdinNow).
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { waitFor } from "../services/_util.ts";
import { spawnGroup, writeStdinNow } from "../../src/sandbox/process.ts";

const ENV = { PATH: "/usr/bin:/bin" };

Deno.test("spawnGroup: the command starts and finds its stdin empty (go is not left for it)", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    // a simple command (exec'd by the shell) and a compound one (run by it)
    for (const cmd of ["exec wc -c", "echo start; wc -c"]) {
      const p = spawnGroup(cmd, { cwd: tmp, env: ENV });
      const [out, st] = await Promise.all([new Response(p.stdout).text(), p.status]);
      await p.stderr.cancel();
      assert(st.success, cmd);
      assertEquals(out.trim().split("\n").pop()?.trim(), "0", `${cmd}: stdin held ${out}`);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("writeStdinNow: writes on a child's stdin pipe at once; not on anything else", async () => {
  const piped = new Deno.Command("sh", {
    args: ["-c", 'read -r x; echo "got $x"'],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  assert(writeStdinNow(piped.pid, new TextEncoder().encode("go\n")));
  await piped.stdin.close();
  assertEquals(new TextDecoder().decode((await piped.output()).stdout), "got go\n");
  // stdin /dev/null is no pipe: nothing written, the caller uses the stream
  const none = new Deno.Command("sleep", { args: ["5"], stdin: "null" }).spawn();
  try {
    assertEquals(writeStdinNow(none.pid, new TextEncoder().encode("go\n")), false);
  } finally {
    none.kill("SIGKILL");
    await none.status;
  }
  // a pid that is no child of this process (gone): false
  assertEquals(writeStdinNow(piped.pid, new TextEncoder().encode("go\n")), false);
});

Deno.test("guardian: on its way out it removes this user's empty hd-guard-* directories older than a minute, nothing else", async () => {
  // a private TMPDIR: the guardian looks beside its own directory, so /tmp is left alone
  using tmp = tempDir();
  const old = new Date(Date.now() - 5 * 60_000);
  const mk = (name: string, opts: { old?: boolean; file?: boolean } = {}) => {
    Deno.mkdirSync(`${tmp.path}/${name}`);
    if (opts.file) Deno.writeTextFileSync(`${tmp.path}/${name}/groups`, "");
    if (opts.old) Deno.utimeSync(`${tmp.path}/${name}`, old, old);
  };
  mk("hd-guard-killed", { old: true }); // an hd process killed before its guardian started
  mk("hd-guard-starting"); // another hd process that just made its own
  mk("hd-guard-inuse", { old: true, file: true }); // one in use
  mk("other-empty", { old: true }); // not hd's
  // hostile or foreign: a link named like a guard directory to an empty directory elsewhere, and
  // another user's empty one (only where this process may give a directory away: root)
  mk("target-of-link", { old: true });
  Deno.symlinkSync(`${tmp.path}/target-of-link`, `${tmp.path}/hd-guard-link`);
  mk("hd-guard-foreign", { old: true });
  let foreign = true;
  try {
    Deno.chownSync(`${tmp.path}/hd-guard-foreign`, 65534, 65534);
  } catch {
    foreign = false;
    Deno.removeSync(`${tmp.path}/hd-guard-foreign`);
    console.log("  (another user's directory not tried: this process cannot chown)");
  }
  // a process that starts its guardian and exits: the pipe closes, the guardian cleans up
  const code = `import { startGuardian } from ${
    JSON.stringify(new URL("../../src/sandbox/process.ts", import.meta.url).href)
  }; startGuardian();`;
  const st = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { TMPDIR: tmp.path },
    stdout: "null",
    stderr: "inherit",
  }).output();
  assert(st.success);
  const left = () => [...Deno.readDirSync(tmp.path)].map((e) => e.name).sort();
  const want = [
    ...(foreign ? ["hd-guard-foreign"] : []),
    "hd-guard-inuse",
    "hd-guard-link",
    "hd-guard-starting",
    "other-empty",
    "target-of-link",
  ];
  await waitFor(() => left().join() === want.join(), "the guardian's clean-up", 5000)
    .catch(() => {}); // the assertion below says what is left
  // its own directory is gone too
  assertEquals(left(), want);
});

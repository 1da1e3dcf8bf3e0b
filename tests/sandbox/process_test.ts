/**
 * spawnGroup's start line: the group's command starts once hd registered it, and its stdin then
 * holds nothing (the `go` line is read by the shell, written once, at once: writeStdinNow).
 */
import { assert, assertEquals } from "../_assert.ts";
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

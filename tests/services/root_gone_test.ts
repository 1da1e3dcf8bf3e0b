/**
 * A supervisor whose project directory is deleted stops its services and exits, saying why
 * (src/services/root_gone.ts decides; the session looks every second): a table of the decision,
 * and end to end a detached `hd up -d` whose project is removed with `rm -rf`.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { dirIdentity, rootGoneReason } from "../../src/services/root_gone.ts";
import { isAlive } from "../../src/sys/proc.ts";
import { waitFor } from "./_util.ts";

Deno.test("rootGoneReason: gone or replaced stops; unknown never does", () => {
  const a = { dev: 1, ino: 10 };
  const table: [
    Parameters<typeof rootGoneReason>[1],
    Parameters<typeof rootGoneReason>[2],
    RegExp | null,
  ][] = [
    [a, { dev: 1, ino: 10 }, null], // still there
    [a, null, /was deleted/], // deleted, or moved away
    [a, { dev: 1, ino: 11 }, /replaced/], // rm -rf and mkdir again (a fresh clone)
    [a, { dev: 2, ino: 10 }, /replaced/], // another filesystem mounted there
    [a, "unknown", null], // cannot tell (EACCES): not on a guess
    [null, null, null], // no identity at the start: nothing to compare
    ["unknown", null, null],
  ];
  for (const [start, now, want] of table) {
    const got = rootGoneReason("/p", start, now);
    if (want === null) assertEquals(got, null, JSON.stringify([start, now]));
    else assert(got !== null && want.test(got), `${JSON.stringify([start, now])}: ${got}`);
  }
  using tmp = tempDir();
  const id = dirIdentity(tmp.path);
  assert(id !== null && id !== "unknown");
  assertEquals(rootGoneReason(tmp.path, id, dirIdentity(tmp.path)), null);
  assertEquals(dirIdentity(`${tmp.path}/missing`), null);
  Deno.writeTextFileSync(`${tmp.path}/f`, "");
  assertEquals(dirIdentity(`${tmp.path}/f`), null); // a file is no project directory
});

const NEEDS = skipUnless({ commands: ["setsid", "sh", "sleep"] });

testIf(
  NEEDS,
  "hd up -d: project directory deleted → services stopped, supervisor exits, says why",
  async () => {
    using parent = tempDir();
    using store = tempDir();
    const dir = `${parent.path}/proj`;
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]\nname = "gone"\n\n[services.idle]\ncommand = "exec sleep 600"\n\n[options]\nrestart_grace = "1s"\n`,
    );
    const opts = { cwd: dir, store: store.path };
    const up = await hd(["up", "-d"], opts);
    assertEquals(up.code, 0, up.stderr);
    const state = JSON.parse(Deno.readTextFileSync(`${dir}/.hd/up.json`));
    const sup = { pid: state.pid as number, startTime: state.startTime as number };
    await waitFor(
      () => JSON.parse(Deno.readTextFileSync(`${dir}/.hd/up.json`)).groups.length === 1,
      "the service's group in up.json",
    );
    const group = JSON.parse(Deno.readTextFileSync(`${dir}/.hd/up.json`)).groups[0];
    // the supervisor's log goes with the directory: keep it open to read what it says
    using log = Deno.openSync(`${dir}/.hd/logs/hd.log`);
    try {
      Deno.removeSync(dir, { recursive: true });
      await waitFor(
        () => !isAlive(sup.pid, { zombies: "dead", startTime: sup.startTime }),
        "the supervisor to exit",
        20_000,
      );
      assert(
        !isAlive(group.pgid, { zombies: "dead", startTime: group.startTime }),
        "its service must be stopped",
      );
      const text = new TextDecoder().decode(readAll(log));
      assertIncludes(text, `the project directory ${dir} was deleted`);
      assertIncludes(text, "stopped");
      let recreated = true;
      try {
        Deno.lstatSync(dir);
      } catch {
        recreated = false;
      }
      assert(!recreated, "nothing may create the project directory again");
    } finally {
      // whatever happened, stop what this test started (by its recorded identity only)
      for (const r of [sup, { pid: group.pgid, startTime: group.startTime }]) {
        if (r.pid > 1 && isAlive(r.pid, { zombies: "dead", startTime: r.startTime })) {
          try {
            Deno.kill(r === sup ? r.pid : -r.pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    }
  },
);

function readAll(f: Deno.FsFile): Uint8Array {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = f.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), o += c.length);
  return out;
}

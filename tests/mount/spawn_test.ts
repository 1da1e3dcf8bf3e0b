/**
 * The background mount server: its V8 flags (a small young generation unless the caller set one)
 * and the ready handshake of `hd mount` (the command returns once the mount serves, on a pipe).
 */
import { assert, assertEquals } from "../_assert.ts";
import { tempDir, testIf } from "../_helpers.ts";
import { eventLoopYield } from "../../src/mount/fuse.ts";
import { parseReady, READY_LINE, readyLine } from "../../src/mount/spawn.ts";
import { mountServerV8Flags } from "../../src/mount/manager.ts";
import { fuseSkip, hdOk } from "./_util.ts";

Deno.test("mount server V8 flags: a 1 MiB semi-space is added unless the caller chose one", () => {
  const table: [string | undefined, string][] = [
    [undefined, "--max-semi-space-size=1"],
    ["", "--max-semi-space-size=1"],
    ["--stack-size=2000", "--stack-size=2000,--max-semi-space-size=1"],
    ["--max-semi-space-size=16", "--max-semi-space-size=16"],
    [" --foo, --max-semi-space-size=4 ", "--foo,--max-semi-space-size=4"],
    ["--prof,", "--prof,--max-semi-space-size=1"],
  ];
  for (const [inherited, want] of table) assertEquals(mountServerV8Flags(inherited), want);
});

testIf(
  fuseSkip(),
  "hd mount returns once the mount serves; the server runs with the flags",
  async () => {
    using d = tempDir();
    const store = `${d.path}/store`;
    Deno.mkdirSync(`${d.path}/src/sub`, { recursive: true });
    Deno.writeTextFileSync(`${d.path}/src/sub/a.txt`, "hello\n");
    const root = JSON.parse(await hdOk(["cas", "add", `${d.path}/src`, "--json"], store)).root;
    const mnt = `${d.path}/mnt`;
    Deno.mkdirSync(mnt);
    const r = JSON.parse(await hdOk(["mount", root, mnt, "--json"], store));
    try {
      // no waiting here: the command returned, so the mount answers now
      assertEquals(Deno.readTextFileSync(`${mnt}/sub/a.txt`), "hello\n");
      const env = Deno.readTextFileSync(`/proc/${r.pid}/environ`).split("\0");
      assert(env.some((e) => e.startsWith("DENO_V8_FLAGS=") && e.includes("--max-semi-space")), "");
    } finally {
      await hdOk(["unmount", mnt], store);
    }
  },
);

Deno.test("eventLoopYield: each yield lets timers run, and close() ends it without leaking", async () => {
  const y = eventLoopYield();
  let fired = 0;
  const t = setTimeout(() => fired++, 0);
  // a yield is a macrotask: after enough of them a due timer has run
  for (let i = 0; i < 2000 && fired === 0; i++) await y.next();
  clearTimeout(t);
  assertEquals(fired, 1);
  const pending = y.next();
  y.close(); // resolves what still waits, and closes the channel (the test sanitizer checks)
  await pending;
});

Deno.test("parseReady: the server's ready line, with what it mounts, once complete", () => {
  const info = { root: "ab".repeat(32), dir: "/m", log: "/s/mounts/k.log" };
  const table: [string, ReturnType<typeof parseReady>][] = [
    ["", undefined],
    [readyLine(info).slice(0, -1), undefined], // no newline yet: incomplete
    [readyLine(info), { info }],
    [readyLine({ ...info, log: null }), { info: { ...info, log: null } }],
    ["noise\n" + readyLine(info), { info }],
    [`${READY_LINE}\n`, { info: null }], // a server without the JSON
    [`${READY_LINE} {bad\n`, { info: null }],
    [`${READY_LINE} {"root":1}\n`, { info: null }],
    ["other line\n", undefined],
  ];
  for (const [text, want] of table) assertEquals(parseReady(text), want, JSON.stringify(text));
});

import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import {
  callControl,
  cleanupStale,
  readUpState,
  selfState,
  serveControl,
  writeUpState,
} from "../../src/services/control.ts";
import { spawnGroup, stopGroup } from "../../src/sandbox/process.ts";
import { isAlive, procStartTime } from "../../src/sys/proc.ts";
import { parseUpState } from "../../src/services/control.ts";

Deno.test("control: a live pid with another start time is a reused pid, i.e. stale", () => {
  using tmp = tempDir();
  const me = selfState(tmp.path, "x", true);
  writeUpState(tmp.path, me);
  assertEquals(readUpState(tmp.path)!.alive, true);
  // same pid, different start time: the supervisor died and its pid went to someone else
  writeUpState(tmp.path, { ...me, startTime: (procStartTime(Deno.pid) ?? 0) - 1 });
  assertEquals(readUpState(tmp.path)!.alive, false);
  assertEquals(isAlive(Deno.pid, { zombies: "dead", startTime: procStartTime(Deno.pid) }), true);
  assertEquals(isAlive(2 ** 22 + 17, { zombies: "dead" }), false);
  // cleanup leaves the reused pid (this very process) alone and removes the files
  cleanupStale(tmp.path, readUpState(tmp.path)!.state!);
  assertEquals(readUpState(tmp.path), null);
});

Deno.test("control: JSON lines over the unix socket", async () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.path}/.hd`);
  const sock = `${tmp.path}/.hd/control.sock`;
  const srv = serveControl(sock, (req) => {
    if (req.op === "restart") return Promise.resolve({ restarted: req.services });
    if (req.op === "down") return Promise.reject(new Error("nope"));
    return Promise.resolve({ ok: true });
  });
  try {
    assertEquals(await callControl(sock, { op: "ping" }), { ok: true });
    assertEquals(await callControl(sock, { op: "restart", services: ["a"] }), {
      restarted: ["a"],
    });
    assertEquals(await callControl(sock, { op: "down" }), { error: "nope" });
    const many = await Promise.all(
      Array.from({ length: 20 }, () => callControl(sock, { op: "ping" })),
    );
    assert(many.every((r) => r.ok === true));
  } finally {
    srv.close();
  }
});

Deno.test("control: a supervisor that accepts but never answers is given up on in time", async () => {
  using tmp = tempDir();
  const sock = `${tmp.path}/control.sock`;
  const l = Deno.listen({ transport: "unix", path: sock });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) held.push(c); // read nothing, answer nothing
  })().catch(() => {});
  try {
    const t0 = performance.now();
    let err: Error | null = null;
    try {
      await callControl(sock, { op: "status" }, 300);
    } catch (e) {
      err = e as Error;
    }
    assert(
      err !== null &&
        /Cannot get a reply from .*control\.sock: no reply within 300 ms/.test(err.message),
      String(err),
    );
    assert(performance.now() - t0 < 3000);
  } finally {
    l.close();
    for (const c of held) c.close();
    await accepting;
  }
});

Deno.test("parseUpState: a clear error naming the file and the key", () => {
  using tmp = tempDir();
  const good = JSON.stringify(selfState(tmp.path, "x", true));
  assertEquals(parseUpState(good, ".hd/up.json").pid, Deno.pid);
  const cases: [unknown, RegExp][] = [
    ["{", /not valid JSON/],
    [[], /the file must be an object/],
    [{ ...JSON.parse(good), pid: 1 }, /pid must be an integer >= 2 \(found 1\)/],
    [{ ...JSON.parse(good), pid: "12" }, /pid must be an integer/],
    [
      { ...JSON.parse(good), startTime: undefined },
      /startTime must be an integer >= 0 \(missing\)/,
    ],
    [{ ...JSON.parse(good), bootId: 3 }, /bootId must be a non-empty string/],
    [{ ...JSON.parse(good), detached: "yes" }, /detached must be true or false/],
    [{ ...JSON.parse(good), groups: {} }, /groups must be an array/],
    [
      { ...JSON.parse(good), groups: [{ service: "a", pgid: 1, startTime: 5, exe: "x" }] },
      /groups\[0\]\.pgid must be an integer >= 2/,
    ],
    [
      { ...JSON.parse(good), groups: [{ service: "a", pgid: 77, exe: "x" }] },
      /groups\[0\]\.startTime must be an integer >= 0 \(missing\)/,
    ],
    [
      { ...JSON.parse(good), groups: [{ service: "a", pgid: 77, startTime: 1 }] },
      /groups\[0\]\.exe must be a non-empty string/,
    ],
  ];
  for (const [j, re] of cases) {
    const text = typeof j === "string" ? j : JSON.stringify(j);
    let msg = "";
    try {
      parseUpState(text, ".hd/up.json");
    } catch (e) {
      msg = (e as Error).message;
    }
    assert(msg.startsWith("Cannot read .hd/up.json: "), msg);
    assert(re.test(msg), `${text}: ${msg}`);
    assert(!msg.includes("\n"), "one line");
  }
});

Deno.test("cleanupStale: kills a group hd started (recorded), leaves a planted one", async () => {
  using tmp = tempDir();
  const mine = spawnGroup("sleep 300 & exec sleep 301", {
    cwd: tmp.path,
    env: { PATH: "/usr/bin:/bin" },
  });
  const other = spawnGroup("exec sleep 302", { cwd: tmp.path, env: { PATH: "/usr/bin:/bin" } });
  try {
    await new Promise((r) => setTimeout(r, 200)); // both exec'd: their exe is sleep
    const me = selfState(tmp.path, "x", true);
    const rm = mine.record();
    const ro = other.record();
    const state = {
      ...me,
      pid: 2 ** 22 - 5, // a supervisor that is gone
      groups: [
        { service: "mine", pgid: mine.pid, startTime: rm.startTime!, exe: rm.exe! },
        { service: "other", pgid: other.pid, startTime: ro.startTime! + 1, exe: ro.exe! },
      ],
    };
    writeUpState(tmp.path, state);
    const st = readUpState(tmp.path)!;
    assertEquals(st.alive, false);
    const c = cleanupStale(tmp.path, st.state!);
    assertEquals(c.killed, ["mine"]);
    assertEquals(c.left.map((l) => l.service), ["other"]);
    assert(/reused/.test(c.left[0].why), c.left[0].why);
    await mine.status;
    assertEquals(isAlive(other.pid, { zombies: "dead" }), true);
    assertEquals(readUpState(tmp.path), null);
  } finally {
    await stopGroup(mine.pid, mine.status, 100);
    await stopGroup(other.pid, other.status, 100);
    await Promise.all([
      mine.stdout.cancel(),
      mine.stderr.cancel(),
      other.stdout.cancel(),
      other.stderr.cancel(),
    ]);
  }
});

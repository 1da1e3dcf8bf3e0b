import { assert, assertEquals } from "../_assert.ts";
import {
  bootId,
  groupAlive,
  groupMembers,
  guardedKill,
  isAlive,
  parseStat,
  procChildren,
  type ProcInfo,
  procInfo,
  type ProcRecord,
  procStartTime,
  readStat,
  recordOf,
  sameProcess,
  selfInfo,
  signalDecision,
  signalRecorded,
} from "../../src/sys/proc.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("parseStat: the table (comm may hold spaces and parentheses)", () => {
  const tail = "1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0";
  const rows: [string, string, ReturnType<typeof parseStat>][] = [
    ["plain", `42 (sleep) S ${tail}\n`, {
      pid: 42,
      comm: "sleep",
      state: "S",
      ppid: 1,
      pgid: 42,
      sid: 42,
      startTime: 777,
    }],
    ["a comm with ') ' in it", `42 (a) S 9 (x) Z ${tail}`, {
      pid: 42,
      comm: "a) S 9 (x",
      state: "Z",
      ppid: 1,
      pgid: 42,
      sid: 42,
      startTime: 777,
    }],
    ["no parentheses", `42 sleep S ${tail}`, null],
    ["truncated", "42 (sleep) S 1 42 42", null],
    ["not a state letter", `42 (sleep) 5 ${tail}`, null],
    ["empty", "", null],
  ];
  for (const [what, text, want] of rows) assertEquals(parseStat(text), want, what);
});

Deno.test("readStat, procStartTime, procInfo: this process, and pids that are not there", () => {
  const me = readStat(Deno.pid);
  assert(me !== null && me !== "gone", "this process is there");
  assertEquals(me.pid, Deno.pid);
  assertEquals(procStartTime(Deno.pid), me.startTime);
  assertEquals(procInfo(Deno.pid)?.exe, Deno.execPath());
  for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 22 + 17]) {
    assertEquals(readStat(pid), "gone", `pid ${pid}`);
    assertEquals(procStartTime(pid), null, `pid ${pid}`);
    assertEquals(procInfo(pid), null, `pid ${pid}`);
  }
});

Deno.test("isAlive: the zombie rule is the caller's, and the start time names the process", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const st = procStartTime(child.pid)!;
    const rows: [string, number, Parameters<typeof isAlive>[1], boolean][] = [
      ["running, zombies dead", child.pid, { zombies: "dead" }, true],
      ["running, zombies alive", child.pid, { zombies: "alive" }, true],
      ["same start time", child.pid, { zombies: "dead", startTime: st }, true],
      ["null start time: not checked", child.pid, { zombies: "dead", startTime: null }, true],
      ["another start time (pid reused)", child.pid, { zombies: "dead", startTime: st + 1 }, false],
      ["pid 0", 0, { zombies: "alive" }, false],
      ["pid -1", -1, { zombies: "alive" }, false],
      ["a fraction", 1.5, { zombies: "alive" }, false],
      ["no such pid", 2 ** 22 + 17, { zombies: "alive" }, false],
    ];
    for (const [what, pid, opts, want] of rows) assertEquals(isAlive(pid, opts), want, what);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("isAlive: a zombie is dead or alive as asked", async () => {
  // sh forks `true`, then becomes `sleep`, which never waits: `true` stays a zombie until then
  const child = new Deno.Command("sh", {
    args: ["-c", "true & exec sleep 30"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    let z = 0;
    for (let i = 0; i < 400 && z === 0; i++) {
      const kid = procChildren(child.pid)[0];
      const s = kid === undefined ? null : readStat(kid);
      if (s !== null && s !== "gone" && s.state === "Z") z = kid;
      else await sleep(5);
    }
    assert(z > 0, "a zombie child of sleep");
    const s = readStat(z);
    assert(s !== null && s !== "gone");
    assertEquals(isAlive(z, { zombies: "dead" }), false);
    assertEquals(isAlive(z, { zombies: "alive" }), true);
    assertEquals(isAlive(z, { zombies: "alive", startTime: s.startTime }), true);
    assertEquals(groupMembers(s.pgid).includes(z), false, "a zombie is no group member");
    assertEquals(procInfo(z)?.state, "Z");
    assertEquals(signalDecision("pid", recordOf(z), procInfo(z), selfInfo()).signal, false);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("groupMembers, groupAlive, procChildren: a real group", async () => {
  // setsid: the shell leads a new group with its two sleeps
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", "sleep 30 & sleep 30 & wait"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 200 && groupMembers(child.pid).length < 3; i++) await sleep(5);
    const members = groupMembers(child.pid);
    assertEquals(members.length, 3, `members ${members}`);
    assert(members.includes(child.pid));
    assertEquals(procChildren(child.pid).length, 2);
    assertEquals(groupAlive(child.pid, { zombies: "dead" }), true);
    assertEquals(groupAlive(child.pid, { zombies: "alive" }), true);
  } finally {
    guardedKill(-child.pid, "SIGKILL");
    await child.status;
  }
  for (let i = 0; i < 200 && groupMembers(child.pid).length > 0; i++) await sleep(5);
  assertEquals(groupMembers(child.pid), []);
  assertEquals(groupAlive(child.pid, { zombies: "dead" }), false);
  assertEquals(procChildren(child.pid), []);
});

Deno.test("guardedKill: the floor (nothing here reaches the kernel but probes and our child)", async () => {
  const self = selfInfo();
  const refused: [string, number][] = [
    ["every process (-1)", -1],
    ["hd's own group (0)", 0],
    ["init (1)", 1],
    ["group 1", -1],
    ["hd itself", Deno.pid],
    ["hd's own group by number", -self.pgid],
    ["a fraction", 4242.5],
    ["NaN", Number.NaN],
  ];
  // signal 0 only probes: even a wrong answer here could not hurt anything
  for (const [what, target] of refused) assertEquals(guardedKill(target, 0), false, what);
  assertEquals(groupAlive(1, { zombies: "alive" }), false);
  assertEquals(groupAlive(self.pgid, { zombies: "alive" }), false);
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  assertEquals(guardedKill(child.pid, 0), true);
  assertEquals(guardedKill(child.pid, "SIGTERM"), true);
  assertEquals((await child.status).signal, "SIGTERM");
  assertEquals(guardedKill(child.pid, 0), false, "reaped: gone");
});

Deno.test("sameProcess, recordOf, signalRecorded: a record names one process in one boot", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const rec = recordOf(child.pid);
    assert(rec.startTime !== null && rec.exe !== null, JSON.stringify(rec));
    assertEquals(rec.bootId, bootId());
    assertEquals(sameProcess(rec, procInfo(child.pid), bootId()), true);
    assertEquals(
      sameProcess({ ...rec, startTime: rec.startTime + 1 }, procInfo(child.pid), bootId()),
      false,
    );
    // a record that is not ours (no start time, another boot, another program) is never signalled
    for (
      const r of [{ ...rec, startTime: null }, { ...rec, bootId: "x" }, { ...rec, exe: "/bin/x" }]
    ) {
      assertEquals(signalRecorded("pid", r, "SIGKILL").signal, false, JSON.stringify(r));
    }
    assertEquals(isAlive(child.pid, { zombies: "dead" }), true);
    // `sleep` does not lead its group: as a group it is refused, as a pid it is signalled
    assert(/leads/.test(signalRecorded("group", rec, "SIGKILL").why));
    assertEquals(signalRecorded("pid", rec, "SIGTERM").signal, true);
    assertEquals((await child.status).signal, "SIGTERM");
    assertEquals(signalRecorded("pid", rec, "SIGTERM").signal, false);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }
});

// ---- what hd may signal: the decision table (moved from tests/services/control_test.ts) ----

Deno.test("signalDecision: the table", () => {
  const self = { pid: 500, pgid: 499, bootId: "boot-a" };
  const rec: ProcRecord = { pid: 4242, startTime: 777, exe: "/usr/bin/sleep", bootId: "boot-a" };
  const seen: ProcInfo = {
    pid: 4242,
    state: "S",
    pgid: 4242,
    sid: 4242,
    startTime: 777,
    exe: "/usr/bin/sleep",
    comm: "sleep",
  };
  const rows: [string, "pid" | "group", ProcRecord, ProcInfo | null, boolean, RegExp][] = [
    ["the group hd started", "group", rec, seen, true, /hd started/],
    ["the pid hd started", "pid", rec, seen, true, /hd started/],
    ["pid 1", "group", { ...rec, pid: 1 }, { ...seen, pid: 1 }, false, /never/],
    ["pid 0", "group", { ...rec, pid: 0 }, null, false, /never/],
    ["pid -1", "pid", { ...rec, pid: -1 }, null, false, /never/],
    ["a fraction", "pid", { ...rec, pid: 4242.5 }, null, false, /never/],
    ["hd itself", "pid", { ...rec, pid: 500 }, { ...seen, pid: 500 }, false, /hd itself/],
    ["hd's own group", "group", { ...rec, pid: 499 }, { ...seen, pid: 499 }, false, /own/],
    ["no start time", "group", { ...rec, startTime: null }, seen, false, /no start time/],
    ["no executable", "group", { ...rec, exe: null }, seen, false, /no executable/],
    ["no boot id (a shipped file)", "group", { ...rec, bootId: null }, seen, false, /boot/],
    ["another boot", "group", { ...rec, bootId: "boot-b" }, seen, false, /boot/],
    ["gone", "group", rec, null, false, /gone/],
    ["a zombie", "group", rec, { ...seen, state: "Z" }, false, /gone/],
    ["pid reused", "group", rec, { ...seen, startTime: 778 }, false, /reused/],
    ["another program", "group", rec, { ...seen, exe: "/bin/bash", comm: "bash" }, false, /runs/],
    [
      "exe unreadable, comm matches",
      "group",
      { ...rec, exe: "sleep" },
      {
        ...seen,
        exe: null,
      },
      true,
      /hd started/,
    ],
    ["no longer a group leader", "group", rec, { ...seen, pgid: 4000 }, false, /leads/],
    ["not a session leader", "group", rec, { ...seen, sid: 4000 }, false, /leads/],
    ["a pid need not lead", "pid", rec, { ...seen, pgid: 4000, sid: 4000 }, true, /hd started/],
  ];
  for (const [what, target, r, s, want, why] of rows) {
    const v = signalDecision(target, r, s, self);
    assertEquals(v.signal, want, `${what}: ${v.why}`);
    assert(why.test(v.why), `${what}: ${v.why}`);
  }
  // no boot id on this side either: nothing is provable
  assertEquals(signalDecision("group", rec, seen, { ...self, bootId: null }).signal, false);
});

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
import { isAlive, procStartTime } from "../../src/sandbox/process.ts";

Deno.test("control: a live pid with another start time is a reused pid, i.e. stale", () => {
  using tmp = tempDir();
  const me = selfState(tmp.path, "x", true);
  writeUpState(tmp.path, me);
  assertEquals(readUpState(tmp.path)!.alive, true);
  // same pid, different start time: the supervisor died and its pid went to someone else
  writeUpState(tmp.path, { ...me, startTime: (procStartTime(Deno.pid) ?? 0) - 1 });
  assertEquals(readUpState(tmp.path)!.alive, false);
  assertEquals(isAlive(Deno.pid, procStartTime(Deno.pid)), true);
  assertEquals(isAlive(2 ** 22 + 17), false);
  // cleanup leaves the reused pid (this very process) alone and removes the files
  cleanupStale(tmp.path, readUpState(tmp.path)!.state);
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

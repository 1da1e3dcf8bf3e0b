/** src/sys/unix_listen.ts: a listener that never removes another's socket file. */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { listenUnix } from "../../src/sys/unix_listen.ts";

const there = (p: string) => Deno.lstat(p).then(() => true, () => false);

Deno.test("listenUnix: closing after another took the path leaves the other's socket", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/s.sock`;
  const a = listenUnix(path);
  assertEquals(Deno.lstatSync(path).mode! & 0o777, 0o600);
  const b = listenUnix(path); // replaces a's file at once
  assert(b.owns() && !a.owns());
  a.listener.close();
  a.unlinkIfOwn();
  // Deno's own listener unlinks its bound path on close: bound at `path`, a would remove b's file
  assert(await there(path), "b's socket file was removed by a's close");
  const accepted = b.listener.accept();
  const c = await Deno.connect({ transport: "unix", path });
  (await accepted).close();
  c.close();
  b.listener.close();
  b.unlinkIfOwn();
  assert(!(await there(path)));
  assertEquals([...Deno.readDirSync(tmp.path)], [], "no temporary name is left behind");
});

Deno.test("listenUnix: a path it cannot take throws and leaves nothing behind", () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.path}/d/x`, { recursive: true });
  // renaming a socket over a non-empty directory fails
  assertThrows(() => listenUnix(`${tmp.path}/d`));
  assertEquals([...Deno.readDirSync(tmp.path)].map((e) => e.name), ["d"]);
  assertThrows(() => listenUnix(`${tmp.path}/missing/s.sock`));
});

Deno.test("listenUnix: a link planted at the path is replaced, never followed", () => {
  using tmp = tempDir();
  Deno.mkdirSync(`${tmp.path}/proj/.hd`, { recursive: true });
  const target = `${tmp.path}/precious`;
  Deno.writeTextFileSync(target, "keep me");
  const path = `${tmp.path}/proj/.hd/control.sock`;
  Deno.symlinkSync(target, path); // as a cloned project could ship it
  const l = listenUnix(path);
  assert(Deno.lstatSync(path).isSocket, "the link itself was replaced by the socket");
  assertEquals(Deno.readTextFileSync(target), "keep me");
  l.listener.close();
  // a link put back in its place is not "its own" and stays, as does what it points at
  Deno.removeSync(path);
  Deno.symlinkSync(target, path);
  l.unlinkIfOwn();
  assert(Deno.lstatSync(path).isSymlink);
  assertEquals(Deno.readTextFileSync(target), "keep me");
});

/**
 * The `hd up` session without a terminal (src/services/session.ts): driven in this process, its
 * lines and events collected, real services, a real control socket, lock and state file.
 */
import { assert, assertEquals, assertIncludes, assertRejects } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { loadSpec } from "../../src/config/parse.ts";
import {
  acquireUpLock,
  callControl,
  controlSocketPath,
  readUpState,
  upStatePath,
} from "../../src/services/control.ts";
import { AlreadyRunning, UpSession } from "../../src/services/session.ts";
import { waitFor } from "./_util.ts";

const NEEDS = skipUnless({ commands: ["setsid"] });

function toml(name: string, greeting: string, more = ""): string {
  return `[environment]
name = "${name}"
env = { GREETING = "${greeting}" }

[services.say]
command = "echo said-$GREETING; exec sleep 60"
${more}
[options]
restart_grace = "1s"
debounce = "20ms"
`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A session on the project in `dir`, its store under `storeDir`, without signal handlers. */
function openSession(
  dir: string,
  storeDir: string,
  more: Partial<Parameters<typeof UpSession.open>[0]> = {},
): Promise<UpSession> {
  return UpSession.open({
    spec: loadSpec(`${dir}/hd.toml`),
    store: Store.open(`${storeDir}/store`),
    detached: false,
    signals: false,
    print: () => {},
    ...more,
  });
}

/** The project is released: no up state, no control socket, its lock free again. */
function assertReleased(dir: string): void {
  assert(!exists(upStatePath(dir)) && !exists(controlSocketPath(dir)));
  const lock = acquireUpLock(dir);
  assert("file" in lock);
  lock.file.close();
}

testIf(NEEDS, "session: start, status over the socket, reload, refused reload, stop", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/hd.toml`, toml("sess", "one"));
  const lines: string[] = [];
  const events: Record<string, unknown>[] = [];
  const specs: string[] = [];
  const session = await openSession(dir, st.path, {
    print: (src, line) => lines.push(`${src} | ${line}`),
    onEvent: (ev) => events.push(ev),
    onSpec: (sp) => specs.push(sp.environment.env.GREETING),
  });
  // one `hd up` per project: a second session is refused by the lock, before it builds anything
  const second = () => openSession(dir, st.path);
  let refused: unknown = null;
  try {
    await second();
  } catch (e) {
    refused = e;
  }
  assert(refused instanceof AlreadyRunning && refused.byLock, String(refused));
  assertEquals(refused.holder, Deno.pid);
  try {
    await session.start();
    assertEquals(session.phase, "running");
    assertEquals(readUpState(dir)?.state?.pid, Deno.pid);
    const log = () => lines.filter((l) => l.startsWith("say | said-"));
    await waitFor(() => log().length === 1, "first start");
    const up = await callControl(controlSocketPath(dir), { op: "status" }) as {
      phase: string;
      env: string;
      services: { name: string; state: string }[];
    };
    assertEquals([up.phase, up.env, up.services.map((s) => s.name)], ["running", "sess", ["say"]]);

    // [environment] changed: the loop asks, the session reloads from the new file
    Deno.writeTextFileSync(`${dir}/hd.toml`, toml("sess", "two"));
    await waitFor(() => events.some((e) => e.event === "reload" && e.ok === true), "reload");
    await waitFor(() => log().includes("say | said-two"), "restarted with the new env");
    assertEquals(specs, ["one", "two"]);
    assertEquals(session.spec.environment.env.GREETING, "two");
    assert(lines.includes("hd | hd.toml changed: reloading the environment"), lines.join("\n"));

    // a new name is not a reload: refused, the running one stays
    Deno.writeTextFileSync(`${dir}/hd.toml`, toml("renamed", "three"));
    await waitFor(() => events.some((e) => e.event === "reload" && e.ok === false), "refusal");
    assertIncludes(
      lines.join("\n"),
      "hd | cannot reload: the environment name changed (sess \u2192 renamed); stop and start hd up",
    );
    assertEquals(session.phase, "running");
    assertEquals(specs, ["one", "two"]);
  } finally {
    session.stop("test");
    await session.done();
  }
  assertEquals(session.phase, "stopped");
  const kinds = events.map((e) => e.event);
  assertEquals(kinds.at(-1), "stopped");
  assert(kinds.lastIndexOf("stopping") > kinds.lastIndexOf("reload"), kinds.join());
  assert(lines.includes("hd | stopping (test): say"), lines.join("\n"));
  // released: no state, no socket, the lock is free
  assertReleased(dir);
});

testIf(NEEDS, "session: a failed build throws and releases the project", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    toml("failing", "x", '\n[build]\nsteps = ["echo broken; exit 3"]\n'),
  );
  const lines: string[] = [];
  const session = await openSession(dir, st.path, {
    print: (src, line) => lines.push(`${src} | ${line}`),
  });
  await assertRejects(() => session.start(), /build step 1 .* failed/);
  assertEquals(session.phase, "stopped");
  assert(lines.includes("build | [1] broken"), lines.join("\n"));
  assert(!lines.some((l) => l.startsWith("say |")), "nothing started");
  assertReleased(dir);
});

testIf(NEEDS, "session: `hd down` over the socket stops it", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  Deno.writeTextFileSync(`${dir}/hd.toml`, toml("down", "x"));
  const lines: string[] = [];
  const session = await openSession(dir, st.path, {
    detached: true,
    print: (src, line) => lines.push(`${src} | ${line}`),
  });
  await session.start();
  assertEquals(readUpState(dir)?.state?.detached, true);
  assertEquals(await callControl(controlSocketPath(dir), { op: "down" }), { ok: true });
  await session.done();
  assert(lines.includes("hd | stopping (hd down): say"), lines.join("\n"));
  assert(lines.includes("hd | stopped"), lines.join("\n"));
});

import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { topoOrder, withDependents } from "../../src/services/graph.ts";
import { groupMembers } from "../../src/sys/proc.ts";
import { MAX_RECORD_BYTES, readSmall, Supervisor } from "../../src/services/supervisor.ts";
import { freePort, nodeListen, pidsWith, svc, waitFor } from "./_util.ts";

const NODE = skipUnless({ commands: ["node", "setsid"] });
const SETSID = skipUnless({ commands: ["setsid"] });

Deno.test("graph: topological order, dependents, cycles and unknown names", () => {
  const g = { web: ["api"], api: ["db"], db: [], worker: ["db"] };
  const order = topoOrder(g);
  assert(order.indexOf("db") < order.indexOf("api") && order.indexOf("api") < order.indexOf("web"));
  assertEquals([...withDependents(g, ["api"])].sort(), ["api", "web"]);
  assertEquals([...withDependents(g, ["db"])].sort(), ["api", "db", "web", "worker"]);
  assertThrows(() => topoOrder({ a: ["b"], b: ["a"] }), /cycle a → b → a/);
  assertThrows(() => topoOrder({ a: ["nope"] }), /unknown service "nope"/);
});

testIf(NODE, "supervisor: dependents start after readiness, stop in reverse order", async () => {
  using tmp = tempDir();
  const [p1, p2] = [freePort(), freePort()];
  const events: string[] = [];
  const sup = new Supervisor({
    services: {
      // db opens its port only after 300 ms: api must wait for it
      db: svc("db", `sleep 0.3; ${nodeListen(p1, "db")}`, { port: p1 }),
      api: svc("api", nodeListen(p2, "api"), { port: p2, depends_on: ["db"] }),
      job: svc("job", "echo job-ran; exec sleep 60", { depends_on: ["api"] }),
    },
    dir: tmp.path,
    env: { PATH: Deno.env.get("PATH")! },
    graceMs: 1000,
    logDir: `${tmp.path}/.hd/logs`,
    onEvent: (s, m) => events.push(`${s}: ${m}`),
  });
  sup.start();
  assert(await sup.settled(15_000), "settled");
  const st = sup.status();
  assertEquals(st.map((s) => [s.name, s.state, s.ready]), [
    ["db", "running", true],
    ["api", "running", true],
    ["job", "running", null],
  ]);
  const idx = (p: string) => events.findIndex((e) => e.startsWith(p));
  assert(idx("db: ready") < idx("api: started"), events.join("\n"));
  assert(idx("api: ready") < idx("job: started"), events.join("\n"));
  assert(events.includes("api: waiting for db"), events.join("\n"));
  events.length = 0;
  await sup.close();
  const stops = events.filter((e) => e.endsWith(": stopped")).map((e) => e.split(":")[0]);
  assertEquals(stops, ["job", "api", "db"]);
  assert(Deno.readTextFileSync(`${tmp.path}/.hd/logs/job.log`).includes("job-ran"));
});

testIf(
  SETSID,
  "supervisor: stopping kills the whole process group (forked children too)",
  async () => {
    using tmp = tempDir();
    const marker = `3000.${Math.floor(Math.random() * 1e9)}`; // a unique sleep time
    const sup = new Supervisor({
      services: {
        // a child that ignores SIGTERM, plus background grandchildren
        forky: svc(
          "forky",
          `sh -c 'trap "" TERM; while true; do sleep 0.05; done' ${marker} & sleep ${marker} & sleep ${marker} & wait`,
        ),
      },
      dir: tmp.path,
      env: { PATH: Deno.env.get("PATH")! },
      graceMs: 300,
    });
    sup.start();
    await waitFor(() => pidsWith(marker).length >= 3, "children started");
    const pgid = sup.status()[0].pid!;
    assert(groupMembers(pgid).length >= 3, `group members: ${groupMembers(pgid)}`);
    await sup.close();
    assertEquals(groupMembers(pgid), []);
    assertEquals(pidsWith(marker), []);
  },
);

testIf(SETSID, "supervisor: restart policies, backoff and crash loop", async () => {
  using tmp = tempDir();
  const events: string[] = [];
  const sup = new Supervisor({
    services: {
      flaky: svc("flaky", "exit 3", { restart_policy: "always" }),
      done: svc("done", "exit 0", { restart_policy: "on_failure" }),
      fails: svc("fails", "exit 2", { restart_policy: "never" }),
      retry: svc(
        "retry",
        `test -e ${tmp.path}/ok || { touch ${tmp.path}/ok; exit 1; }; exec sleep 60`,
        {
          restart_policy: "on_failure",
        },
      ),
    },
    dir: tmp.path,
    env: { PATH: Deno.env.get("PATH")! },
    graceMs: 500,
    backoff: { initialMs: 20, maxMs: 100 },
    onEvent: (s, m) => events.push(`${s}: ${m}`),
  });
  sup.start();
  await waitFor(() => sup.status()[0].state === "crashed", "flaky crash loop");
  const by = Object.fromEntries(sup.status().map((s) => [s.name, s]));
  assertEquals(by.flaky.restarts, 4); // 5 deaths in a minute, then left stopped
  assertEquals(by.flaky.lastExitCode, 3);
  assert(events.some((e) => /flaky: exited with code 3; restarting in 20 ms/.test(e)));
  assert(events.some((e) => /flaky: exited with code 3; restarting in 40 ms/.test(e)));
  await waitFor(
    () => sup.status()[3].state === "running" && sup.status()[3].restarts === 1,
    "retry",
  );
  const again = Object.fromEntries(sup.status().map((s) => [s.name, s]));
  assertEquals([again.done.state, again.done.lastExitCode], ["exited", 0]);
  assertEquals([again.fails.state, again.fails.lastExitCode, again.fails.restarts], [
    "exited",
    2,
    0,
  ]);
  // an explicit restart revives a crashed service
  await sup.restart(["flaky"]);
  assert(["running", "backoff", "pending"].includes(sup.status()[0].state));
  await sup.close();
});

testIf(NODE, "supervisor: restart takes dependents along; others keep their pid", async () => {
  using tmp = tempDir();
  const [p1, p2] = [freePort(), freePort()];
  const sup = new Supervisor({
    services: {
      api: svc("api", nodeListen(p1), { port: p1 }),
      web: svc("web", nodeListen(p2), { port: p2, depends_on: ["api"] }),
      other: svc("other", "exec sleep 60"),
    },
    dir: tmp.path,
    env: { PATH: Deno.env.get("PATH")! },
    graceMs: 1000,
  });
  sup.start();
  assert(await sup.settled());
  const before = Object.fromEntries(sup.status().map((s) => [s.name, s.pid]));
  const restarted = await sup.restart(["api"]);
  assertEquals(restarted, ["api", "web"]);
  assert(await sup.settled());
  const after = Object.fromEntries(sup.status().map((s) => [s.name, s]));
  assert(after.api.pid !== before.api && after.web.pid !== before.web);
  assertEquals(after.other.pid, before.other);
  assertEquals([after.api.restarts, after.web.restarts, after.other.restarts], [1, 1, 0]);
  await sup.restart(["web"]);
  assert(await sup.settled());
  assertEquals(sup.status()[0].pid, after.api.pid);
  await sup.close();
});

testIf(
  SETSID,
  "supervisor: dependents of a service that never becomes ready do not start",
  async () => {
    using tmp = tempDir();
    const port = freePort();
    const sup = new Supervisor({
      services: {
        deaf: svc("deaf", "exec sleep 60", { port }),
        dep: svc("dep", "exec sleep 60", { depends_on: ["deaf"] }),
      },
      dir: tmp.path,
      env: { PATH: Deno.env.get("PATH")! },
      graceMs: 500,
    });
    sup.start();
    await new Promise((r) => setTimeout(r, 700));
    const [deaf, dep] = sup.status();
    assertEquals([deaf.state, deaf.ready], ["starting", false]);
    assertEquals([dep.state, dep.pid, dep.waitingFor], ["waiting", null, ["deaf"]]);
    await sup.close();
  },
);

testIf(
  SETSID,
  "supervisor: restarting a service that was not started brings its dependencies",
  async () => {
    using tmp = tempDir();
    const sup = new Supervisor({
      services: {
        a: svc("a", "exec sleep 60"),
        b: svc("b", "exec sleep 60", { depends_on: ["a"] }),
        c: svc("c", "exec sleep 60"),
      },
      dir: tmp.path,
      env: { PATH: Deno.env.get("PATH")! },
      graceMs: 500,
    });
    sup.start(["c"]);
    assert(await sup.settled());
    assertEquals(await sup.restart(["b"]), ["b"]);
    assert(await sup.settled());
    assertEquals(sup.status().map((s) => s.state), ["running", "running", "running"]);
    await sup.close();
  },
);

Deno.test("readSmall: a file a container writes is read only as a regular file inside its directory, bounded", () => {
  using d = tempDir("hd-rec-");
  using outside = tempDir("hd-outside-");
  Deno.writeTextFileSync(`${outside.path}/config.json`, '{"auths":{"x":"host-token"}}');
  const f = `${d.path}/record.json`;
  const cases: [string, () => void, string | null][] = [
    ["a regular file", () => Deno.writeTextFileSync(f, '{"entry":null}'), '{"entry":null}'],
    ["a link inside its directory", () => {
      Deno.writeTextFileSync(`${d.path}/real.json`, "{}");
      Deno.symlinkSync("real.json", f);
    }, "{}"],
    ["a link to a host file", () => Deno.symlinkSync(`${outside.path}/config.json`, f), null],
    ["a link to a device", () => Deno.symlinkSync("/dev/zero", f), null],
    ["too big", () => Deno.writeFileSync(f, new Uint8Array(MAX_RECORD_BYTES + 1)), null],
    ["absent", () => {}, null],
  ];
  if (new Deno.Command("mkfifo", { args: [`${d.path}/probe`] }).outputSync().success) {
    cases.push(["a FIFO (never waited on)", () => {
      Deno.removeSync(`${d.path}/probe`);
      new Deno.Command("mkfifo", { args: [f] }).outputSync();
    }, null]);
  }
  for (const [what, make, want] of cases) {
    try {
      Deno.removeSync(f);
    } catch { /* none */ }
    make();
    assertEquals(readSmall(f), want, what);
  }
});

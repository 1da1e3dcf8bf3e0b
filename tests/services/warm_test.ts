import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { DevLoop } from "../../src/services/loop.ts";
import { listenerOf } from "../../src/services/readiness.ts";
import { GlobSet } from "../../src/watch/pathmap.ts";
import {
  heldDecision,
  type HeldFacts,
  loadedSet,
  nodeCommand,
  parseRecord,
  preloadList,
  warmCommandLine,
  warmDecision,
  type WarmFacts,
} from "../../src/services/warm.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { envSpec, freePort, svc, waitFor } from "./_util.ts";

const NODE = "node src/server.js";
const standby = (preloaded: string[], more: Partial<NonNullable<WarmFacts["standby"]>> = {}) => ({
  alive: true,
  command: NODE,
  preloaded: new Set(preloaded),
  ...more,
});
const base: WarmFacts = {
  reload: "warm",
  command: NODE,
  sandboxed: false,
  standby: standby(["lib/util.js", "/usr/lib/x.js"]),
  changed: ["src/msg.js"],
  stepsRan: 0,
};

Deno.test("warm: the decision, row by row", () => {
  const rows: [string, Partial<WarmFacts>, string][] = [
    ["an edit of code the standby did not load", {}, "warm"],
    ["the entry point itself", { changed: ["src/server.js"] }, "warm"],
    ["several watched edits since the standby", { changed: ["src/a.js", "src/b.js"] }, "warm"],
    ["reload not set", { reload: undefined }, 'reload is not "warm"'],
    ['reload = "restart"', { reload: "restart" }, 'reload is not "warm"'],
    [
      "on an image of its own",
      { sandboxed: true },
      "warm restarts run on the host or the environment's base only (the service has an image)",
    ],
    ["npm start", { command: "npm start" }, "the command is not `node …` (npm)"],
    [
      "shell syntax",
      { command: "node src/server.js | tee log" },
      "the command uses shell syntax (quotes, pipes, variables…)",
    ],
    ["node -e", { command: "node -e 1" }, "node -e runs no script file hd can warm"],
    ["no standby", { standby: null }, "no standby was ready"],
    ["standby died", { standby: standby([], { alive: false }) }, "the standby died"],
    [
      "standby still loading",
      { standby: standby([], { preloaded: null }) },
      "the standby was still loading its modules",
    ],
    [
      "command changed",
      { standby: standby([], { command: "node old.js" }) },
      "the service's command changed",
    ],
    ["a step re-ran", { stepsRan: 1 }, "a build step re-ran"],
    [
      "package.json",
      { changed: ["src/msg.js", "package.json"] },
      "package.json changed (the dependencies may differ)",
    ],
    [
      "lockfile in a workspace",
      { changed: ["app/package-lock.json"] },
      "app/package-lock.json changed (the dependencies may differ)",
    ],
    [
      "a tracked node_modules file",
      { changed: ["node_modules/x/index.js"] },
      "node_modules/x/index.js changed (the dependencies may differ)",
    ],
    [
      "a preloaded module",
      { changed: ["src/msg.js", "lib/util.js"] },
      "lib/util.js changed and the standby had loaded it",
    ],
  ];
  for (const [what, facts, want] of rows) {
    const d = warmDecision({ ...base, ...facts });
    assertEquals(d === "warm" ? "warm" : d.why, want, what);
    if (d !== "warm") assertEquals(d.cold, true);
  }
});

Deno.test("held: whether a plain sandboxed restart starts the container created ahead", () => {
  const held: HeldFacts = {
    command: NODE,
    standby: { alive: true, command: NODE },
    stepsRan: 0,
  };
  const rows: [string, Partial<HeldFacts>, string][] = [
    ["held and unchanged (edits of the project are seen through its bind)", {}, "held"],
    ["none prepared yet", { standby: null }, "no container was held ready"],
    ["its process died", { standby: { alive: false, command: NODE } }, "the held container died"],
    [
      "hd.toml changed the command",
      { standby: { alive: true, command: "node old.js" } },
      "the service's command changed",
    ],
    ["a step re-ran since", { stepsRan: 2 }, "a build step re-ran (a new root)"],
  ];
  for (const [what, facts, want] of rows) {
    const d = heldDecision({ ...held, ...facts });
    assertEquals(d === "held" ? "held" : d.why, want, what);
    if (d !== "held") assertEquals(d.cold, true);
  }
});

Deno.test("warm: which commands are node lines, and the loader's place in them", () => {
  assertEquals(nodeCommand("node app.js"), { words: ["node", "app.js"] });
  assertEquals(nodeCommand("exec /usr/bin/node --max-old-space-size=64 app.js 3000"), {
    words: ["/usr/bin/node", "--max-old-space-size=64", "app.js", "3000"],
  });
  assert("why" in nodeCommand("node"));
  assert("why" in nodeCommand("node --watch app.js"));
  assert("why" in nodeCommand("nodemon app.js"));
  assert("why" in nodeCommand("node $APP"));
  assertEquals(
    warmCommandLine("node --enable-source-maps app.js", "/tmp/hd-warm-a/loader.cjs"),
    "node --require /tmp/hd-warm-a/loader.cjs --enable-source-maps app.js",
  );
  assertEquals(warmCommandLine("npm start", "/tmp/l.cjs"), null);
  assertEquals(warmCommandLine("node a.js", "/tmp/a b/l.cjs"), null); // never quoted
});

Deno.test("warm: a record is untrusted; the preload list leaves out what touches watched code", () => {
  assertEquals(parseRecord("not json"), null);
  assertEquals(parseRecord('{"modules":"x","children":[]}'), null);
  assertEquals(parseRecord('{"modules":["/a.js"]}'), null, "no graph");
  assertEquals(parseRecord('{"modules":["/a.js","rel.js"],"children":[[],[]]}'), null);
  assertEquals(parseRecord('{"modules":["/a\\n.js"],"children":[[]]}'), null);
  assertEquals(parseRecord('{"modules":["/a.js"],"children":[[1]]}'), null, "index out of range");
  assertEquals(parseRecord('{"modules":["/a.js","/b.js"],"children":[[1]]}'), null);
  assertEquals(
    parseRecord('{"entry":"x.js","modules":["/a.js","/b.js"],"children":[[1],[]]}'),
    { entry: null, modules: ["/a.js", "/b.js"], children: [[1], []] },
  );
  assertEquals(loadedSet('["/p/lib/a.js","/usr/x.js"]', "/p"), new Set(["lib/a.js", "/usr/x.js"]));
  assertEquals(loadedSet('["lib/a.js"]', "/p"), null);
  const modules = [
    "/tmp/l.cjs", // 0
    "/p/src/server.js", // 1 entry
    "/p/src/msg.js", // 2 watched
    "/p/lib/util.js", // 3
    "/p/package.json", // 4
    "/p/node_modules/heavy/index.js", // 5
    "/p/src/node_modules/x/i.js", // 6
    "/usr/share/nodejs/y/index.js", // 7
    "/p/lib/fmt.js", // 8 requires src/shape.js
    "/p/src/shape.js", // 9 watched
    "/p/node_modules/plugin/index.js", // 10 requires lib/fmt.js
  ];
  const children = [[], [2, 3, 4, 5, 6, 7, 10], [], [], [], [], [], [], [9], [], [8]];
  const r = preloadList(
    { entry: "/p/src/server.js", modules, children },
    { dir: "/p", watch: new GlobSet(["src/**"]), loader: "/tmp/l.cjs" },
  );
  assertEquals(r.paths, [
    "/p/lib/util.js",
    "/p/package.json",
    "/p/node_modules/heavy/index.js",
    "/p/src/node_modules/x/i.js",
    "/usr/share/nodejs/y/index.js",
  ]);
  assertEquals([...r.preloaded], [
    "lib/util.js",
    "package.json",
    "node_modules/heavy/index.js",
    "src/node_modules/x/i.js",
    "/usr/share/nodejs/y/index.js",
  ]);
});

Deno.test("warm: reload is checked in hd.toml", () => {
  using tmp = tempDir();
  const f = `${tmp.path}/hd.toml`;
  Deno.writeTextFileSync(
    f,
    '[environment]\nname = "w"\n[services.web]\ncommand = "node a.js"\nreload = "warm"\n',
  );
  assertEquals(loadSpec(f).services.web.reload, "warm");
  Deno.writeTextFileSync(
    f,
    '[environment]\nname = "w"\n[services.web]\ncommand = "node a.js"\nreload = "wram"\n',
  );
  let msg = "";
  try {
    loadSpec(f);
  } catch (e) {
    msg = `${(e as Error).message} ${(e as { hint?: string }).hint ?? ""}`;
  }
  assert(msg.includes('reload must be "warm" or "restart", not "wram"'), msg);
  assert(msg.includes("hd.toml:5"), msg);
  assert(msg.includes('did you mean "warm"'), msg);
});

const NEEDS = skipUnless({ commands: ["setsid", "node"] });

/** A project whose dependency takes ~150 ms to require, and which answers with its pid. */
function project(dir: string, port: number): void {
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  Deno.mkdirSync(`${dir}/lib`);
  Deno.mkdirSync(`${dir}/node_modules/heavy`, { recursive: true });
  for (const m of ["a", "b", "c"]) {
    Deno.writeTextFileSync(
      `${dir}/node_modules/heavy/${m}.js`,
      `require("fs").appendFileSync(${
        JSON.stringify(`${dir}/loads.log`)
      }, process.pid + " ${m}\\n");\n` +
        `const t = Date.now(); while (Date.now() - t < 50) {}\nmodule.exports = "${m}";\n`,
    );
  }
  Deno.writeTextFileSync(
    `${dir}/node_modules/heavy/index.js`,
    'module.exports = ["a", "b", "c"].map((m) => require("./" + m)).join("");\n',
  );
  Deno.writeTextFileSync(`${dir}/lib/util.js`, 'module.exports = "util-1";\n');
  // an unwatched module that requires a watched one: never preloaded (it would hold it stale)
  Deno.writeTextFileSync(`${dir}/lib/fmt.js`, 'module.exports = require("../src/shape");\n');
  Deno.writeTextFileSync(`${dir}/src/shape.js`, 'module.exports = "shape-1";\n');
  Deno.writeTextFileSync(`${dir}/src/msg.js`, 'module.exports = "msg-1";\n');
  Deno.writeTextFileSync(
    `${dir}/src/server.js`,
    `const heavy = require("heavy");
const util = require("../lib/util");
const msg = require("./msg");
const shape = require("../lib/fmt");
require("http").createServer((_q, r) => r.end(JSON.stringify({ pid: process.pid, heavy, util, msg, shape })))
  .listen(${port}, "127.0.0.1");
`,
  );
}

/** The spec of one warm-reloaded service `web` running `cmd` on `port`, watching src/. */
function warmWeb(
  dir: string,
  port: number,
  cmd: string,
  options?: ReturnType<typeof envSpec>["options"],
) {
  return envSpec(dir, {
    services: { web: svc("web", cmd, { watch: ["src/**"], port, reload: "warm" }) },
    ...(options ? { options } : {}),
  });
}

/** A started DevLoop (no watcher) on `spec`, its store in `storeDir`; `out` gets its lines. */
async function startLoop(
  spec: ReturnType<typeof envSpec>,
  storeDir: string,
): Promise<{ loop: DevLoop; out: string[] }> {
  const out: string[] = [];
  const loop = await DevLoop.open({
    spec,
    store: Store.open(`${storeDir}/store`),
    print: (src, line) => out.push(`${src} | ${line}`),
    noWatch: true,
  });
  await loop.start();
  return { loop, out };
}

async function ask(
  port: number,
): Promise<{ pid: number; msg: string; util: string; shape: string } | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`);
    return await r.json();
  } catch {
    return null;
  }
}

/** Writes `msg` into src/msg.js, tells `loop`, and waits until the app on `port` answers it. */
async function editMsg(
  loop: DevLoop,
  dir: string,
  port: number,
  msg: string,
  what: string,
): Promise<void> {
  Deno.writeTextFileSync(`${dir}/src/msg.js`, `module.exports = "${msg}";\n`);
  await loop.update(["src/msg.js"]);
  await waitFor(async () => (await ask(port))?.msg === msg, what);
}

function loadsOf(dir: string, pid: number): number {
  try {
    return Deno.readTextFileSync(`${dir}/loads.log`).split("\n")
      .filter((l) => l.startsWith(`${pid} `)).length;
  } catch {
    return 0;
  }
}

function alive(pid: number): boolean {
  try {
    const st = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

testIf(
  NEEDS,
  "warm: an edit is served by the standby that was waiting; a preloaded module's change goes cold",
  async () => {
    using tmp = tempDir();
    using st = tempDir();
    const dir = tmp.path;
    const port = freePort();
    project(dir, port);
    const spec = warmWeb(dir, port, NODE, { restartGraceMs: 2000, debounceMs: 10 });
    const { loop, out } = await startLoop(spec, st.path);
    try {
      await waitFor(async () => (await ask(port))?.msg === "msg-1", "the first answer");
      const first = (await ask(port))!.pid;
      // the standby: started after the first instance was ready, heavy preloaded, not listening
      await waitFor(() => loop.supervisor.standbyPid("web") !== null, "a standby");
      const sb = loop.supervisor.standbyPid("web")!;
      assert(sb !== first);
      await waitFor(() => loop.supervisor.status()[0].standby === sb, "the standby preloaded");
      assertEquals(loadsOf(dir, sb), 3, "the standby preloaded heavy");
      assertEquals(listenerOf(port, [sb]), null, "the standby listens before its go");
      assertEquals((await ask(port))!.pid, first);

      // edit a watched file: the standby takes over; at no moment do both hold the port
      Deno.writeTextFileSync(`${dir}/src/msg.js`, 'module.exports = "msg-2";\n');
      Deno.writeTextFileSync(`${dir}/src/shape.js`, 'module.exports = "shape-2";\n');
      let both = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          if (listenerOf(port, [first]) && listenerOf(port, [sb])) both++;
          await new Promise((r) => setTimeout(r, 1));
        }
      })();
      const t0 = performance.now();
      const report = await loop.update(["src/msg.js", "src/shape.js"]);
      assertEquals(report?.restarted, ["web"]);
      await waitFor(async () => (await ask(port))?.msg === "msg-2", "the edited answer");
      const handover = performance.now() - t0;
      sampling = false;
      await sampler;
      assertEquals(both, 0, "two instances held the port at once");
      const second = await ask(port);
      assertEquals(second!.pid, sb, "the answer comes from the standby recorded before the edit");
      assertEquals(second!.shape, "shape-2", "code behind an unwatched module is not stale");
      assert(!alive(first), "the old instance is gone");
      assertEquals(loadsOf(dir, sb), 3, "heavy was not loaded again after the go");
      assert(
        out.some((l) => l.includes(`started (pid ${sb}, warm: its standby had preloaded`)),
        out.join("\n"),
      );

      // the next standby is prepared; a change of a module it preloaded (with a watched edit in
      // the same batch) is a cold start, with the reason said once
      await waitFor(() => {
        const p = loop.supervisor.status()[0].standby;
        return p !== null && p !== undefined && p !== sb;
      }, "the next standby");
      const sb2 = loop.supervisor.standbyPid("web")!;
      Deno.writeTextFileSync(`${dir}/lib/util.js`, 'module.exports = "util-2";\n');
      Deno.writeTextFileSync(`${dir}/src/msg.js`, 'module.exports = "msg-3";\n');
      const t1 = performance.now();
      await loop.update(["lib/util.js", "src/msg.js"]);
      await waitFor(async () => (await ask(port))?.util === "util-2", "the cold answer");
      const cold = performance.now() - t1;
      const third = (await ask(port))!;
      assertEquals(third.msg, "msg-3");
      assert(third.pid !== sb2, "a stale standby was handed over to");
      assert(!alive(sb2) || (await new Promise((r) => setTimeout(r, 300)), !alive(sb2)));
      const why = out.filter((l) =>
        l.includes("cold start: lib/util.js changed and the standby had loaded it")
      );
      assertEquals(why.length, 1, out.join("\n"));
      console.log(`warm handover ${Math.round(handover)} ms, cold restart ${Math.round(cold)} ms`);
    } finally {
      await loop.stop();
    }
    // nothing is left: neither the service nor a standby
    const left = Deno.readTextFileSync(`${dir}/loads.log`).split("\n").filter(Boolean)
      .map((l) => Number(l.split(" ")[0])).filter(alive);
    assertEquals(left, []);
  },
);

testIf(NEEDS, "warm: a service that is not `node …` restarts cold, saying why once", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const port = freePort();
  project(dir, port);
  const spec = warmWeb(dir, port, `sh -c "exec ${NODE}"`);
  const { loop, out } = await startLoop(spec, st.path);
  try {
    await waitFor(async () => (await ask(port))?.msg === "msg-1", "the first answer");
    for (const n of [2, 3]) {
      await editMsg(loop, dir, port, `msg-${n}`, `answer ${n}`);
    }
    assertEquals(loop.supervisor.standbyPid("web"), null);
    const why = out.filter((l) => l.includes("cold start: the command is not `node …` (sh)"));
    assertEquals(why.length, 1, out.join("\n"));
  } finally {
    await loop.stop();
  }
});

testIf(NEEDS, "warm: a standby that died is not handed over to; the next one is", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const port = freePort();
  project(dir, port);
  const spec = warmWeb(dir, port, NODE);
  const { loop, out } = await startLoop(spec, st.path);
  try {
    await waitFor(() => loop.supervisor.standbyPid("web") !== null, "a standby");
    const dead = loop.supervisor.standbyPid("web")!;
    Deno.kill(dead, "SIGKILL"); // the standby this test's loop started
    await waitFor(() => loop.supervisor.standbyPid("web") === null, "the standby's death seen");
    await editMsg(loop, dir, port, "msg-2", "the cold answer");
    assert((await ask(port))!.pid !== dead);
    assertEquals(out.filter((l) => l.includes("cold start: the standby died")).length, 1);
    // a fresh standby after that start, and the next edit is warm again
    await waitFor(() => (loop.supervisor.status()[0].standby ?? null) !== null, "a new standby");
    const next = loop.supervisor.standbyPid("web")!;
    await editMsg(loop, dir, port, "msg-3", "the warm answer");
    assertEquals((await ask(port))!.pid, next);
  } finally {
    await loop.stop();
  }
});

testIf(NEEDS, "warm: a standby made stale by an unwatched edit is replaced at once", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const port = freePort();
  project(dir, port);
  const spec = warmWeb(dir, port, NODE);
  const { loop, out } = await startLoop(spec, st.path);
  try {
    const ready = () => loop.supervisor.status()[0].standby ?? null;
    await waitFor(() => ready() !== null, "a standby");
    const first = ready()!;
    const running = (await ask(port))!.pid;
    // lib/util.js is not watched: web keeps running, its standby (which loaded it) is replaced
    Deno.writeTextFileSync(`${dir}/lib/util.js`, 'module.exports = "util-2";\n');
    const r = await loop.update(["lib/util.js"]);
    assertEquals(r?.restarted, []);
    assert(
      out.some((l) => l.includes("standby replaced: lib/util.js changed and the standby had")),
      out.join("\n"),
    );
    await waitFor(() => ready() !== null && ready() !== first, "the replacement standby");
    const second = ready()!;
    await waitFor(() => !alive(first), "the stale standby gone");
    assertEquals((await ask(port))!.pid, running);
    // the next edit is warm, and serves the new util
    await editMsg(loop, dir, port, "msg-2", "the edited answer");
    const a = (await ask(port))!;
    assertEquals([a.pid, a.util], [second, "util-2"]);
  } finally {
    await loop.stop();
  }
});

testIf(NEEDS, "warm: replacing standbys again and again leaks no descriptor of hd's", async () => {
  using tmp = tempDir();
  using st = tempDir();
  const dir = tmp.path;
  const port = freePort();
  Deno.mkdirSync(`${dir}/lib`);
  Deno.writeTextFileSync(`${dir}/lib/u.js`, "module.exports = 0;\n");
  Deno.writeTextFileSync(
    `${dir}/app.js`,
    `require("./lib/u");\nrequire("http").createServer((_q, r) => r.end("x")).listen(${port}, "127.0.0.1");\n`,
  );
  const spec = envSpec(dir, {
    services: { web: svc("web", "node app.js", { watch: ["app.js"], port, reload: "warm" }) },
  });
  const { loop } = await startLoop(spec, st.path);
  try {
    const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
    const ready = () => loop.supervisor.status()[0].standby ?? null;
    await waitFor(() => ready() !== null, "a standby");
    const before = fds();
    for (let i = 1; i <= 6; i++) {
      const old = ready();
      Deno.writeTextFileSync(`${dir}/lib/u.js`, `module.exports = ${i};\n`);
      await loop.update(["lib/u.js"]);
      await waitFor(() => ready() !== null && ready() !== old && !alive(old!), `standby ${i}`);
    }
    assertEquals(fds(), before, "descriptors of hd after 6 standbys were replaced");
  } finally {
    await loop.stop();
  }
});

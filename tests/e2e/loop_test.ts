/**
 * End to end: the inner loop on examples/loop (api and web, web depends on api; a cached
 * `npm ci` step keyed by package.json + package-lock.json), driven through the real CLI.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { downAtEnd, hd, REPO, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { groupMembers } from "../../src/sys/proc.ts";
import { freePort, waitFor } from "../services/_util.ts";

const NEEDS = skipUnless({ commands: ["node", "npm", "setsid"] });

interface Svc {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
  ready: boolean | null;
}

testIf(NEEDS, "e2e: up, edit watched/unwatched/lock files, kill a service, down", async () => {
  using tmp = tempDir();
  using store = tempDir();
  const dir = `${tmp.path}/loop`;
  Deno.mkdirSync(dir);
  for (const e of Deno.readDirSync(`${REPO}/examples/loop`)) {
    if (e.name === "node_modules" || e.name === ".hd") continue;
    await new Deno.Command("cp", { args: ["-r", `${REPO}/examples/loop/${e.name}`, dir] }).output();
  }
  const [apiPort, webPort] = [freePort(), freePort()];
  const toml = Deno.readTextFileSync(`${dir}/hd.toml`).replaceAll("18081", String(apiPort))
    .replaceAll("18082", String(webPort));
  Deno.writeTextFileSync(`${dir}/hd.toml`, toml);
  const opts = { cwd: dir, store: store.path };
  await using _down = downAtEnd(opts);
  const status = async () => {
    const r = await hd(["status", "--json"], opts);
    assertEquals(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).up;
  };
  const pids = (up: { services: Svc[] }) =>
    Object.fromEntries(up.services.map((s) => [s.name, s.pid]));
  const web = async () => (await (await fetch(`http://127.0.0.1:${webPort}/`)).text()).trim();
  const hdLog = () => Deno.readTextFileSync(`${dir}/.hd/logs/hd.log`);

  // up: steps run, services start in order, web answers through api
  const up = await hd(["up", "-d", "--json"], opts);
  assertEquals(up.code, 0, up.stderr + up.stdout);
  const s0 = JSON.parse(up.stdout);
  assertEquals(s0.steps.map((x: { state: string }) => x.state), ["ran"]);
  assertEquals(s0.services.map((x: Svc) => [x.name, x.state, x.ready]), [
    ["api", "running", true],
    ["web", "running", true],
  ]);
  assertEquals(await web(), "web v1 | api says: hello from api");
  const root0 = s0.root;

  // edit a file api watches: api restarts, then web (depends on api)
  Deno.writeTextFileSync(
    `${dir}/api/message.js`,
    'module.exports = { message: "edited api" };\n',
  );
  await waitFor(async () => (await status()).updates === 1, "update 1");
  let st = await status();
  const afterApi = pids(st);
  assert(afterApi.api !== s0.services[0].pid && afterApi.web !== s0.services[1].pid);
  assertEquals(st.lastUpdate.restarted, ["api", "web"]);
  assertEquals(st.lastUpdate.modified, ["api/message.js"]);
  assert(st.root !== root0);
  await waitFor(async () => (await status()).services.every((x: Svc) => x.ready), "ready");
  assertEquals(await web(), "web v1 | api says: edited api");

  // edit a file only web watches: api keeps its pid
  Deno.writeTextFileSync(
    `${dir}/web/page.js`,
    "module.exports = { render: (m) => `web v2 | api says: ${m}` };\n",
  );
  await waitFor(async () => (await status()).updates === 2, "update 2");
  st = await status();
  assertEquals(st.lastUpdate.restarted, ["web"]);
  assertEquals(pids(st).api, afterApi.api);
  await waitFor(async () => (await status()).services[1].ready, "web ready");
  assertEquals(await web(), "web v2 | api says: edited api");
  const stable = pids(await status());

  // edit a file nobody watches: root changes, nothing restarts
  const rootBefore = (await status()).root;
  Deno.writeTextFileSync(`${dir}/NOTES.md`, "# Notes\n\nedited\n");
  await waitFor(async () => (await status()).updates === 3, "update 3");
  st = await status();
  assert(st.root !== rootBefore);
  assertEquals(st.lastUpdate.restarted, []);
  assertEquals(st.lastUpdate.stepsRun, []);
  assertEquals(pids(st), stable);

  // edit package-lock.json: the install step re-runs (its declared input changed), and the
  // services restart after it on the new node_modules (a re-run step never leaves old processes)
  assertEquals(hdLog().split("step 1 running").length - 1, 1);
  Deno.writeTextFileSync(
    `${dir}/package-lock.json`,
    Deno.readTextFileSync(`${dir}/package-lock.json`) + "\n",
  );
  await waitFor(async () => (await status()).updates === 4, "update 4", 60_000);
  st = await status();
  assertEquals(st.lastUpdate.stepsRun, [0]);
  assertEquals(st.steps[0].state, "ran");
  assertEquals(hdLog().split("step 1 running").length - 1, 2);
  assertEquals(st.lastUpdate.restarted, ["api", "web"]);
  // web starts only once api is ready again: its pid may still be null at this point
  await waitFor(async () => (await status()).services.every((x: Svc) => x.ready), "ready again");
  const installed = pids(await status());
  assert(installed.api !== stable.api && installed.web !== stable.web, JSON.stringify(st));
  assert(installed.api !== null && installed.web !== null, JSON.stringify(installed));
  // Let the supervisor's deferred stat-cache save (1 s after an update) happen: a save sooner
  // than the racy window after the edit would (rightly) leave package-lock.json to be re-read.
  await new Promise((r) => setTimeout(r, 1300));

  // kill api: restart_policy "always" brings it back (web keeps running)
  Deno.kill(installed.api!, "SIGKILL");
  await waitFor(async () => {
    const x = (await status()).services[0];
    return x.state === "running" && x.ready && x.pid !== installed.api;
  }, "api restarted by policy");
  st = await status();
  assertEquals(st.services[0].restarts, 3); // one edit, the install, one death
  assertEquals(st.services[1].pid, installed.web);
  assertIncludes(
    Deno.readTextFileSync(`${dir}/.hd/logs/api.log`),
    "exited with code 137; restarting in 100 ms",
  );

  // down: nothing left
  const groups = st.services.map((x: Svc) => x.pid!);
  const down = await hd(["down"], opts);
  assertEquals(down.code, 0, down.stderr);
  for (const g of groups) assertEquals(groupMembers(g), []);
  assertEquals((await status()).running, false);

  // up again: the step is cached and the stat cache reads no file (once the last write is older
  // than the stat cache's racy window)
  await new Promise((r) => setTimeout(r, 1100));
  const up2 = await hd(["up", "-d", "--json"], opts);
  assertEquals(up2.code, 0, up2.stderr);
  assertEquals(JSON.parse(up2.stdout).steps[0].state, "cached");
  assertIncludes(hdLog(), "step 1 cached");
  assert(/root [0-9a-f]{64} {2}\(\d+ files, 0 read/.test(hdLog()), hdLog().slice(-600));
  assertEquals((await hd(["down"], opts)).code, 0);
});

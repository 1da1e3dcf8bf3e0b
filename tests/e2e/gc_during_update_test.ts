/**
 * End to end, issue 13 item 4 as it was reported: `hd up -d` with a chained build step running
 * after an edit, `hd cas gc` meanwhile. The edit's new tree and Env node are stored before the
 * step runs and reached by a ref only after it; the update's lease must keep them through the gc,
 * so that after `hd down` the store verifies clean and `trees/<env>` / `envs/<env>` resolve.
 */
import { assert, assertEquals } from "../_assert.ts";
import { downAtEnd, hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { waitFor } from "../services/_util.ts";
import { Store } from "../../src/cas/store.ts";
import { gatherServices } from "../../src/services/report.ts";

interface UpState {
  updates: number;
  root: string;
  files: string;
  lastUpdate: { stepsRun: number[]; stepsFailed: number[]; added: string[]; modified: string[] };
}

const NEEDS = skipUnless({ commands: ["setsid", "sh"] });

testIf(
  NEEDS,
  "e2e: hd cas gc while an edit's chained step runs keeps the new tree and Env",
  async () => {
    using tmp = tempDir();
    using store = tempDir();
    const dir = `${tmp.path}/proj`;
    const ctl = `${tmp.path}/ctl`; // outside the project: the step's control files are not tracked
    Deno.mkdirSync(dir);
    Deno.mkdirSync(ctl);
    // Chained (string form): re-runs on every edit. It says it runs, then waits (at most 30 s) for
    // the test to release it; a step that times out fails, so a lost race shows as a failed step.
    const step = `touch ${ctl}/running; i=0; ` +
      `while [ ! -e ${ctl}/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; ` +
      `[ -e ${ctl}/go ] || exit 3; rm -f ${ctl}/go ${ctl}/running; echo built > ${ctl}/built`;
    Deno.writeTextFileSync(
      `${dir}/hd.toml`,
      `[environment]
name = "gcrace"

[build]
steps = [${JSON.stringify(step)}]

[services.idle]
command = "sleep 600"

[options]
restart_grace = "1s"
debounce = "10ms"
`,
    );
    Deno.mkdirSync(`${dir}/src`);
    for (let i = 0; i < 20; i++) Deno.writeTextFileSync(`${dir}/src/f${i}.txt`, `file ${i}\n`);
    Deno.writeTextFileSync(`${dir}/main.txt`, "version 1\n");
    const opts = { cwd: dir, store: store.path };
    const status = async () => {
      const r = await hd(["status", "--json"], opts);
      assertEquals(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).up;
    };
    // the refs as the store holds them (read after `hd down`: nothing writes then)
    const resolve = (ref: string) => Store.open(store.path).getRef(ref);

    // the first run of the step passes at once
    Deno.writeTextFileSync(`${ctl}/go`, "");
    await using _down = downAtEnd(opts);
    const up = await hd(["up", "-d", "--json"], opts);
    assertEquals(up.code, 0, up.stderr + up.stdout);
    const s0 = JSON.parse(up.stdout);
    assertEquals(s0.steps.map((x: { state: string }) => x.state), ["ran"]);
    const root0: string = s0.root;

    // an edit: the loop stores the new tree and Env node, then runs the chained step, which blocks
    Deno.writeTextFileSync(`${dir}/main.txt`, "version 2, edited while a gc runs\n");
    Deno.writeTextFileSync(`${dir}/src/new.txt`, "a file only the new tree has\n");
    await waitFor(() => exists(`${ctl}/running`), "the step of the edit to run", 20_000);
    const mid = await status();
    assertEquals(mid.updates, 0, "the update is still in its step");

    // the real gc, while the step runs: nothing of the new tree is reachable from a ref yet
    const gc = await hd(["cas", "gc", "--json"], opts);
    assertEquals(gc.code, 0, gc.stderr);
    const g = JSON.parse(gc.stdout);

    // release the step; wait until the supervisor reports the new root. Asked over its control
    // socket (what `hd status` shows under "up"), not with `hd status` itself: that command
    // re-ingests the project into the store, which would put back what the gc took and hide the
    // hole this test is about.
    Deno.writeTextFileSync(`${ctl}/go`, "");
    const supervisor = async () => (await gatherServices(dir)) as unknown as UpState;
    await waitFor(async () => (await supervisor()).updates === 1, "the update to finish", 20_000);
    const st = await supervisor();
    assertEquals(st.lastUpdate.stepsRun, [0]);
    assertEquals(st.lastUpdate.stepsFailed, []);
    assert(st.root !== root0);
    assertEquals(st.lastUpdate.added, ["src/new.txt"]);
    assertEquals(st.lastUpdate.modified, ["main.txt"]);

    const down = await hd(["down"], opts);
    assertEquals(down.code, 0, down.stderr);

    // after down: the refs resolve to what the supervisor reported, and the store is whole
    assertEquals(resolve("envs/gcrace"), st.root);
    assertEquals(resolve("trees/gcrace"), st.files);
    const env = await hd(["cas", "cat", "--json", "envs/gcrace"], opts);
    assertEquals(env.code, 0, env.stderr);
    assertEquals(
      JSON.parse(env.stdout).children.find((c: { role: string }) => c.role === "files")?.id,
      st.files,
    );
    const verify = await hd(["cas", "verify"], opts);
    assertEquals(verify.code, 0, verify.stdout + verify.stderr);
    const cat = await hd(["cas", "cat", `${st.files}:src/new.txt`], opts);
    assertEquals(cat.code, 0, cat.stderr);
    assertEquals(cat.stdout, "a file only the new tree has\n");

    // and it was the update's lease that kept them
    assert(
      g.leases.some((l: { why: string }) => l.why === "hd up: update"),
      `the gc sees the update's lease: ${gc.stdout}`,
    );
    assert(g.keptByLeases > 0, `the lease kept the new tree's ids: ${gc.stdout}`);
  },
);

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

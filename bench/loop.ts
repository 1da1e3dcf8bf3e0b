/**
 * The inner loop, hd beside nodemon on the same Node.js HTTP app (examples/loop, its api service):
 *
 * - edit → answer: time from writing web/page.js to the restarted service answering HTTP with
 *   the new content, p50 and p95 over 20 edits (hd: `hd up -d`, web restarts, api keeps running;
 *   nodemon: `nodemon --watch web web/server.js`, its defaults, asking the same api). Edits
 *   alternate between the two so that a busy machine slows both alike;
 * - app start: the app alone, from spawn to answering HTTP (the floor both tools pay);
 * - no-change `hd up -d` (after `hd down`) until web answers through api, beside the same two
 *   `node` processes started by hand in dependency order (api, wait until it answers, then web):
 *   alternated A B A B, 15 rounds (3 with --quick), median, min–max and the load average; again
 *   with 10,000 more tracked files in the example (no service watches them), unchanged and with
 *   one of them edited in place while hd is down (1.2 s before the round: past the racy window).
 *   Each `hd down` leaves a spare supervisor (src/services/spare.ts), which the next round takes;
 *   the round waits until it listens, so that its start falls on neither side. Once more with
 *   `HD_SPARE_LINGER=0`: each `hd up -d` then starts its supervisor, as a first one of the day;
 * - unwatched edit → root: time from writing a file no service watches to the new root hash on
 *   hd's control socket (`git add -A && git write-tree` is shown as a reference that hashes the
 *   same tree without a watcher).
 *
 * nodemon is installed with `npm install nodemon` into ~/.cache/hd-bench/nodemon (once).
 * @module
 */
import {
  type Bench,
  type BenchRow,
  freePort,
  percentile,
  runAloneLines,
  sh,
  untilPortAnswer as untilAnswer,
} from "./lib.ts";
import { callControl } from "../src/services/control.ts";
import { jsonlRequest } from "../src/sys/jsonl.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const NODEMON_VERSION = "3.1.10";

async function copyExample(dest: string, apiPort: number, webPort: number): Promise<void> {
  Deno.mkdirSync(dest, { recursive: true });
  await sh(`cp -r ${REPO}/examples/loop/. ${dest}/ && rm -rf ${dest}/node_modules ${dest}/.hd`);
  const toml = Deno.readTextFileSync(`${dest}/hd.toml`).replaceAll("18081", String(apiPort))
    .replaceAll("18082", String(webPort));
  Deno.writeTextFileSync(`${dest}/hd.toml`, toml);
  await sh("npm ci --offline --no-audit --no-fund >/dev/null 2>&1", { cwd: dest });
}

async function nodemonBin(log: (s: string) => void): Promise<string> {
  const home = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`;
  const dir = `${home}/hd-bench/nodemon`;
  const bin = `${dir}/node_modules/nodemon/bin/nodemon.js`;
  try {
    Deno.statSync(bin);
    return bin;
  } catch { /* install */ }
  log(`installing nodemon@${NODEMON_VERSION} into ${dir}`);
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(`${dir}/package.json`, '{"private":true}');
  await sh(`npm install --no-audit --no-fund nodemon@${NODEMON_VERSION} >/dev/null 2>&1`, {
    cwd: dir,
  });
  return bin;
}

/** The 1-minute load average, or null where /proc/loadavg cannot be read. */
function loadavg(): number | null {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return null;
  }
}

/** HD_TRACE labels → the phase names reported (the first line of each, ms after the round's start). */
const PHASES: [RegExp, string][] = [
  [/^early: supervisor spawned$/, "supervisorSpawned"],
  [/^early: the spare goes on as the supervisor$/, "spareTaken"], // src/services/spare.ts
  [/^early services: spawned api$/, "apiStartedEarly"], // src/services/prespawn.ts
  [/^main up --supervise/, "supervisorMain"],
  [/^serve: session open$/, "sessionOpen"],
  [/^compile: the tree from the proof/, "treeFromProof"], // src/env/compile.ts
  [/^loop: env compiled$/, "envCompiled"],
  [/^supervisor: spawned api$/, "apiSpawned"],
  [/^supervisor: api ready$/, "apiReady"],
  [/^supervisor: spawned web$/, "webSpawned"],
  [/^supervisor: web ready$/, "webReady"],
  [/^exit$/, "cliExit"],
];

/** The phases of one traced `hd up -d` (ms after `t0`, an epoch time) from HD_TRACE's file. */
function tracePhases(file: string, t0: number): Record<string, number> {
  const out: Record<string, number> = {};
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^(\d+\.\d+) \d+ (.*)$/.exec(line);
    if (!m) continue;
    for (const [re, name] of PHASES) {
      if (re.test(m[2]) && out[name] === undefined) out[name] = Number(m[1]) - t0;
    }
  }
  return out;
}

function writePage(dir: string, tag: string): void {
  Deno.writeTextFileSync(
    `${dir}/web/page.js`,
    `module.exports = { render: (m) => \`web ${tag} | api says: \${m}\` };\n`,
  );
}

function spawnGroup(cmd: string[], cwd: string, env: Record<string, string>) {
  return new Deno.Command("setsid", {
    args: cmd,
    cwd,
    env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch { /* gone */ }
}

async function editLoop(
  dir: string,
  port: number,
  n: number,
  tag: string,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const needle = `${tag}-${i}-${Math.random().toString(36).slice(2, 8)}`;
    const t0 = performance.now();
    writePage(dir, needle);
    times.push(await untilAnswer(port, needle, t0));
    await new Promise((r) => setTimeout(r, 250)); // let dependents settle
  }
  return times;
}

/** What {@link upRounds} is given. */
interface UpRounds {
  workDir: string;
  quick: boolean;
  log: (s: string) => void;
  row: (
    c: string,
    tool: string,
    value: number,
    unit?: string,
    extra?: Record<string, unknown>,
  ) => void;
  /** Directory and store names under `workDir`. */
  name: string;
  /** Tracked files added to the example (in `extra/`, watched by no service). */
  extraFiles?: number;
  /** Edit one of them in place before each round of hd (1.2 s before: past the racy window). */
  edit?: boolean;
  /**
   * False: no spare supervisor (`HD_SPARE_LINGER=0`), each `hd up -d` starts its supervisor as a
   * first up of the day does. Default true: `hd down` leaves a spare, which the next round takes.
   */
  spare?: boolean;
}

/** The case name of an {@link upRounds} run. */
function upCase(o: UpRounds): string {
  if (o.spare === false) return "no-change up -d, no spare supervisor → both answer, median";
  if (!o.extraFiles) return "no-change up -d → both services answer, median";
  const more = `${o.extraFiles.toLocaleString("en")} more files`;
  return o.edit
    ? `up -d after one file edited, ${more} → both answer, median`
    : `no-change up -d, ${more} → both answer, median`;
}

/**
 * `hd up -d` (after `hd down`) until web answers through api, beside the same two `node`
 * processes started by hand in dependency order, alternated, on a copy of examples/loop.
 */
export async function upRounds(o: UpRounds): Promise<void> {
  const { workDir, quick, log, row } = o;
  const upStore = `${workDir}/${o.name}-store`;
  const upDir = `${workDir}/${o.name}`;
  const [aPort, wPort] = [freePort(), freePort()];
  await copyExample(upDir, aPort, wPort);
  for (let i = 0; i < (o.extraFiles ?? 0); i++) {
    const sub = `${upDir}/extra/m${i % 50}/d${i % 7}`;
    if (i < 350) Deno.mkdirSync(sub, { recursive: true });
    Deno.writeTextFileSync(`${sub}/f${i}.js`, `// file ${i}\nexport const v${i} = ${i};\n`);
  }
  // (bench/run.ts sets HD_SPARE_LINGER=0 for every other bench)
  const linger = `HD_SPARE_LINGER=${o.spare === false ? 0 : 300} `;
  const hdSh = (cmd: string, env = "") =>
    sh(`${env}${linger}HD_HOME=${upStore} deno run -A --quiet ${REPO}/cli.ts ${cmd} >/dev/null`, {
      cwd: upDir,
    });
  // after `hd down`: until the spare it leaves listens (its start is not left to fall on the
  // next round, of either side); its RSS then, in MiB
  const spareRss: number[] = [];
  const settle = async () => {
    for (let i = 0; o.spare !== false && i < 100; i++) {
      const r = await jsonlRequest(`${upDir}/.hd/spare.sock`, { op: "ping" }, {
        replyTimeoutMs: 1000,
      }).catch(() => null) as { pid?: number } | null;
      if (r?.pid) {
        const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${r.pid}/status`));
        if (m) spareRss.push(Number(m[1]) / 1024);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  // where hd's time goes: HD_TRACE's timeline of each round (a few appended lines: the
  // overhead falls on hd's side only)
  const traceFile = `${workDir}/${o.name}-trace.txt`;
  const phases: Record<string, number[]> = {};
  // first up: runs npm ci, records the step (traced as the rounds are: the spare it leaves is
  // started with the same variables)
  await hdSh("up -d", `HD_TRACE=${traceFile} `);
  await hdSh("down", `HD_TRACE=${traceFile} `);
  await settle();
  const env = {
    PATH: Deno.env.get("PATH")!,
    API_PORT: String(aPort),
    WEB_PORT: String(wPort),
    GREETING: "hello",
  };
  const hdUps: number[] = [];
  const hand: number[] = [];
  const load0 = loadavg();
  // 15 rounds: on this machine a round of either side is now and then ~40% slower (both
  // node starts at once), and with 7 rounds the median ratio swung from 1.4x to 1.8x
  for (let i = 0; i < (quick ? 3 : 15); i++) {
    const pair = [
      async () => {
        if (o.edit) {
          const f = `${upDir}/extra/m${i % 50}/d${i % 7}/f${i}.js`;
          Deno.writeTextFileSync(f, `// edited ${i}\n`, { append: true });
          await new Promise((r) => setTimeout(r, 1200));
        }
        const t0 = performance.now();
        Deno.writeTextFileSync(traceFile, "");
        await hdSh("up -d", `HD_TRACE=${traceFile} `);
        hdUps.push(await untilAnswer(wPort, "api says: hello", t0));
        for (
          const [k, v] of Object.entries(tracePhases(traceFile, performance.timeOrigin + t0))
        ) {
          (phases[k] ??= []).push(v);
        }
        await hdSh("down", `HD_TRACE=${traceFile} `); // the spare it leaves: as the next up
        await settle();
      },
      async () => {
        const t0 = performance.now();
        const api = spawnGroup(["node", "api/server.js"], upDir, env);
        await untilAnswer(aPort, "hello", t0);
        const web = spawnGroup(["node", "web/server.js"], upDir, env);
        hand.push(await untilAnswer(wPort, "api says: hello", t0));
        for (const p of [web, api]) (killGroup(p.pid), await p.status);
      },
    ];
    if (i % 2) pair.reverse();
    for (const f of pair) await f();
  }
  await hdSh("down"); // nothing runs: stops the spare the last round left
  const load = { loadavg: [load0, loadavg()] };
  const range = (xs: number[]) => ({
    min: Math.round(Math.min(...xs)),
    max: Math.round(Math.max(...xs)),
    samples: xs.map(Math.round),
    rounds: xs.length,
    ...load,
  });
  const c = upCase(o);
  row(c, "hd", percentile(hdUps, 50), "ms", {
    ...range(hdUps),
    ...(o.extraFiles ? { extraFiles: o.extraFiles, edited: o.edit ?? false } : {}),
    // rounds whose api started before the session loaded (the first rounds save the proof)
    earlyRounds: phases.apiStartedEarly?.length ?? 0,
    // rounds whose session took its tree from the proof instead of a scan
    proofRounds: phases.treeFromProof?.length ?? 0,
    // rounds whose supervisor was the spare the last `hd down` left, and its RSS while it waited
    spareRounds: phases.spareTaken?.length ?? 0,
    ...(spareRss.length ? { spareRssMiB: Math.round(percentile(spareRss, 50)) } : {}),
    phasesMedianMs: Object.fromEntries(
      Object.entries(phases).map(([k, v]) => [k, Math.round(percentile(v, 50))]),
    ),
  });
  row(c, "by hand", percentile(hand, 50), "ms", { ...range(hand) });
  log(
    `${o.name}: hd ${hdUps.map(Math.round).join(" ")}; by hand ${
      hand.map(Math.round).join(" ")
    }; load ${load.loadavg.join(" → ")}; hd phases (median ms): ${
      Object.entries(phases).map(([k, v]) => `${k} ${Math.round(percentile(v, 50))}`).join(", ")
    }`,
  );
}

/** The loop bench. */
export const bench: Bench = {
  name: "loop",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const n = quick ? 5 : 20;
    const row = (c: string, tool: string, value: number, unit = "ms", extra = {}) =>
      rows.push({ bench: "loop", case: c, tool, value: Math.round(value * 10) / 10, unit, extra });

    // the app's own start time
    const startPort = freePort();
    const plain = `${workDir}/plain`;
    await copyExample(plain, startPort, freePort());
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const p = spawnGroup(["node", "web/server.js"], plain, {
        PATH: Deno.env.get("PATH")!,
        WEB_PORT: String(startPort),
      });
      starts.push(await untilAnswer(startPort, "api says", t0));
      killGroup(p.pid);
      await p.status;
    }
    row("app start (node web/server.js → HTTP), p50", "node", percentile(starts, 50));

    // no-change `hd up -d` until both answer, beside starting the two processes by hand: the
    // example as it is, then with 10,000 more tracked files (no service watches them), unchanged
    // and with one of them edited in place while hd is down
    await upRounds({ workDir, quick, log, row, name: "up" });
    await upRounds({ workDir, quick, log, row, name: "up-no-spare", spare: false });
    await upRounds({ workDir, quick, log, row, name: "up-10k", extraFiles: 10_000 });
    await upRounds({
      workDir,
      quick,
      log,
      row,
      name: "up-10k-edit",
      extraFiles: 10_000,
      edit: true,
    });

    // hd and nodemon run side by side; edits alternate between them so that the noise of a
    // shared machine falls on both alike
    const store = `${workDir}/store`;
    const hdDir = `${workDir}/hd`;
    const [apiPort, webPort] = [freePort(), freePort()];
    await copyExample(hdDir, apiPort, webPort);
    const bin = await nodemonBin(log);
    const nmDir = `${workDir}/nodemon`;
    const nmPort = freePort();
    await copyExample(nmDir, nmPort, freePort());
    await sh(`HD_HOME=${store} deno run -A --quiet ${REPO}/cli.ts up -d >/dev/null`, {
      cwd: hdDir,
    });
    const nm = spawnGroup(["node", bin, "--watch", "web", "web/server.js"], nmDir, {
      PATH: Deno.env.get("PATH")!,
      WEB_PORT: String(nmPort),
      API_PORT: String(apiPort), // hd's api: both webs ask the same one
      HOME: Deno.env.get("HOME") ?? "/root",
    });
    try {
      await untilAnswer(webPort, "api says", performance.now());
      await untilAnswer(nmPort, "api says", performance.now());
      const hdTimes: number[] = [];
      const nmTimes: number[] = [];
      for (let i = 0; i < n; i++) {
        const pair = [
          async () => hdTimes.push(...await editLoop(hdDir, webPort, 1, `hd${i}`)),
          async () => nmTimes.push(...await editLoop(nmDir, nmPort, 1, `nm${i}`)),
        ];
        if (i % 2) pair.reverse();
        for (const f of pair) await f();
      }
      row("edit → restarted service answers, p50", "hd", percentile(hdTimes, 50), "ms", { n });
      row("edit → restarted service answers, p95", "hd", percentile(hdTimes, 95), "ms", { n });
      row("edit → restarted service answers, p50", "nodemon", percentile(nmTimes, 50), "ms", { n });
      row("edit → restarted service answers, p95", "nodemon", percentile(nmTimes, 95), "ms", { n });
      log(`hd edit→answer: ${hdTimes.map((t) => Math.round(t)).join(" ")}`);
      log(`nodemon edit→answer: ${nmTimes.map((t) => Math.round(t)).join(" ")}`);

      // unwatched file → new root hash on the control socket
      const sock = `${hdDir}/.hd/control.sock`;
      const rootTimes: number[] = [];
      for (let i = 0; i < n; i++) {
        const before = (await callControl(sock, { op: "status" })).root;
        const t0 = performance.now();
        Deno.writeTextFileSync(`${hdDir}/NOTES.md`, `# Notes\n\nedit ${i} ${Math.random()}\n`);
        while (true) {
          const r = (await callControl(sock, { op: "status" })).root;
          if (r !== before) break;
          if (performance.now() - t0 > 10_000) throw new Error("root did not change");
          await new Promise((r) => setTimeout(r, 2));
        }
        rootTimes.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 100));
      }
      row("unwatched edit → new root hash, p50", "hd", percentile(rootTimes, 50), "ms", { n });
      row("unwatched edit → new root hash, p95", "hd", percentile(rootTimes, 95), "ms", { n });
    } finally {
      killGroup(nm.pid);
      await nm.status;
      await sh(`HD_HOME=${store} deno run -A --quiet ${REPO}/cli.ts down >/dev/null`, {
        cwd: hdDir,
      }).catch(() => {});
    }

    // git as a reference for hashing the tree after an edit (no watcher, no services)
    await sh(
      "git init -q . && git add -A && git -c user.email=b@h -c user.name=b commit -qm x",
      { cwd: plain },
    );
    const gitTimes: number[] = [];
    for (let i = 0; i < n; i++) {
      Deno.writeTextFileSync(`${plain}/NOTES.md`, `# Notes\n\nedit ${i} ${Math.random()}\n`);
      const t0 = performance.now();
      await sh("git add -A && git write-tree >/dev/null", { cwd: plain });
      gitTimes.push(performance.now() - t0);
    }
    row("unwatched edit → new root hash, p50", "git add+write-tree", percentile(gitTimes, 50));
    return rows;
  },
};

if (import.meta.main) await runAloneLines(bench, "hd-bench-loop-", 20);

/**
 * Warm restarts beside plain ones and nodemon, on examples/node-app (an Express app whose start is
 * dominated by `require`) run on the host:
 *
 * - edit → answer: time from writing src/message.js to the app answering HTTP with the new text,
 *   p50 and p95 over 20 edits (10 with --quick), for `hd up -d` with `reload = "warm"`, `hd up -d`
 *   with a plain restart, and `nodemon --watch src src/server.js` (its defaults). The three run at
 *   once and their edits rotate (A B C, B C A, …) so that a busy machine slows each alike;
 * - how many of hd's warm edits were handed over to a standby (from the service's log);
 * - app start: `node src/server.js` alone, spawn → HTTP (the floor a cold restart pays).
 *
 * Express 4 is installed with npm into ~/.cache/hd-bench/express (once) and found through
 * NODE_PATH — the image of examples/node-app gets it from Debian's node-express the same way.
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

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function cacheDir(name: string, pkgs: string, log: (s: string) => void): Promise<string> {
  const home = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`;
  const dir = `${home}/hd-bench/${name}`;
  try {
    Deno.statSync(`${dir}/node_modules/${name}/package.json`);
    return `${dir}/node_modules`;
  } catch { /* install */ }
  log(`installing ${pkgs} into ${dir}`);
  Deno.mkdirSync(dir, { recursive: true });
  Deno.writeTextFileSync(`${dir}/package.json`, '{"private":true}');
  await sh(`npm install --no-audit --no-fund ${pkgs} >/dev/null 2>&1`, { cwd: dir });
  return `${dir}/node_modules`;
}

/** examples/node-app copied to `dest`, its hd.toml made a host one on `port`. */
async function copyApp(
  dest: string,
  o: { name: string; port: number; nodePath: string; warm: boolean },
): Promise<void> {
  Deno.mkdirSync(dest, { recursive: true });
  await sh(`cp -r ${REPO}/examples/node-app/. ${dest}/ && rm -rf ${dest}/node_modules ${dest}/.hd`);
  let toml = Deno.readTextFileSync(`${dest}/hd.toml`)
    .replace(/^base = .*\n/m, "")
    .replace('name = "node-app"', `name = "${o.name}"`)
    .replace('PORT = "3000"', `PORT = "${o.port}", NODE_PATH = "${o.nodePath}"`)
    .replace("port = 3000", `port = ${o.port}`);
  if (o.warm) toml = toml.replace('restart_policy = "on_failure"', 'reload = "warm"');
  Deno.writeTextFileSync(`${dest}/hd.toml`, toml);
  await sh("npm ci --offline --no-audit --no-fund >/dev/null 2>&1 && node build.js >/dev/null", {
    cwd: dest,
  });
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

/** One edit of src/message.js; the ms until the app answers with it. */
async function edit(dir: string, port: number, tag: string): Promise<number> {
  const needle = `${tag}-${Math.random().toString(36).slice(2, 8)}`;
  const t0 = performance.now();
  Deno.writeTextFileSync(`${dir}/src/message.js`, `module.exports = "hello ${needle}";\n`);
  const ms = await untilAnswer(port, needle, t0);
  await new Promise((r) => setTimeout(r, 250)); // let the tool settle (a standby start, …)
  return ms;
}

/** The warm restart bench. */
export const bench: Bench = {
  name: "warm",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const n = quick ? 10 : 20;
    const row = (c: string, tool: string, value: number, unit = "ms", extra = {}) =>
      rows.push({
        bench: "warm",
        case: c,
        tool,
        value: unit === "x" ? Math.round(value * 100) / 100 : Math.round(value * 10) / 10,
        unit,
        extra,
      });
    const nodePath = await cacheDir("express", "express@4", log);
    const nodemon = `${await cacheDir("nodemon", "nodemon@3.1.10", log)}/nodemon/bin/nodemon.js`;
    const env = {
      PATH: Deno.env.get("PATH")!,
      HOME: Deno.env.get("HOME") ?? "/root",
      NODE_PATH: nodePath,
    };

    // the app alone: the floor of a cold restart
    const plainPort = freePort();
    const plainDir = `${workDir}/alone`;
    await copyApp(plainDir, { name: "alone", port: plainPort, nodePath, warm: false });
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const p = spawnGroup(["node", "src/server.js"], plainDir, { ...env, PORT: `${plainPort}` });
      starts.push(await untilAnswer(plainPort, "hello", t0));
      killGroup(p.pid);
      await p.status;
    }
    row("app start (node src/server.js → HTTP), p50", "node", percentile(starts, 50));

    const store = `${workDir}/store`;
    const tools = [
      {
        tool: "hd warm",
        dir: `${workDir}/warm`,
        port: freePort(),
        warm: true,
        times: [] as number[],
      },
      { tool: "hd", dir: `${workDir}/plain`, port: freePort(), warm: false, times: [] as number[] },
      {
        tool: "nodemon",
        dir: `${workDir}/nodemon`,
        port: freePort(),
        warm: false,
        times: [] as number[],
      },
    ];
    for (const t of tools) {
      await copyApp(t.dir, {
        name: `na-${t.tool.replace(" ", "-")}`,
        port: t.port,
        nodePath,
        warm: t.warm,
      });
    }
    const hd = (dir: string, cmd: string) =>
      sh(`HD_HOME=${store} deno run -A --quiet ${REPO}/cli.ts ${cmd} >/dev/null`, { cwd: dir });
    await hd(tools[0].dir, "up -d");
    await hd(tools[1].dir, "up -d");
    const nm = spawnGroup(["node", nodemon, "--watch", "src", "src/server.js"], tools[2].dir, {
      ...env,
      PORT: String(tools[2].port),
    });
    try {
      for (const t of tools) await untilAnswer(t.port, "hello", performance.now());
      await new Promise((r) => setTimeout(r, 500)); // hd's first standby
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < tools.length; k++) {
          const t = tools[(i + k) % tools.length];
          t.times.push(await edit(t.dir, t.port, `${t.tool.replace(" ", "")}${i}`));
        }
      }
      for (const t of tools) {
        row("edit → restarted app answers, p50", t.tool, percentile(t.times, 50), "ms", { n });
        row("edit → restarted app answers, p95", t.tool, percentile(t.times, 95), "ms", { n });
        log(`${t.tool} edit→answer: ${t.times.map((x) => Math.round(x)).join(" ")}`);
      }
      const nmP50 = percentile(tools[2].times, 50);
      row(
        "edit → answer p50, hd warm / nodemon",
        "hd warm",
        percentile(tools[0].times, 50) / nmP50,
        "x",
      );
      row(
        "edit → answer p95, hd warm / nodemon",
        "hd warm",
        percentile(tools[0].times, 95) / percentile(tools[2].times, 95),
        "x",
      );
      const logText = Deno.readTextFileSync(`${tools[0].dir}/.hd/logs/web.log`);
      const warmStarts = logText.split("\n").filter((l) => l.includes("warm: its standby")).length;
      row("warm handovers among the edits", "hd warm", warmStarts, "count", { n });
      for (const l of logText.split("\n").filter((l) => l.includes("cold start:"))) log(l);
    } finally {
      killGroup(nm.pid);
      await nm.status;
      for (const t of tools.slice(0, 2)) await hd(t.dir, "down").catch(() => {});
    }
    return rows;
  },
};

if (import.meta.main) await runAloneLines(bench, "hd-bench-warm-", 10);

/**
 * `hd ingest` beside podman, in one run on one naive-order Node project (its Dockerfile copies the
 * whole tree before `npm ci`) and one image (the Debian + Node image of bench/sandbox.ts, pushed to
 * a docker-registry on 127.0.0.1):
 *
 * - `hd ingest` (Dockerfile → hd.toml, CLI wall time);
 * - cold `hd up -d` → answering (podman: pull + `COPY . .` + `npm ci`, the image built);
 * - edit a source file → the service answers the change, `npm ci` not re-run (median of N;
 *   podman: the same Dockerfile rebuilt, and its naive order re-runs `npm ci` every time);
 * - edit package-lock.json → `npm ci` re-runs → the service answers from the new node_modules
 *   (podman: rebuilt).
 *
 * The server answers its message and the version that `npm ci` wrote to
 * node_modules/.package-lock.json, so a lockfile answer proves the install ran again. podman's
 * containers cannot start on this machine (crun cannot set rlimits): its rows are image builds
 * with `--isolation chroot`, the container's start not included.
 * @module
 */
import { type Bench, type BenchRow, median, runAloneTable, sh } from "./lib.ts";
import {
  freePort,
  hasPodman,
  hdCmd,
  hdDown,
  nodeImage,
  podmanBuilds,
  podmanRmi,
  REPO,
  untilAnswer,
} from "./_image.ts";

/** Writes the naive-order project into `dir`: Dockerfile, package files, .npmrc, server. */
function writeProject(dir: string, ref: string, port: number): void {
  Deno.mkdirSync(dir, { recursive: true });
  const w = (f: string, s: string) => Deno.writeTextFileSync(`${dir}/${f}`, s);
  w(
    "Dockerfile",
    `FROM ${ref}\nWORKDIR /app\nCOPY . .\nRUN npm ci\nEXPOSE ${port}\nCMD ["node", "server.js"]\n`,
  );
  const dep = { banner: "file:vendor/banner" };
  w(
    "package.json",
    JSON.stringify({ name: "naive", version: "1.0.0", private: true, dependencies: dep }, null, 2) +
      "\n",
  );
  w(
    "package-lock.json",
    JSON.stringify(
      {
        name: "naive",
        version: "1.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: {
          "": { name: "naive", version: "1.0.0", dependencies: dep },
          "node_modules/banner": { resolved: "vendor/banner", link: true },
          "vendor/banner": { version: "1.0.0", license: "MIT" },
        },
      },
      null,
      2,
    ) + "\n",
  );
  w(".npmrc", "offline=true\naudit=false\nfund=false\nupdate-notifier=false\n");
  w(".dockerignore", "node_modules\n*.log\n");
  w("message.js", 'module.exports = "v0";\n');
  w(
    "server.js",
    `const fs = require("fs");\nconst http = require("http");\n` +
      `const lock = () => JSON.parse(fs.readFileSync(__dirname + ` +
      `"/node_modules/.package-lock.json", "utf8")).version;\n` +
      `http.createServer((q, s) => s.end(require("./message.js") + " lock=" + lock() + "\\n"))` +
      `.listen(${port}, "127.0.0.1");\n`,
  );
}

/** Bumps the root version in package-lock.json (what `npm ci` copies to its hidden lockfile). */
function bumpLock(dir: string, version: string): void {
  const p = `${dir}/package-lock.json`;
  const lock = JSON.parse(Deno.readTextFileSync(p));
  lock.version = version;
  lock.packages[""].version = version;
  Deno.writeTextFileSync(p, JSON.stringify(lock, null, 2) + "\n");
}

const count = (s: string, part: string) => s.split(part).length - 1;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const bench: Bench = {
  name: "ingest",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const dir = `${workDir}/ingest`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}`);
    const img = await nodeImage(dir);
    if ("skip" in img) {
      log(`ingest: skipped: ${img.skip}`);
      return rows;
    }
    const { ref, reg, extra } = img;
    const edits = quick ? 2 : 5;
    const row = (c: string, tool: string, value: number, x?: Record<string, unknown>) => {
      rows.push({ bench: "ingest", case: c, tool, value, unit: "ms", extra: x });
      log(`${tool} ${c}: ${value.toFixed(0)} ms${x?.samples ? ` (${x.samples})` : ""}`);
    };
    try {
      // ---- hd: ingest the Dockerfile, then run the environment
      const app = `${dir}/hd-app`;
      const port = freePort();
      writeProject(app, ref, port);
      await sh(`cp -r ${REPO}/examples/node-app/vendor ${app}/vendor`);
      const store = `${dir}/store`;
      const ingests: number[] = [];
      for (let i = 0; i < 3; i++) {
        ingests.push(await hdCmd(i ? ["ingest", "--force"] : ["ingest"], app, store));
      }
      const toml = Deno.readTextFileSync(`${app}/hd.toml`);
      const keyed = `inputs = ["package.json", "package-lock.json", ".npmrc"]`;
      if (!toml.includes(keyed)) {
        throw new Error(`hd ingest did not key npm ci by ${keyed}:\n${toml}`);
      }
      row("hd ingest (Dockerfile → hd.toml, CLI)", "hd", median(ingests), {
        samples: ingests.map(Math.round),
      });
      // react as fast as the other benches do (examples/node-app sets the same)
      Deno.writeTextFileSync(`${app}/hd.toml`, toml + '\n[options]\ndebounce = "10ms"\n');
      const url = `http://127.0.0.1:${port}/`;
      const hdLog = () => Deno.readTextFileSync(`${app}/.hd/logs/hd.log`);
      const npmRuns = () => count(hdLog(), "step 1 running");
      try {
        let t0 = performance.now();
        await hdCmd(["up", "-d"], app, store);
        row("cold up (pull, npm ci, answer)", "hd", await untilAnswer(url, "v0 lock=1.0.0", t0), {
          ...extra,
        });
        const ts: number[] = [];
        for (let i = 1; i <= edits; i++) {
          t0 = performance.now();
          Deno.writeTextFileSync(`${app}/message.js`, `module.exports = "v${i}";\n`);
          ts.push(await untilAnswer(url, `v${i} lock=1.0.0`, t0));
          await pause(300);
        }
        const runsAfterEdits = npmRuns();
        if (runsAfterEdits !== 1) {
          throw new Error(`npm ci ran ${runsAfterEdits} times:\n${hdLog()}`);
        }
        row("edit src → answer (median)", "hd", median(ts), {
          samples: ts.map(Math.round),
          npmCiRuns: runsAfterEdits - 1,
        });
        t0 = performance.now();
        bumpLock(app, "1.0.1");
        const lockMs = await untilAnswer(url, `lock=1.0.1`, t0);
        if (npmRuns() !== 2) throw new Error(`npm ci did not run again:\n${hdLog()}`);
        row("edit package-lock.json → npm ci → answer", "hd", lockMs, { npmCiRuns: 1 });
      } finally {
        await hdDown(app, store);
      }

      // ---- podman: the same Dockerfile, image builds
      if (!hasPodman()) {
        log("ingest: podman not installed (apt-get install podman); its rows are left out");
        return rows;
      }
      const papp = `${dir}/podman-app`;
      writeProject(papp, ref, port);
      await sh(`cp -r ${REPO}/examples/node-app/vendor ${papp}/vendor`);
      const tag = `localhost/hd-bench-ingest:${Date.now()}`;
      const note = "image build only (--isolation chroot); the container is not run";
      const podman = podmanBuilds(papp, tag, ref);
      try {
        await podmanRmi(ref);
        const cold = await podman.build();
        row("cold build (pull, npm ci)", "podman", cold.ms, { note });
        const nochange = await podman.build();
        row("no-change rebuild", "podman", nochange.ms, {
          note,
          cachedSteps: `${nochange.cached}/${nochange.steps}`,
        });
        const ts: number[] = [];
        const reran: number[] = [];
        for (let i = 1; i <= edits; i++) {
          Deno.writeTextFileSync(`${papp}/message.js`, `module.exports = "v${i}";\n`);
          const b = await podman.build();
          ts.push(b.ms);
          reran.push(b.steps - b.cached);
        }
        row("edit src → image rebuilt (median)", "podman", median(ts), {
          note,
          samples: ts.map(Math.round),
          stepsRerun: reran,
        });
        bumpLock(papp, "1.0.1");
        const lock = await podman.build();
        row("edit package-lock.json → image rebuilt", "podman", lock.ms, {
          note,
          stepsRerun: lock.steps - lock.cached,
        });
      } finally {
        await podman.remove();
      }
    } finally {
      await reg.stop();
    }
    return rows;
  },
};

if (import.meta.main) await runAloneTable(bench, "hd-bench-ingest-");

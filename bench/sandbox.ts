/**
 * Sandboxed environments, hd beside podman on examples/node-app (Express in a Debian image built
 * by debootstrap, pushed to a docker-registry on 127.0.0.1):
 *
 * - cold `hd up -d`: empty store → image pulled and materialized, `npm ci` and the build step run
 *   in the sandbox, the service answering (podman: pull + `podman build` + run, answering);
 * - no-change `hd up -d` after `hd down` (podman: `podman build` with every layer cached);
 * - edit src/message.js → the service answers with the change (podman: rebuild the image with a
 *   good Dockerfile order, replace the container, answer);
 * - edit package.json → reinstall (`npm ci` step reruns) → the service answers the new version.
 *
 * podman (when installed: `apt-get install podman`) is measured building the same app with a
 * good Dockerfile order; its containers cannot start on this machine (crun cannot set rlimits),
 * so its edit → answer figures from a kind machine are quoted in docs/sandbox.md.
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
import { busyboxRegistry } from "../tests/sandbox/_image.ts";

const DOCKERFILE = `FROM IMAGE
WORKDIR /app
COPY package.json package-lock.json ./
COPY vendor vendor
RUN npm ci --offline --no-audit --no-fund
COPY build.js ./
COPY public public
RUN node build.js
COPY src src
ENV NODE_ENV=development PORT=PORTNUM
CMD ["node", "src/server.js"]
`;

export const bench: Bench = {
  name: "sandbox",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const dir = `${workDir}/sandbox`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}`);
    const img = await nodeImage(dir);
    if ("skip" in img) {
      log(`sandbox: skipped: ${img.skip}`);
      return rows;
    }
    const { ref, reg, extra } = img;
    const edits = quick ? 2 : 5;
    try {
      // ---- hd
      const app = `${dir}/hd-app`;
      const port = freePort();
      await sh(`cp -r ${REPO}/examples/node-app ${app} && rm -rf ${app}/.hd ${app}/node_modules`);
      Deno.writeTextFileSync(
        `${app}/hd.toml`,
        Deno.readTextFileSync(`${app}/hd.toml`).replace("127.0.0.1:5000/hd-node:bookworm", ref)
          .replaceAll("3000", String(port)),
      );
      const store = `${dir}/store`;
      const url = `http://127.0.0.1:${port}`;
      try {
        let t0 = performance.now();
        await hdCmd(["up", "-d"], app, store);
        const cold = await untilAnswer(url, "hello", t0);
        rows.push({
          bench: "sandbox",
          case: "cold up (pull, npm ci, build, answer)",
          tool: "hd",
          value: cold,
          unit: "ms",
          extra,
        });
        log(`hd cold up: ${cold.toFixed(0)} ms`);
        await hdCmd(["down"], app, store);
        t0 = performance.now();
        const upMs = await hdCmd(["up", "-d"], app, store);
        const warm = await untilAnswer(url, "hello", t0);
        rows.push({
          bench: "sandbox",
          case: "no-change up (to answering)",
          tool: "hd",
          value: warm,
          unit: "ms",
          extra: { upCommandMs: upMs },
        });
        log(
          `hd no-change up: ${warm.toFixed(0)} ms (hd up -d returned after ${upMs.toFixed(0)} ms)`,
        );
        const ts: number[] = [];
        for (let i = 0; i < edits; i++) {
          const needle = `edit ${i} ${Date.now()}`;
          t0 = performance.now();
          Deno.writeTextFileSync(`${app}/src/message.js`, `module.exports = "${needle}";\n`);
          ts.push(await untilAnswer(url, needle, t0));
          await new Promise((r) => setTimeout(r, 300));
        }
        rows.push({
          bench: "sandbox",
          case: "edit src → answer (median)",
          tool: "hd",
          value: median(ts),
          unit: "ms",
          extra: { samples: ts.map(Math.round) },
        });
        log(
          `hd edit → answer: median ${median(ts).toFixed(0)} ms (${ts.map(Math.round).join(", ")})`,
        );
        const pkg = JSON.parse(Deno.readTextFileSync(`${app}/package.json`));
        pkg.version = "1.0.1";
        t0 = performance.now();
        Deno.writeTextFileSync(`${app}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
        const reinstall = await untilAnswer(`${url}/version`, "1.0.1", t0);
        rows.push({
          bench: "sandbox",
          case: "edit package.json → reinstall → answer",
          tool: "hd",
          value: reinstall,
          unit: "ms",
        });
        log(`hd package.json → answer: ${reinstall.toFixed(0)} ms`);
        await hdCmd(["down"], app, store);
        const execs: number[] = [];
        for (let i = 0; i < 3; i++) execs.push(await hdCmd(["exec", "true"], app, store));
        rows.push({
          bench: "sandbox",
          case: "hd exec true (mounted root)",
          tool: "hd",
          value: median(execs),
          unit: "ms",
        });
        log(`hd exec true: ${median(execs).toFixed(0)} ms`);
        // the app's own start in the sandbox: spawn → answering (what every restart pays)
        const aport = freePort();
        t0 = performance.now();
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--quiet",
            `${REPO}/cli.ts`,
            "exec",
            "--",
            "sh",
            "-c",
            `PORT=${aport} exec node src/server.js`,
          ],
          cwd: app,
          env: { HD_HOME: store, NO_COLOR: "1" },
          stdout: "null",
          stderr: "null",
        }).spawn();
        const appStart = await untilAnswer(`http://127.0.0.1:${aport}`, "**", t0);
        child.kill("SIGTERM");
        await child.status;
        rows.push({
          bench: "sandbox",
          case: "app start via hd exec (spawn → answer)",
          tool: "hd",
          value: appStart,
          unit: "ms",
        });
        log(`app start via hd exec: ${appStart.toFixed(0)} ms`);
      } finally {
        await hdDown(app, store);
      }

      // ---- hd's own share of a restart: a busybox httpd service (starts in ~1 ms)
      {
        const bb = await busyboxRegistry(`${dir}/bb`);
        const proj = `${dir}/bb/proj`;
        Deno.mkdirSync(`${proj}/site`, { recursive: true });
        Deno.writeTextFileSync(`${proj}/site/msg`, "v0\n");
        const bport = freePort();
        Deno.writeTextFileSync(
          `${proj}/hd.toml`,
          `[environment]\nname = "bb"\nbase = "${bb.ref}"\n[services.web]\n` +
            `command = "mkdir -p /tmp/w && cp /app/site/msg /tmp/w/msg && ` +
            `exec httpd -f -p 127.0.0.1:${bport} -h /tmp/w"\nwatch = ["site/**"]\n` +
            `port = ${bport}\n[options]\ndebounce = "10ms"\n`,
        );
        const bstore = `${dir}/bb/store`;
        try {
          await hdCmd(["up", "-d"], proj, bstore);
          await hdCmd(["down"], proj, bstore);
          const ups: number[] = [];
          for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            await hdCmd(["up", "-d"], proj, bstore);
            ups.push(await untilAnswer(`http://127.0.0.1:${bport}/msg`, "v0", t0));
            await hdCmd(["down"], proj, bstore);
          }
          rows.push({
            bench: "sandbox",
            case: "no-change up, busybox httpd (to answering)",
            tool: "hd",
            value: median(ups),
            unit: "ms",
            extra: { samples: ups.map(Math.round) },
          });
          log(`hd no-change up (busybox): ${median(ups).toFixed(0)} ms`);
          await hdCmd(["up", "-d"], proj, bstore);
          const ts: number[] = [];
          for (let i = 1; i <= edits; i++) {
            const t0 = performance.now();
            Deno.writeTextFileSync(`${proj}/site/msg`, `v${i}\n`);
            ts.push(await untilAnswer(`http://127.0.0.1:${bport}/msg`, `v${i}`, t0));
            await new Promise((r) => setTimeout(r, 300));
          }
          rows.push({
            bench: "sandbox",
            case: "edit → answer, busybox httpd (median)",
            tool: "hd",
            value: median(ts),
            unit: "ms",
            extra: { samples: ts.map(Math.round) },
          });
          log(`hd edit → answer (busybox): median ${median(ts).toFixed(0)} ms`);
        } finally {
          await hdDown(proj, bstore);
          await bb.reg.stop();
        }
      }

      // ---- podman: image builds (a good Dockerfile order). Containers cannot run on this
      // machine (crun: setrlimit EPERM, hybrid cgroups), so builds use --isolation chroot and
      // the edit → answer figures measured with podman on a kind machine are quoted in the docs.
      if (!hasPodman()) {
        log("sandbox: podman not installed; see docs/sandbox.md for its figures");
        return rows;
      }
      const papp = `${dir}/podman-app`;
      await sh(
        `cp -r ${REPO}/examples/node-app ${papp} && rm -rf ${papp}/.hd ${papp}/node_modules`,
      );
      Deno.writeTextFileSync(
        `${papp}/Dockerfile`,
        DOCKERFILE.replace("IMAGE", ref).replace("PORTNUM", "3000"),
      );
      const tag = `localhost/hd-bench-node-app:${Date.now()}`;
      const podman = podmanBuilds(papp, tag, ref);
      const build = () => podman.build();
      const note = { note: "image build only (--isolation chroot); the container is not run" };
      try {
        await podmanRmi(ref);
        let t0 = performance.now();
        await build();
        const cold = performance.now() - t0;
        rows.push({
          bench: "sandbox",
          case: "cold build (pull, npm ci, build)",
          tool: "podman",
          value: cold,
          unit: "ms",
          extra: note,
        });
        log(`podman cold build: ${cold.toFixed(0)} ms`);
        t0 = performance.now();
        await build();
        const nochange = performance.now() - t0;
        rows.push({
          bench: "sandbox",
          case: "no-change rebuild",
          tool: "podman",
          value: nochange,
          unit: "ms",
          extra: note,
        });
        log(`podman no-change build: ${nochange.toFixed(0)} ms`);
        const ts: number[] = [];
        for (let i = 0; i < edits; i++) {
          t0 = performance.now();
          Deno.writeTextFileSync(`${papp}/src/message.js`, `module.exports = "edit ${i}";\n`);
          await build();
          ts.push(performance.now() - t0);
        }
        rows.push({
          bench: "sandbox",
          case: "edit src → image rebuilt (median)",
          tool: "podman",
          value: median(ts),
          unit: "ms",
          extra: { ...note, samples: ts.map(Math.round) },
        });
        log(
          `podman edit → rebuilt: median ${median(ts).toFixed(0)} ms (${
            ts.map(Math.round).join(", ")
          })`,
        );
        const pkg = JSON.parse(Deno.readTextFileSync(`${papp}/package.json`));
        pkg.version = "1.0.1";
        t0 = performance.now();
        Deno.writeTextFileSync(`${papp}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
        await build();
        const reinstall = performance.now() - t0;
        rows.push({
          bench: "sandbox",
          case: "edit package.json → image rebuilt",
          tool: "podman",
          value: reinstall,
          unit: "ms",
          extra: note,
        });
        log(`podman package.json → rebuilt: ${reinstall.toFixed(0)} ms`);
      } finally {
        await podman.remove();
      }
    } finally {
      await reg.stop();
    }
    return rows;
  },
};

if (import.meta.main) await runAloneTable(bench, "hd-bench-sandbox-");

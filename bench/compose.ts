/**
 * A compose app, hd beside podman-compose in one run: `web` (node) → `api` (node) → `redis`
 * (redis-server, a named volume) plus a one-shot `migrate`, on a debootstrap Debian image with
 * nodejs, npm and redis-server pushed to a docker-registry on 127.0.0.1 (tests/e2e/_compose_app.ts
 * writes the app as hd.toml and as compose.yaml + Dockerfile):
 *
 * - cold up: nothing local (hd: empty store; podman: the base image and the app's image removed)
 *   → `web` answers with api's answer;
 * - no-change up: after down, up again → answering;
 * - edit web/message.js → the new message answers (median of N); hd restarts web, podman-compose
 *   1.0.3 rebuilds the image and recreates the containers (`down` then `up -d --build`: it has no
 *   per-service recreate or change detection; down stops with 1 s grace, hd's `restart_grace`);
 * - edit package-lock.json → `npm ci` re-runs → web answers the new lockfile version;
 * - hd's same edit in host mode (no base: web and api on the host, no redis) as the baseline, and
 *   both again with `reload = "warm"` on web: the four apps run at once and their edits alternate
 *   (host, sandbox, host warm, sandbox warm, …), so each pair is measured under the same load.
 *
 * HD_BENCH_COMPOSE_NO_PODMAN=1 leaves podman-compose out (hd's rows only).
 *
 * podman runs containers here only with runc, cgroupfs and explicit ulimits (the VM caps
 * RLIMIT_NOFILE): a containers.conf of the bench's own (CONTAINERS_CONF) says so, and a
 * registries.conf (CONTAINERS_REGISTRIES_CONF) lets it pull from the plain-http registry, and a
 * storage.conf (CONTAINERS_STORAGE_CONF) gives it a storage of the bench's own under its work dir.
 * @module
 */
import { type Bench, type BenchRow, median, sh } from "./lib.ts";
import { freePort, hasPodman, hdCmd, hdDown, nodeImage, untilAnswer } from "./_image.ts";
import { COMPOSE_PACKAGES } from "../tests/sandbox/_debian.ts";
import { hostHdToml, lockfile, writeComposeApp } from "../tests/e2e/_compose_app.ts";
import { servicePids } from "../src/services/readiness.ts";

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The 1-minute load average. */
function loadavg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return NaN;
  }
}

/** Whether podman-compose is installed. */
function hasPodmanCompose(): boolean {
  try {
    return new Deno.Command("podman-compose", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/** The RSS (KiB) of web's standby (its group: runc and the container's processes), or null. */
async function standbyRssKiB(app: string, store: string): Promise<number | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      `${new URL("..", import.meta.url).pathname}cli.ts`,
      "ps",
      "--json",
    ],
    cwd: app,
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).output();
  try {
    const v = JSON.parse(new TextDecoder().decode(out.stdout));
    const rows: { name: string; standby?: number | null }[] = Array.isArray(v) ? v : v.services;
    const pid = rows.find((r) => r.name === "web")?.standby;
    if (!pid) return null;
    let kib = 0;
    for (const p of servicePids(pid)) {
      try {
        kib += Number(
          /^VmRSS:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${p}/status`))?.[1] ?? 0,
        );
      } catch { /* gone */ }
    }
    return kib;
  } catch {
    return null;
  }
}

export const bench: Bench = {
  name: "compose",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const row = (c: string, tool: string, value: number, extra?: Record<string, unknown>) => {
      rows.push({ bench: "compose", case: c, tool, value, unit: "ms", extra });
      log(`${tool} ${c}: ${value.toFixed(0)} ms${extra ? " " + JSON.stringify(extra) : ""}`);
    };
    const dir = `${workDir}/compose`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}`);
    // the host's node in the image: host mode and the sandbox run the same node (the target is
    // the sandbox's own cost); the compose e2e tests keep Debian's node
    const img = await nodeImage(dir, COMPOSE_PACKAGES, "hd-compose", { hostNode: true });
    if ("skip" in img) {
      log(`compose: skipped: ${img.skip}`);
      return rows;
    }
    const { ref, reg, extra } = img;
    const edits = quick ? 3 : 5;
    const name = "benchcompose";
    const warmToml = (toml: string) =>
      toml.replace(
        /(\[services\.web\]\ncommand = "node web\/server\.js"\n)/,
        '$1reload = "warm"\n',
      );
    /** One edit of web/message.js in `app` → the new message answers at `url` (ms). */
    const edit = async (app: string, url: string, i: number): Promise<number> => {
      const needle = `edit${i}-${Date.now()}`;
      const t0 = performance.now();
      Deno.writeTextFileSync(`${app}/web/message.js`, `module.exports = "${needle}";\n`);
      return await untilAnswer(url, `web ${needle}`, t0);
    };
    const stats = (ts: number[], loads: number[]) => ({
      samples: ts.map(Math.round),
      min: Math.round(Math.min(...ts)),
      max: Math.round(Math.max(...ts)),
      loadavg: `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    });
    try {
      // ---- hd, sandboxed: every service in its own namespace on the environment's network
      const store = `${dir}/hd-store`;
      const apps: { key: string; app: string; url: string; store: string }[] = [];
      try {
        {
          const app = `${dir}/hd-app`;
          const port = freePort();
          writeComposeApp(app, { ref, hostPort: port, name });
          const url = `http://127.0.0.1:${port}/`;
          apps.push({ key: "sandbox", app, url, store });
          let t0 = performance.now();
          await hdCmd(["up", "-d"], app, store);
          row(
            "cold up (pull, npm ci, 4 services, answer)",
            "hd",
            await untilAnswer(url, "api on", t0),
            extra,
          );
          await hdCmd(["down"], app, store);
          t0 = performance.now();
          const upMs = await hdCmd(["up", "-d"], app, store);
          row("no-change up (to answering)", "hd", await untilAnswer(url, "api on", t0), {
            upCommandMs: Math.round(upMs),
          });
        }
        // the same app with reload = "warm" on web (the same store: the image is there), and
        // both in host mode (web and api on the host, no base, no redis): all four run at once
        // and their edits alternate (host, sandbox, host warm, sandbox warm, …) under one load
        {
          const app = `${dir}/hd-warm`;
          const port = freePort();
          writeComposeApp(app, { ref, hostPort: port, name: `${name}-warm` });
          const toml = Deno.readTextFileSync(`${app}/hd.toml`);
          Deno.writeTextFileSync(`${app}/hd.toml`, warmToml(toml));
          apps.push({ key: "sandbox warm", app, url: `http://127.0.0.1:${port}/`, store });
        }
        for (const warm of [false, true]) {
          const app = `${dir}/hd-host${warm ? "-warm" : ""}`;
          const port = freePort();
          const n = `${name}-host${warm ? "-warm" : ""}`;
          writeComposeApp(app, { ref, hostPort: port, name: n });
          const toml = hostHdToml(n, port, freePort());
          Deno.writeTextFileSync(`${app}/hd.toml`, warm ? warmToml(toml) : toml);
          apps.push({
            key: warm ? "host warm" : "host",
            app,
            url: `http://127.0.0.1:${port}/`,
            store: `${dir}/hd-host-store`,
          });
        }
        for (const a of apps.slice(1)) {
          await hdCmd(["up", "-d"], a.app, a.store);
          await untilAnswer(a.url, "api on", performance.now());
        }
        await pause(1500); // the warm standbys preload
        const order = ["host", "sandbox", "host warm", "sandbox warm"];
        const ts: Record<string, number[]> = Object.fromEntries(order.map((k) => [k, []]));
        const loads: number[] = [];
        for (let i = 0; i < edits; i++) {
          for (const k of order) {
            const a = apps.find((x) => x.key === k)!;
            loads.push(loadavg());
            ts[k].push(await edit(a.app, a.url, i));
            await pause(300);
          }
        }
        const label: Record<string, string> = {
          sandbox: "edit web → answer (median)",
          host: "edit web → answer, host mode (no base; median)",
          "sandbox warm": 'edit web → answer, reload = "warm" (median)',
          "host warm": 'edit web → answer, host mode, reload = "warm" (median)',
        };
        // what a standby costs: the RSS of web's held container (sandbox) and warm standby
        const held: Record<string, number | null> = {};
        for (const k of ["sandbox", "sandbox warm"]) {
          const a = apps.find((x) => x.key === k)!;
          held[k] = await standbyRssKiB(a.app, a.store);
        }
        for (const k of order) {
          const more = held[k] !== undefined ? { standbyRssKiB: held[k] } : {};
          row(label[k], "hd", median(ts[k]), { ...stats(ts[k], loads), ...more });
        }
        const gap = (a: string, b: string) => ts[a].map((t, i) => t - ts[b][i]);
        log(
          `sandbox − host per round: ${gap("sandbox", "host").map(Math.round).join(" ")} ms; ` +
            `sandbox warm − host warm: ${
              gap("sandbox warm", "host warm").map(Math.round).join(" ")
            } ms; sandbox warm − host: ${gap("sandbox warm", "host").map(Math.round).join(" ")} ms`,
        );
        const main = apps[0];
        const t0 = performance.now();
        Deno.writeTextFileSync(`${main.app}/package-lock.json`, lockfile(name, "1.0.1"));
        row(
          "edit package-lock.json → npm ci → answer",
          "hd",
          await untilAnswer(main.url, "lock=1.0.1", t0),
        );
      } finally {
        for (const a of apps) {
          await hdDown(a.app, a.store);
          if (a.key.startsWith("sandbox")) {
            await hdCmd(["down", "-v"], a.app, a.store).catch(() => 0);
          }
        }
      }

      if (Deno.env.get("HD_BENCH_COMPOSE_NO_PODMAN")) {
        log("compose: podman-compose skipped (HD_BENCH_COMPOSE_NO_PODMAN)");
        return rows;
      }
      // ---- podman-compose on the same app
      if (!hasPodman() || !hasPodmanCompose()) {
        log("compose: podman or podman-compose not installed (apt-get install podman-compose)");
        return rows;
      }
      const app = `${dir}/podman-app`;
      const port = freePort();
      writeComposeApp(app, { ref, hostPort: port, name });
      const conf = `${dir}/containers.conf`;
      Deno.writeTextFileSync(
        conf,
        `[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n` +
          `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n`,
      );
      const regConf = `${dir}/registries.conf`;
      Deno.writeTextFileSync(
        regConf,
        `[[registry]]\nlocation = "${ref.split("/")[0]}"\ninsecure = true\n`,
      );
      // a storage of the bench's own: cold is cold (no layer or build cache of an earlier run),
      // and nothing of anyone else's is touched when it is emptied
      const storageConf = `${dir}/storage.conf`;
      Deno.writeTextFileSync(
        storageConf,
        `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/podman/root"\n` +
          `runroot = "${dir}/podman/run"\n`,
      );
      const env = {
        CONTAINERS_CONF: conf,
        CONTAINERS_REGISTRIES_CONF: regConf,
        CONTAINERS_STORAGE_CONF: storageConf,
      };
      const envLine = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ");
      const pc = async (...args: string[]) => {
        const t0 = performance.now();
        const out = await new Deno.Command("podman-compose", {
          args: ["-p", name, "-f", "compose.yaml", ...args],
          cwd: app,
          env,
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dec = new TextDecoder();
        if (!out.success) {
          throw new Error(
            `podman-compose ${args.join(" ")}: ${dec.decode(out.stderr).slice(-800)}`,
          );
        }
        const text = dec.decode(out.stdout) + dec.decode(out.stderr);
        return {
          ms: performance.now() - t0,
          cached: text.split("Using cache").length - 1,
          steps: text.split("\n").filter((l) => /^STEP \d+\/\d+: (?!FROM )/.test(l)).length,
        };
      };
      const url = `http://127.0.0.1:${port}/`;
      const cleanup = async () => {
        await pc("down").catch(() => 0);
        await sh(
          `${envLine} podman rmi -a -f >/dev/null 2>&1; ${envLine} podman volume prune -f ` +
            `>/dev/null 2>&1; ${envLine} podman network rm -f ${name}_default >/dev/null 2>&1; true`,
        );
      };
      // what a compose user runs after an edit: podman-compose 1.0.3 has no change detection
      // (up -d on existing containers only starts them again) and its --force-recreate stops
      // with "-t 10.0", which podman refuses; down stops with -t 1 (hd: restart_grace = "1s")
      const recreate = async () => {
        const down = await pc("down");
        const up = await pc("up", "-d", "--build");
        return {
          downMs: Math.round(down.ms),
          upMs: Math.round(up.ms),
          steps: up.steps,
          cached: up.cached,
        };
      };
      try {
        await cleanup();
        let t0 = performance.now();
        await pc("up", "-d");
        row(
          "cold up (pull, npm ci, 4 services, answer)",
          "podman-compose",
          await untilAnswer(url, "api on", t0),
        );
        await pc("down");
        t0 = performance.now();
        await pc("up", "-d");
        row("no-change up (to answering)", "podman-compose", await untilAnswer(url, "api on", t0));
        const ts: number[] = [];
        const parts: Record<string, number>[] = [];
        for (let i = 0; i < edits; i++) {
          const needle = `edit${i}-${Date.now()}`;
          t0 = performance.now();
          Deno.writeTextFileSync(`${app}/web/message.js`, `module.exports = "${needle}";\n`);
          parts.push(await recreate());
          ts.push(await untilAnswer(url, `web ${needle}`, t0));
        }
        row("edit web → answer (median)", "podman-compose", median(ts), {
          samples: ts.map(Math.round),
          how: "down; up -d --build",
          parts,
        });
        t0 = performance.now();
        Deno.writeTextFileSync(`${app}/package-lock.json`, lockfile(name, "1.0.1"));
        const lockParts = await recreate();
        row(
          "edit package-lock.json → npm ci → answer",
          "podman-compose",
          await untilAnswer(url, "lock=1.0.1", t0),
          lockParts,
        );
      } catch (e) {
        // the rows measured so far stay (the run's other rows are not lost to podman)
        log(`podman-compose: FAILED ${(e as Error).message}`);
      } finally {
        await cleanup();
      }
    } finally {
      await reg.stop();
    }
    return rows;
  },
};

if (import.meta.main) {
  const workDir = Deno.makeTempDirSync({ prefix: "hd-bench-compose-" });
  try {
    const rows = await bench.run({
      workDir,
      quick: Deno.args.includes("--quick"),
      log: (s) => console.log(s),
    });
    console.table(rows.map(({ extra: _e, ...r }) => ({ ...r, value: Math.round(r.value) })));
  } finally {
    Deno.removeSync(workDir, { recursive: true });
  }
}

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
 * - hd's same edit in host mode (no base: web and api on the host, no redis) as the baseline.
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

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    const img = await nodeImage(dir, COMPOSE_PACKAGES, "hd-compose");
    if ("skip" in img) {
      log(`compose: skipped: ${img.skip}`);
      return rows;
    }
    const { ref, reg, extra } = img;
    const edits = quick ? 2 : 5;
    const name = "benchcompose";
    const editLoop = async (app: string, url: string): Promise<number[]> => {
      const ts: number[] = [];
      for (let i = 0; i < edits; i++) {
        const needle = `edit${i}-${Date.now()}`;
        const t0 = performance.now();
        Deno.writeTextFileSync(`${app}/web/message.js`, `module.exports = "${needle}";\n`);
        ts.push(await untilAnswer(url, `web ${needle}`, t0));
        await pause(300);
      }
      return ts;
    };
    try {
      // ---- hd, sandboxed: every service in its own namespace on the environment's network
      {
        const app = `${dir}/hd-app`;
        const store = `${dir}/hd-store`;
        const port = freePort();
        writeComposeApp(app, { ref, hostPort: port, name });
        const url = `http://127.0.0.1:${port}/`;
        try {
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
          const ts = await editLoop(app, url);
          row("edit web → answer (median)", "hd", median(ts), { samples: ts.map(Math.round) });
          t0 = performance.now();
          Deno.writeTextFileSync(`${app}/package-lock.json`, lockfile(name, "1.0.1"));
          row(
            "edit package-lock.json → npm ci → answer",
            "hd",
            await untilAnswer(url, "lock=1.0.1", t0),
          );
        } finally {
          await hdDown(app, store);
          await hdCmd(["down", "-v"], app, store).catch(() => 0);
        }
      }
      // ---- hd in host mode: the same edit, web and api on the host
      {
        const app = `${dir}/hd-host`;
        const store = `${dir}/hd-host-store`;
        const port = freePort();
        writeComposeApp(app, { ref, hostPort: port, name: `${name}-host` });
        Deno.writeTextFileSync(`${app}/hd.toml`, hostHdToml(`${name}-host`, port, freePort()));
        const url = `http://127.0.0.1:${port}/`;
        try {
          await hdCmd(["up", "-d"], app, store);
          await untilAnswer(url, "api on", performance.now());
          const ts = await editLoop(app, url);
          row("edit web → answer, host mode (median)", "hd", median(ts), {
            samples: ts.map(Math.round),
          });
        } finally {
          await hdDown(app, store);
        }
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

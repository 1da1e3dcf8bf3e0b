/**
 * Lazy environments (docs/sandbox.md): examples/node-app in the Debian + Node image, its image
 * pulled and its build steps cached, nothing materialized — cold `hd up -d` until the service
 * answers with layers served by the FUSE projection (`HD_LAYERS=lazy`) vs copied out of the store
 * (`HD_LAYERS=materialized`), alternated (A B A B), page cache dropped before each; the disk each
 * uses beside the store; steady-state reads inside the environment (`hd exec` reading every file
 * of /usr/share/nodejs and the app's node_modules, cold and warm); and podman pull + run of the
 * same image (runc, cgroupfs, explicit ulimits) when podman can run it here.
 * @module
 */
import { type Bench, type BenchRow, dropCaches, median, sh } from "./lib.ts";
import { freePort, nodeImage, REPO, untilAnswer } from "./_image.ts";
import { Store } from "../src/cas/store.ts";
import { startLayerMount, stopLayerMount } from "../src/runtime/lazy_layers.ts";

type Mode = "lazy" | "materialized";

async function hdRun(
  args: string[],
  cwd: string,
  store: string,
  mode: Mode,
): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
    cwd,
    env: { HD_HOME: store, NO_COLOR: "1", HD_LAYERS: mode },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!o.success) throw new Error(`hd ${args.join(" ")}: ${dec.decode(o.stderr)}`);
  return { ms: performance.now() - t0, out: dec.decode(o.stdout) };
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function loadavg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return -1;
  }
}

const READ_ALL = "s=$(date +%s%N); n=$(find /usr/share/nodejs /app/node_modules -type f " +
  "-exec cat {} + | wc -c); e=$(date +%s%N); echo $(( (e-s)/1000000 )) $n";

export const bench: Bench = {
  name: "lazy",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const dir = `${workDir}/lazy`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}`);
    const img = await nodeImage(dir);
    if ("skip" in img) {
      log(`lazy: skipped: ${img.skip}`);
      return rows;
    }
    const { ref, reg } = img;
    const rounds = quick ? 2 : 5;
    const app = `${dir}/app`;
    const store = `${dir}/store`;
    const port = freePort();
    const url = `http://127.0.0.1:${port}`;
    await sh(`cp -r ${REPO}/examples/node-app ${app} && rm -rf ${app}/.hd ${app}/node_modules`);
    Deno.writeTextFileSync(
      `${app}/hd.toml`,
      Deno.readTextFileSync(`${app}/hd.toml`).replace("127.0.0.1:5000/hd-node:bookworm", ref)
        .replaceAll("3000", String(port)),
    );
    const down = async (mode: Mode) => {
      await hdRun(["down"], app, store, mode).catch(() => null);
      await sh(`umount -l ${app}/.hd/sandbox/root 2>/dev/null; true`);
    };
    try {
      // pull and build once (steps cached), then forget every materialized layer
      await hdRun(["up", "-d"], app, store, "materialized");
      await untilAnswer(url, "hello", performance.now(), 600_000);
      await down("materialized");
      const cold: Record<Mode, number[]> = { lazy: [], materialized: [] };
      const disk: Record<Mode, number> = { lazy: 0, materialized: 0 };
      let serverRss = 0;
      for (let i = 0; i < rounds; i++) {
        for (const mode of ["materialized", "lazy"] as Mode[]) {
          await sh(`rm -rf ${store}/layers ${app}/.hd/sandbox/upper ${app}/.hd/sandbox/work`);
          await dropCaches();
          const t0 = performance.now();
          await hdRun(["up", "-d"], app, store, mode);
          cold[mode].push(await untilAnswer(url, "hello", t0));
          disk[mode] = Number(
            (await sh(`du -sb ${store}/layers 2>/dev/null | cut -f1 || true`))
              .trim() || 0,
          );
          if (mode === "lazy") {
            const pid = Number(
              (await sh(
                `grep -l '"dir": "${app}/.hd/sandbox/layers"' ${store}/mounts/*.json | ` +
                  `xargs cat | sed -n 's/.*"pid": \\([0-9]*\\).*/\\1/p'`,
              )).trim() || 0,
            );
            serverRss = Math.max(serverRss, rssKiB(pid));
          }
          await down(mode);
          log(`cold up ${mode}: ${cold[mode].at(-1)!.toFixed(0)} ms`);
        }
      }
      const storeBytes = Number((await sh(`du -sb ${store} | cut -f1`)).trim());
      for (const mode of ["lazy", "materialized"] as Mode[]) {
        const xs = cold[mode];
        rows.push({
          bench: "lazy",
          case: "cold up node-app (pulled, steps cached, nothing materialized)",
          tool: `hd ${mode}`,
          value: median(xs),
          unit: "ms",
          extra: {
            samples: xs.map(Math.round),
            min: Math.min(...xs),
            max: Math.max(...xs),
            loadavg: loadavg(),
          },
        });
        rows.push({
          bench: "lazy",
          case: "disk beside the store (layer dirs)",
          tool: `hd ${mode}`,
          value: disk[mode] / 1048576,
          unit: "MiB",
          extra: {
            storeMiB: storeBytes / 1048576,
            ...(mode === "lazy" ? { serverRssMiB: serverRss / 1024 } : {}),
          },
        });
      }
      let layerIds: string[] = [];
      // steady state: read every file of /usr/share/nodejs and node_modules inside the env
      for (const mode of ["materialized", "lazy"] as Mode[]) {
        await hdRun(["up", "-d"], app, store, mode);
        await untilAnswer(url, "hello", performance.now());
        const reads: { cold: number[]; warm: number[] } = { cold: [], warm: [] };
        let bytes = 0;
        for (let i = 0; i < (quick ? 1 : 3); i++) {
          await dropCaches();
          const c = (await hdRun(["exec", "--", "sh", "-c", READ_ALL], app, store, mode)).out
            .trim().split(" ");
          reads.cold.push(Number(c[0]));
          bytes = Number(c[1]);
          const w = (await hdRun(["exec", "--", "sh", "-c", READ_ALL], app, store, mode)).out
            .trim().split(" ");
          reads.warm.push(Number(w[0]));
        }
        for (const k of ["cold", "warm"] as const) {
          rows.push({
            bench: "lazy",
            case: `read all of node_modules + /usr/share/nodejs in env (${k})`,
            tool: `hd ${mode}`,
            value: median(reads[k]),
            unit: "ms",
            extra: { samples: reads[k], bytes, loadavg: loadavg() },
          });
          log(`read ${k} ${mode}: ${median(reads[k])} ms (${bytes} bytes)`);
        }
        if (mode === "lazy") {
          layerIds = JSON.parse(Deno.readTextFileSync(`${app}/.hd/sandbox/root.json`)).lowers
            .map((l: string) => l.slice(l.lastIndexOf("/") + 1)).reverse();
        }
        await down(mode);
      }
      // what one layer server costs (start until it answers, RSS): one per environment, not one
      // per layer, since every server is a Deno process of its own
      {
        const s = Store.open(store);
        const layers = layerIds;
        const starts: number[] = [];
        let rss = 0;
        for (let i = 0; i < 3; i++) {
          const m = await startLayerMount(s, `${dir}/probe`, layers);
          starts.push(m.ms);
          rss = Math.max(rss, rssKiB(m.pid));
          await stopLayerMount(s, m.dir);
        }
        rows.push({
          bench: "lazy",
          case: `one layer server: start → serving (${layers.length} layers)`,
          tool: "hd lazy",
          value: median(starts),
          unit: "ms",
          extra: { samples: starts.map(Math.round), rssMiB: rss / 1024, loadavg: loadavg() },
        });
        log(
          `layer server start: ${median(starts).toFixed(0)} ms, RSS ${(rss / 1024).toFixed(0)} MiB`,
        );
      }
      // podman: pull + run of the same image, when it can run containers here
      await podmanRows(ref, rounds, rows, log);
    } finally {
      await down("lazy");
      await reg.stop();
    }
    return rows;
  },
};

async function podmanRows(
  ref: string,
  rounds: number,
  rows: BenchRow[],
  log: (s: string) => void,
): Promise<void> {
  const root = `/var/tmp/hd-bench-podman-${Deno.pid}`;
  const p = `podman --root ${root}/storage --runroot ${root}/run --cgroup-manager cgroupfs ` +
    `--runtime runc`;
  const run = `${p} run --rm --network host --ulimit nofile=20000:20000 ` +
    `--ulimit nproc=4096:4096 ${ref} node -e "require('express'); console.log('ok')"`;
  try {
    await sh("podman --version");
  } catch {
    log("lazy: podman not installed: no podman row");
    return;
  }
  const ts: number[] = [];
  let disk = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      await sh(`rm -rf ${root}`);
      await dropCaches();
      const t0 = performance.now();
      await sh(`${p} pull -q --tls-verify=false ${ref} >/dev/null`);
      const out = await sh(run);
      ts.push(performance.now() - t0);
      if (!out.includes("ok")) throw new Error(`podman run printed ${out}`);
      disk = Number((await sh(`du -sb ${root}/storage | cut -f1`)).trim());
      log(`podman pull + run: ${ts.at(-1)!.toFixed(0)} ms`);
    }
    rows.push({
      bench: "lazy",
      case: "podman pull + run node -e require('express')",
      tool: "podman",
      value: median(ts),
      unit: "ms",
      extra: { samples: ts.map(Math.round), loadavg: loadavg() },
    });
    rows.push({
      bench: "lazy",
      case: "disk of podman's image store",
      tool: "podman",
      value: disk / 1048576,
      unit: "MiB",
    });
  } catch (e) {
    log(`lazy: podman could not run the image here: ${(e as Error).message.split("\n")[0]}`);
  } finally {
    await sh(
      `${p} rm -af >/dev/null 2>&1; umount -R ${root}/storage/overlay 2>/dev/null; ` +
        `rm -rf ${root}; true`,
    ).catch(() => "");
  }
}

/**
 * Layer materialization, the part of a cold `hd up` that writes an image's root into
 * `<store>/layers/<tree>/` (src/sandbox/layers.ts): the compose bench's 375 MB debootstrap Debian
 * (nodejs, npm, redis-server; one layer, ~32k files), pulled once into a store of the bench's own,
 * then written again and again, alternating (A B C D, A B C D, …):
 *
 * - hd with its writer threads (the default), and hd on one thread (`writers: 0`);
 * - `cp -a` of the same tree (from the cached rootfs) and GNU `tar x` of the layer's tar.
 *
 * Each output is moved aside (not deleted) and flushed (sync, outside the timing) before the next;
 * all are deleted at the end: ext4 without a journal scans recently
 * deleted inodes on every create, which would make each round slower than the last.
 * @module
 */
import { type Bench, type BenchRow, loadavg, sh, spread } from "./lib.ts";
import { COMPOSE_PACKAGES, debianRootfs, rootfsLayout } from "../tests/sandbox/_debian.ts";
import { Store } from "../src/cas/store.ts";
import { materializeLayer } from "../src/sandbox/layers.ts";

const REPO = new URL("..", import.meta.url).pathname;

export const bench: Bench = {
  name: "layers",
  async run({ workDir, quick, log }) {
    const rows: BenchRow[] = [];
    const img = await debianRootfs(COMPOSE_PACKAGES);
    if ("skip" in img) {
      log(`layers: skipped: ${img.skip}`);
      return rows;
    }
    const dir = `${workDir}/layers`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}/trash`);
    await rootfsLayout(img.rootfs, `${dir}/layout`, "bookworm");
    const tar = (await sh(`ls -S ${dir}/layout/blobs/sha256 | head -1`)).trim();
    const pulled = await sh(
      `cd ${REPO} && deno run -A cli.ts pull --store ${dir}/store oci:${dir}/layout:bookworm`,
    );
    // one layer: the image's root is the layer's tree
    const tree = /rootfs ([0-9a-f]{64})/.exec(pulled)?.[1];
    if (!tree) throw new Error(`Cannot bench layers: no rootfs id in "${pulled}"`);
    const store = Store.open(`${dir}/store`, { create: false });
    let n = 0;
    const aside = async (path: string) => {
      await sh(`sync && mv ${path} ${dir}/trash/${n++}`);
    };
    const layers = `${dir}/store/layers`, out = `${dir}/out`;
    const tools: [string, () => unknown, string][] = [
      ["hd (writer threads)", () => materializeLayer(store, tree), layers],
      ["hd (one thread)", () => materializeLayer(store, tree, { writers: 0 }), layers],
      ["cp -a", () => sh(`cp -a ${img.rootfs} ${out}`), out],
      [
        "tar x",
        () => sh(`mkdir ${out} && tar -xf ${dir}/layout/blobs/sha256/${tar} -C ${out}`),
        out,
      ],
    ];
    const rounds = quick ? 2 : 5;
    const ms = new Map<string, number[]>(tools.map(([t]) => [t, []]));
    const loads: number[] = [];
    await sh("sync");
    for (let r = 0; r < rounds; r++) {
      for (const [name, go, made] of tools) {
        loads.push(loadavg());
        const t0 = performance.now();
        await go();
        ms.get(name)!.push(performance.now() - t0);
        await aside(made); // each starts with the previous one's writes flushed
      }
    }
    await sh(`rm -rf ${dir}`);
    for (const [name] of tools) {
      const xs = ms.get(name)!;
      const s = spread(xs);
      rows.push({
        bench: "layers",
        case: "write the Debian image's layer (32k files, 375 MB)",
        tool: name,
        value: s.median,
        unit: "ms",
        extra: {
          ...s,
          samples: xs.map(Math.round),
          loadavg: `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
        },
      });
      log(`${name}: median ${s.median} ms (${s.min}–${s.max})`);
    }
    return rows;
  },
};

/**
 * OCI pull bench: a ~130 MB image (two layers built from this host's own files — Python 3.11's
 * and Perl's libraries, zoneinfo and i18n as the base, npm and corepack as the app layer; the
 * machine cannot debootstrap reliably) pushed to a local docker-registry on 127.0.0.1, then:
 * - cold pull into an empty store: `hd pull` beside `skopeo copy docker://… oci:DIR` +
 *   `umoci unpack` (the same work: fetch, verify, unpack to a usable tree);
 * - re-pull of the same image (hd answers from its record; skopeo re-checks the blobs it has);
 * - pull of a second image sharing most files but no layer (its base rebuilt with one more
 *   directory): how much hd's store grows beside how much the registry and the OCI layout grow.
 * @module
 */
import { type Bench, type BenchRow, dropCaches, sh, timeCmd } from "./lib.ts";
import { startRegistry, writeLayout } from "../tests/oci/_fixtures.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

const BASE = [
  "usr/lib/python3.11",
  "usr/share/perl",
  "usr/lib/x86_64-linux-gnu/perl",
  "usr/share/zoneinfo",
  "usr/share/i18n",
];
const APP = ["usr/lib/node_modules/npm", "usr/lib/node_modules/corepack"];

async function tarOf(paths: string[], extra?: string, root = "/"): Promise<Uint8Array> {
  const present = paths.filter((p) => {
    try {
      Deno.statSync(`${root}/${p}`);
      return true;
    } catch {
      return false;
    }
  });
  const args = ["--numeric-owner", "-C", root, "-cf", "-", ...present];
  if (extra) args.push("-C", extra, ".");
  const out = await new Deno.Command("tar", { args, stdout: "piped", stderr: "null" }).output();
  return out.stdout;
}

async function duBytes(dir: string): Promise<number> {
  return Number((await sh(`du -sb ${dir} | cut -f1`)).trim());
}

/** The bench module. */
export const bench: Bench = {
  name: "oci",
  async run({ workDir, log }) {
    const rows: BenchRow[] = [];
    const row = (c: string, tool: string, value: number, unit: string, extra = {}) => {
      rows.push({ bench: "oci", case: c, tool, value: Math.round(value), unit, extra });
      log(`${c}: ${tool} ${Math.round(value)} ${unit}`);
    };
    const dir = `${workDir}/oci`;
    await sh(`rm -rf ${dir} && mkdir -p ${dir}/extra/etc`);
    Deno.writeTextFileSync(`${dir}/extra/etc/image-b`, "second image\n");

    // HD_BENCH_OCI_ROOTFS=DIR (e.g. a debootstrap minbase with nodejs installed) makes DIR the
    // base layer instead of the host's files.
    const rootfs = Deno.env.get("HD_BENCH_OCI_ROOTFS");
    log(`building the images from ${rootfs ?? "host files"}`);
    const base = rootfs ? await tarOf(["."], undefined, rootfs) : await tarOf(BASE);
    const app = await tarOf(APP);
    const baseB = rootfs
      ? await tarOf(["."], `${dir}/extra`, rootfs)
      : await tarOf([...BASE, "usr/share/perl5"]);
    const appB = await tarOf(APP, `${dir}/extra`);
    const layout = `${dir}/src-layout`;
    writeLayout(layout, "a", [{ tar: base }, { tar: app }]);
    writeLayout(layout, "b", [{ tar: baseB }, { tar: appB }]);
    const size = base.length + app.length;

    const reg = await startRegistry(dir);
    try {
      const push = (tag: string) =>
        timeCmd("skopeo", [
          "copy",
          "--dest-tls-verify=false",
          `oci:${layout}:${tag}`,
          `docker://${reg.host}/bench:${tag}`,
        ]);
      await push("a");
      const regA = await duBytes(reg.storage);
      const ref = (t: string) => `${reg.host}/bench:${t}`;
      const store = `${dir}/store`;
      const hdPull = (t: string) =>
        timeCmd(Deno.execPath(), ["run", "-A", "--quiet", CLI, "pull", ref(t), "--json"], {
          env: { HD_HOME: store },
        });

      // Cold pull.
      await dropCaches();
      const hdCold = await hdPull("a");
      const storeA = await duBytes(store);
      const extra = { uncompressedBytes: size, layers: 2, rootfs: rootfs ?? "host files" };
      row("cold pull ~130 MB image", "hd", hdCold, "ms", { ...extra, storeBytes: storeA });
      await dropCaches();
      const peer = `${dir}/peer-layout`;
      const skopeoCold = await timeCmd("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${ref("a")}`,
        `oci:${peer}:a`,
      ]);
      const umociCold = await timeCmd("umoci", [
        "unpack",
        "--image",
        `${peer}:a`,
        `${dir}/bundle-a`,
      ]);
      row("cold pull ~130 MB image", "skopeo+umoci", skopeoCold + umociCold, "ms", {
        skopeoMs: Math.round(skopeoCold),
        umociMs: Math.round(umociCold),
        layoutBytes: await duBytes(peer),
        bundleBytes: await duBytes(`${dir}/bundle-a`),
      });
      row("cold pull: fetch to OCI layout", "skopeo copy", skopeoCold, "ms");
      row("cold pull: unpack layout", "umoci unpack", umociCold, "ms");

      // Re-pull of the same image.
      const hdWarm = await hdPull("a");
      row("re-pull same image", "hd", hdWarm, "ms");
      const skopeoWarm = await timeCmd("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${ref("a")}`,
        `oci:${peer}:a`,
      ]);
      row("re-pull same image", "skopeo copy (blobs present)", skopeoWarm, "ms");

      // A second image sharing most files but no layer.
      await push("b");
      const regB = await duBytes(reg.storage);
      const hdB = await hdPull("b");
      const storeB = await duBytes(store);
      row("pull 2nd image sharing most files", "hd", hdB, "ms");
      const layoutBefore = await duBytes(peer);
      const skopeoB = await timeCmd("skopeo", [
        "copy",
        "--src-tls-verify=false",
        `docker://${ref("b")}`,
        `oci:${peer}:b`,
      ]);
      const umociB = await timeCmd("umoci", ["unpack", "--image", `${peer}:b`, `${dir}/bundle-b`]);
      row("pull 2nd image sharing most files", "skopeo+umoci", skopeoB + umociB, "ms");
      const kib = (n: number) => n / 1024;
      row("2nd image: storage growth", "hd store", kib(storeB - storeA), "KiB");
      row("2nd image: storage growth", "docker-registry", kib(regB - regA), "KiB");
      row(
        "2nd image: storage growth",
        "skopeo OCI layout",
        kib((await duBytes(peer)) - layoutBefore),
        "KiB",
      );
      row(
        "2nd image: storage growth",
        "umoci bundle",
        kib(await duBytes(`${dir}/bundle-b`)),
        "KiB",
      );
    } finally {
      await reg.stop();
      await sh(`rm -rf ${dir}`);
    }
    return rows;
  },
};

if (import.meta.main) {
  const workDir = Deno.makeTempDirSync({ prefix: "hd-bench-oci-" });
  try {
    const rows = await bench.run({ workDir, quick: false, log: (s) => console.error(s) });
    console.log(JSON.stringify(rows, null, 2));
  } finally {
    Deno.removeSync(workDir, { recursive: true });
  }
}

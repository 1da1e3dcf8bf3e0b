/**
 * FUSE projection bench: the same tree served three ways in one run — plain directory on disk,
 * `hd mount` (lazy from the CAS, libfuse3 through Deno FFI) and Debian's `squashfuse` serving a
 * `mksquashfs` image — measuring find, cold and warm cat of every file, a sequential read of a
 * big file, stat latency and `cp -r` of a node_modules-shaped tree (synthetic: no network).
 * "Cold" means page cache dropped and the FUSE servers freshly mounted.
 * @module
 */
import { type Bench, type BenchRow, dropCaches, median, percentile, sh } from "./lib.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const WORDS = [
  "function",
  "return",
  "const",
  "module",
  "exports",
  "require",
  "this",
  "value",
  "options",
  "callback",
  "undefined",
  "prototype",
  "length",
  "error",
  "result",
  "object",
  "string",
  "number",
  "if",
  "else",
  "for",
  "while",
  "new",
  "typeof",
  "null",
  "true",
  "false",
  "async",
  "await",
  "import",
];

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13, x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5, x >>>= 0;
    return x / 4294967296;
  };
}

/** A node_modules-shaped tree: packages with package.json, README, lib/ and nested deps. */
function makeNodeModules(dir: string, files: number): { files: number; bytes: number } {
  const rnd = xorshift(42);
  const enc = new TextEncoder();
  let made = 0;
  let bytes = 0;
  let pkg = 0;
  while (made < files) {
    const scoped = rnd() < 0.15;
    const name = scoped ? `@scope${pkg % 40}/pkg-${pkg}` : `pkg-${pkg}`;
    const base = `${dir}/${name}`;
    const n = 3 + Math.floor(rnd() * 30);
    for (let i = 0; i < n && made < files; i++) {
      const sub = i === 0
        ? "package.json"
        : i === 1
        ? "README.md"
        : rnd() < 0.3
        ? `lib/internal/m${i}.js`
        : rnd() < 0.2
        ? `dist/m${i}.d.ts`
        : `lib/m${i}.js`;
      const size = Math.floor(120 * 2 ** (rnd() * 10));
      const words: string[] = [];
      let len = 0;
      while (len < size) {
        const w = WORDS[Math.floor(rnd() * WORDS.length)] +
          (rnd() < 0.3 ? Math.floor(rnd() * 1000).toString(36) : "");
        words.push(w);
        len += w.length + 1;
        if (rnd() < 0.1) (words.push(";\n"), len += 2);
      }
      const text = enc.encode(words.join(" "));
      const path = `${base}/${sub}`;
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      Deno.writeFileSync(path, text);
      made++;
      bytes += text.length;
    }
    pkg++;
  }
  return { files: made, bytes };
}

async function hdCli(args: string[], store: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  if (!out.success) throw new Error(`hd ${args.join(" ")}: ${d.decode(out.stderr)}`);
  return d.decode(out.stdout);
}

async function timeSh(line: string): Promise<number> {
  const t = performance.now();
  await sh(line);
  return performance.now() - t;
}

/** The FUSE bench. */
export const bench: Bench = {
  name: "fuse",
  async run({ workDir, quick, log }) {
    for (const c of ["mksquashfs", "squashfuse", "fusermount3"]) {
      try {
        await sh(`command -v ${c}`);
      } catch {
        throw new Error(`needs ${c} (apt-get install squashfs-tools squashfuse fuse3)`);
      }
    }
    const rows: BenchRow[] = [];
    const tree = `${workDir}/tree`;
    const nm = `${tree}/node_modules`;
    const bigMiB = quick ? 256 : 1024;
    const files = quick ? 2000 : 8000;
    log(`making a node_modules-shaped tree of ${files} files and a ${bigMiB} MiB file`);
    const shape = makeNodeModules(nm, files);
    await sh(`head -c ${bigMiB}M /dev/urandom > ${tree}/big.bin`);
    const store = `${workDir}/store`;
    log("hd cas add");
    const root = (await hdCli(["cas", "add", tree], store)).trim().split("\n")[0];
    log("mksquashfs");
    await sh(`mksquashfs ${tree} ${workDir}/tree.sqfs -noappend -quiet -no-progress`);
    const mnt = { hd: `${workDir}/mnt-hd`, squashfuse: `${workDir}/mnt-sq` };
    Deno.mkdirSync(mnt.hd);
    Deno.mkdirSync(mnt.squashfuse);
    const mounts = {
      hd: async () => {
        await hdCli(["mount", root, mnt.hd], store);
      },
      squashfuse: async () => {
        await sh(`squashfuse ${workDir}/tree.sqfs ${mnt.squashfuse}`);
      },
    };
    const unmounts = {
      hd: async () => void await hdCli(["unmount", mnt.hd], store),
      squashfuse: async () => void await sh(`fusermount3 -u ${mnt.squashfuse}`),
    };
    const tools = ["disk", "hd", "squashfuse"] as const;
    const dirOf = (t: (typeof tools)[number]) => t === "disk" ? tree : mnt[t];
    /** Fresh mounts and an empty page cache. */
    const cold = async () => {
      for (const t of ["hd", "squashfuse"] as const) {
        try {
          await unmounts[t]();
        } catch { /* not mounted */ }
      }
      await dropCaches();
      await mounts.hd();
      await mounts.squashfuse();
    };
    const row = (c: string, tool: string, value: number, unit: string, extra = {}) => {
      rows.push({ bench: "fuse", case: c, tool, value, unit, extra });
      log(`${c.padEnd(36)} ${tool.padEnd(11)} ${value.toFixed(2)} ${unit}`);
    };
    try {
      await mounts.hd();
      await mounts.squashfuse();
      const extra = { files: shape.files, bytes: shape.bytes, bigMiB };

      // find over the tree (cold, then warm).
      for (const tool of tools) {
        await cold();
        row("find tree (cold)", tool, await timeSh(`find ${dirOf(tool)} | wc -l`), "ms", extra);
        row("find tree (warm)", tool, await timeSh(`find ${dirOf(tool)} | wc -l`), "ms", extra);
      }
      // cat every file of node_modules, cold then warm.
      for (const tool of tools) {
        await cold();
        const line = `cd ${
          dirOf(tool)
        }/node_modules && find . -type f -print0 | xargs -0 cat > /dev/null`;
        row("cat all files (cold)", tool, await timeSh(line), "ms", extra);
        row("cat all files (warm)", tool, await timeSh(line), "ms", extra);
      }
      // Sequential read of the big file.
      for (const tool of tools) {
        await cold();
        const line = `cat ${dirOf(tool)}/big.bin > /dev/null`;
        const c = await timeSh(line);
        row(`read ${bigMiB} MiB file (cold)`, tool, bigMiB / (c / 1000), "MiB/s", extra);
        const w = await timeSh(line);
        row(`read ${bigMiB} MiB file (warm)`, tool, bigMiB / (w / 1000), "MiB/s", extra);
      }
      // stat latency over every file (first touch after a fresh mount, then cached).
      const list = (await sh(`cd ${tree}/node_modules && find . -type f`)).trim().split("\n");
      for (const tool of tools) {
        await cold();
        for (const phase of ["cold", "warm"]) {
          const ts: number[] = [];
          for (const p of list) {
            const t = performance.now();
            Deno.statSync(`${dirOf(tool)}/node_modules/${p}`);
            ts.push((performance.now() - t) * 1000);
          }
          row(`stat (${phase}) median`, tool, median(ts), "µs", extra);
          row(`stat (${phase}) p99`, tool, percentile(ts, 99), "µs", extra);
        }
      }
      // cp -r of node_modules.
      for (const tool of tools) {
        await cold();
        const dest = `${workDir}/copy-${tool}`;
        row(
          "cp -r node_modules (cold)",
          tool,
          await timeSh(`cp -r ${dirOf(tool)}/node_modules ${dest}`),
          "ms",
          extra,
        );
        await sh(`rm -rf ${dest}`);
      }
    } finally {
      for (const t of ["hd", "squashfuse"] as const) {
        try {
          await unmounts[t]();
        } catch { /* not mounted */ }
      }
    }
    // hd relative to squashfuse and disk, per case.
    const by = new Map<string, Record<string, number>>();
    for (const r of rows) by.set(r.case, { ...by.get(r.case), [r.tool]: r.value });
    for (const [c, v] of by) {
      const higherIsBetter = c.startsWith("read ");
      const ratio = higherIsBetter ? v.squashfuse / v.hd : v.hd / v.squashfuse;
      rows.push({ bench: "fuse", case: c, tool: "hd/squashfuse", value: ratio, unit: "x" });
      log(
        `${c.padEnd(36)} hd is ${ratio.toFixed(2)}x squashfuse's ${higherIsBetter ? "time" : ""}`,
      );
    }
    return rows;
  },
};

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const workDir = Deno.makeTempDirSync({ prefix: "hd-bench-fuse-" });
  try {
    const rows = await bench.run({ workDir, quick, log: (s) => console.error(`[fuse] ${s}`) });
    console.log(JSON.stringify(rows, null, 1));
  } finally {
    await sh(`rm -rf ${workDir}`).catch(() => {});
  }
}

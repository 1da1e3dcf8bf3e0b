/**
 * Remote build cache bench: a step that builds ~55 MB of output (a copy of this host's Python
 * 3.11 library and a gzipped tarball of it, plus the project's own src/) in a project on the host,
 * with a local docker-registry on 127.0.0.1 as the team cache:
 * - store A runs the step and pushes it (`hd up -d --push-cache`): bytes uploaded;
 * - a fresh store B runs `hd up -d` cold without the cache (the step runs) and a fresh store C
 *   with it (the step's result is downloaded): wall time and bytes downloaded;
 * - a one-file edit in src/ in A: the step runs again and pushes — bytes uploaded.
 * @module
 */
import type { Bench, BenchRow } from "./lib.ts";
import { startRegistry } from "../tests/oci/_fixtures.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;

async function hd(args: string[], store: string, cwd: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", CLI, ...args],
    cwd,
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`hd ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(0, 400)}`);
  }
}

function project(dir: string): void {
  Deno.mkdirSync(`${dir}/src`, { recursive: true });
  for (let i = 0; i < 20; i++) Deno.writeTextFileSync(`${dir}/src/f${i}.txt`, `file ${i}\n`);
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "bench-remote"

[build]
steps = [{ run = "rm -rf out && mkdir -p out && cp -r src out/ && cp -r /usr/lib/python3.11 out/py && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C out -cf - py | gzip -6n > out/py.tgz", inputs = ["src"], outputs = ["out"] }]
`,
  );
}

function lastMatch(log: string, re: RegExp): RegExpExecArray {
  let m: RegExpExecArray | null = null;
  for (const line of log.split("\n")) m = re.exec(line) ?? m;
  if (!m) throw new Error(`no line like ${re} in the log`);
  return m;
}

/** The bench module. */
export const bench: Bench = {
  name: "remote",
  async run({ workDir, log }) {
    const rows: BenchRow[] = [];
    const row = (c: string, value: number, unit: string, extra = {}) =>
      rows.push({ bench: "remote", case: c, tool: "hd", value, unit, extra });
    const reg = await startRegistry(workDir);
    const cache = `${reg.host}/bench/hd-cache`;
    const [a, b, c] = ["a", "b", "c"].map((n) => ({
      store: `${workDir}/store-${n}`,
      cwd: `${workDir}/proj-${n}`,
    }));
    for (const p of [a, b, c]) project(p.cwd);
    try {
      log("store A: run and push");
      await hd(["up", "-d", "--push-cache", "--cache", cache], a.store, a.cwd);
      await hd(["down"], a.store, a.cwd);
      const pushRe = /pushed step \w+ to \S+ \((\d+) pack\(s\), (\d+) bytes/;
      const first = lastMatch(Deno.readTextFileSync(`${a.cwd}/.hd/logs/hd.log`), pushRe);
      row("first push of the step's result", Number(first[2]), "bytes", { packs: first[1] });

      log("store B: cold, no cache");
      let t = performance.now();
      await hd(["up", "-d", "--cache", "off"], b.store, b.cwd);
      const without = performance.now() - t;
      await hd(["down"], b.store, b.cwd);
      row("store B cold hd up, step runs (no cache)", without, "ms");

      log("store C: cold, with the cache");
      t = performance.now();
      await hd(["up", "-d", "--cache", cache], c.store, c.cwd);
      const withCache = performance.now() - t;
      await hd(["down"], c.store, c.cwd);
      const got = lastMatch(
        Deno.readTextFileSync(`${c.cwd}/.hd/logs/hd.log`),
        /from the remote cache \(\w+, (\d+) pack\(s\), (\d+) bytes, (\d+) ms\)/,
      );
      row("store C cold hd up, step from the remote cache", withCache, "ms", {
        downloadMs: Number(got[3]),
      });
      row("bytes downloaded by the cold hd up", Number(got[2]), "bytes", { packs: got[1] });

      log("store A: one-file edit, run and push");
      Deno.writeTextFileSync(`${a.cwd}/src/f3.txt`, "edited\n");
      await hd(["up", "-d", "--push-cache", "--cache", cache], a.store, a.cwd);
      await hd(["down"], a.store, a.cwd);
      const second = lastMatch(Deno.readTextFileSync(`${a.cwd}/.hd/logs/hd.log`), pushRe);
      row("bytes pushed after a one-file edit", Number(second[2]), "bytes", {
        packs: second[1],
      });
    } finally {
      for (const p of [a, b, c]) await hd(["down"], p.store, p.cwd).catch(() => {});
      await reg.stop();
    }
    return rows;
  },
};

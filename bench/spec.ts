/**
 * Bench "spec": how long hd takes to know a project's state, beside git on the same tree.
 *
 * - first scan: `hd status` on a fresh store (ingest every file, hash the Env and its steps)
 *   vs `git add -A && git write-tree` on a fresh repository;
 * - unchanged: `hd status` with a warm stat cache vs `git status --porcelain` with a warm index;
 * - one file edited: the same two after touching one source file;
 * - process startup (`--version`) of each, to read the others against.
 *
 * Both sides run as processes (hd pays Deno's startup, git its own). The project is generated:
 * N small JavaScript files in nested directories, a package.json and a package-lock.json.
 * @module
 */
import { type Bench, type BenchRow, median, sh, timeCmd } from "./lib.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

function makeProject(dir: string, files: number): void {
  Deno.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < files; i++) {
    const sub = `${dir}/src/m${i % 50}/d${i % 7}`;
    if (i < 350) Deno.mkdirSync(sub, { recursive: true });
    Deno.writeTextFileSync(
      `${sub}/f${i}.js`,
      `// file ${i}\nexport const v${i} = ${i};\n${"x".repeat(200 + (i * 37) % 3000)}\n`,
    );
  }
  Deno.writeTextFileSync(`${dir}/package.json`, '{ "name": "bench", "version": "1.0.0" }\n');
  Deno.writeTextFileSync(
    `${dir}/package-lock.json`,
    JSON.stringify({
      name: "bench",
      lockfileVersion: 3,
      packages: {
        "": { name: "bench" },
        "node_modules/a": { version: "1.0.0", integrity: "sha512-a" },
      },
    }),
  );
  Deno.writeTextFileSync(
    `${dir}/hd.toml`,
    `[environment]
name = "bench"
[dependencies]
npm = { file = "package-lock.json" }
[build]
steps = [
  { run = "npm ci", inputs = ["package*.json"], outputs = ["node_modules"] },
  "npm run build",
]
`,
  );
}

/** The "spec" bench. */
export const bench: Bench = {
  name: "spec",
  async run({ workDir, quick, log }) {
    const n = quick ? 1000 : 10000;
    const reps = quick ? 3 : 7;
    const proj = `${workDir}/spec-project`;
    const store = `${workDir}/spec-store`;
    const gitProj = `${workDir}/spec-git`;
    makeProject(proj, n);
    await sh(`cp -r ${proj} ${gitProj}`);
    const hdArgs = ["run", "-A", "--quiet", `${REPO}/cli.ts`, "status", "--json"];
    const env = { HD_HOME: store, NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "" };
    const rows: BenchRow[] = [];
    const extra = { files: n };
    const row = (c: string, tool: string, value: number) =>
      rows.push({ bench: "spec", case: c, tool, value: Math.round(value), unit: "ms", extra });

    log(`spec: ${n} files, first scan`);
    row("first scan", "hd", await timeCmd(Deno.execPath(), hdArgs, { cwd: proj, env }));
    await sh("git init -q . && git config user.email b@b && git config user.name b", {
      cwd: gitProj,
    });
    row(
      "first scan",
      "git",
      await timeCmd("sh", ["-c", "git add -A && git write-tree >/dev/null"], { cwd: gitProj }),
    );
    await sh("git commit -qm init", { cwd: gitProj });
    // Let the stat cache's racy window (2 s) pass so the warm runs can trust it.
    await new Promise((r) => setTimeout(r, 2500));
    await timeCmd(Deno.execPath(), hdArgs, { cwd: proj, env });

    log("spec: unchanged");
    const hdWarm: number[] = [];
    const gitWarm: number[] = [];
    for (let i = 0; i < reps; i++) {
      hdWarm.push(await timeCmd(Deno.execPath(), hdArgs, { cwd: proj, env }));
      gitWarm.push(await timeCmd("git", ["status", "--porcelain"], { cwd: gitProj }));
    }
    row("status, unchanged", "hd", median(hdWarm));
    row("status, unchanged", "git", median(gitWarm));

    // Process startup alone, to read the figures above against.
    const hdStart: number[] = [];
    const gitStart: number[] = [];
    for (let i = 0; i < reps; i++) {
      hdStart.push(
        await timeCmd(Deno.execPath(), ["run", "-A", "--quiet", `${REPO}/cli.ts`, "--version"], {
          env,
        }),
      );
      gitStart.push(await timeCmd("git", ["--version"]));
    }
    row("process startup (--version)", "hd", median(hdStart));
    row("process startup (--version)", "git", median(gitStart));

    log("spec: one file edited");
    const hdEdit: number[] = [];
    const gitEdit: number[] = [];
    for (let i = 0; i < reps; i++) {
      const rel = `src/m${i % 50}/d${i % 7}/f${i}.js`;
      Deno.writeTextFileSync(`${proj}/${rel}`, `// edit ${i}\n`, { append: true });
      Deno.writeTextFileSync(`${gitProj}/${rel}`, `// edit ${i}\n`, { append: true });
      hdEdit.push(await timeCmd(Deno.execPath(), hdArgs, { cwd: proj, env }));
      gitEdit.push(await timeCmd("git", ["status", "--porcelain"], { cwd: gitProj }));
    }
    row("status, one file edited", "hd", median(hdEdit));
    row("status, one file edited", "git", median(gitEdit));
    return rows;
  },
};

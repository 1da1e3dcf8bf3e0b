/**
 * Bench "spec": how long hd takes to know a project's state, beside git on the same tree.
 *
 * - first scan: `hd status` on a fresh store and no stat cache (it hashes every file and writes
 *   nothing to the store) vs git hashing every file of a fresh repository without writing
 *   (`git ls-files -o | git hash-object --stdin-paths`): the same work on both sides;
 * - unchanged: `hd status` with a warm stat cache vs `git status --porcelain` on a committed repo;
 * - one file edited: the same two after appending to one source file (a new file each round);
 *   one file saved by rename (written beside, renamed over it, as editors save: its directory
 *   changes too); one file created. The changes of a case's rounds add up (no status in between
 *   re-saves hd's proof), and so do those of the cases before it;
 * - start-up: `hd --version` and `hd --help` beside Deno's floor (`deno run` of an empty script,
 *   with the same flags) and `git --version`; `hd status` with nothing running on a small project
 *   (examples/hello, its proof saved) beside the same floor.
 *
 * Every case alternates hd and its peer (A B A B …), ≥ 5 rounds in a full run (3 with --quick;
 * the unchanged status and the start-up cases, 20–50 ms a run whose spread is as wide as the gap
 * they measure, 3x as many),
 * and reports the median with min–max and the 1-minute load average in `extra`. Both sides run as
 * processes (hd pays Deno's start-up, git its own). The project is generated: N small JavaScript
 * files in nested directories, a package.json and a package-lock.json.
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

function loadAvg(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
  } catch {
    return NaN;
  }
}

/** A timed command of one side of a case. */
type Side = {
  tool: string;
  cmd: string;
  args: string[];
  cwd?: string;
  /** Evaluated at each run (the store may change between rounds). */
  env?: () => Record<string, string>;
};

/** The "spec" bench. */
export const bench: Bench = {
  name: "spec",
  async run({ workDir, quick, log }) {
    const n = quick ? 1000 : 10000;
    const rounds = quick ? 3 : 7;
    const proj = `${workDir}/spec-project`;
    const gitProj = `${workDir}/spec-git`;
    makeProject(proj, n);
    await sh(`cp -r ${proj} ${gitProj}`);
    const deno = Deno.execPath();
    const hdArgs = ["run", "-A", "--quiet", `${REPO}/cli.ts`];
    const path = Deno.env.get("PATH") ?? "";
    let store = `${workDir}/spec-store`;
    const env = () => ({ HD_HOME: store, NO_COLOR: "1", PATH: path });
    const rows: BenchRow[] = [];

    /** Runs the sides alternately `rounds` times (`before` ahead of each round) and adds rows. */
    const alternate = async (
      c: string,
      sides: Side[],
      before?: (i: number) => Promise<void>,
      times = 1,
    ) => {
      const t: number[][] = sides.map(() => []);
      const loads: number[] = [];
      for (let i = 0; i < rounds * times; i++) {
        await before?.(i);
        loads.push(loadAvg());
        for (let k = 0; k < sides.length; k++) {
          const s = sides[k];
          t[k].push(await timeCmd(s.cmd, s.args, { cwd: s.cwd, env: s.env?.() }));
        }
      }
      sides.forEach((s, k) =>
        rows.push({
          bench: "spec",
          case: c,
          tool: s.tool,
          value: Math.round(median(t[k])),
          unit: "ms",
          extra: {
            files: n,
            rounds: rounds * times,
            min: Math.round(Math.min(...t[k])),
            max: Math.round(Math.max(...t[k])),
            samples: t[k].map(Math.round),
            loadavg: median(loads),
          },
        })
      );
    };
    const hdStatus: Side = {
      tool: "hd",
      cmd: deno,
      args: [...hdArgs, "status", "--json"],
      cwd: proj,
      env,
    };
    const gitStatus: Side = {
      tool: "git",
      cmd: "git",
      args: ["status", "--porcelain"],
      cwd: gitProj,
    };

    log(`spec: ${n} files, first scan (fresh store, fresh repository), ${rounds} rounds`);
    // a fresh store and no stat cache for hd; a fresh repository for git, each round
    const fresh = async (i: number) => {
      store = `${workDir}/spec-store-${i}`;
      await Deno.remove(`${proj}/.hd`, { recursive: true }).catch(() => {});
      await sh(
        "rm -rf .git && git init -q . && git config user.email b@b && git config user.name b",
        {
          cwd: gitProj,
        },
      );
    };
    await alternate("first scan (hash every file, write nothing)", [
      hdStatus,
      {
        tool: "git",
        cmd: "sh",
        args: [
          "-c",
          "git ls-files -o --exclude-standard | git hash-object --stdin-paths >/dev/null",
        ],
        cwd: gitProj,
      },
    ], fresh);
    await sh("git add -A && git commit -qm init", { cwd: gitProj });
    // Let the stat cache's racy window pass so the warm runs can trust it, then warm it.
    await new Promise((r) => setTimeout(r, 2500));
    await timeCmd(deno, [...hdArgs, "status", "--json"], { cwd: proj, env: env() });
    await timeCmd("git", ["status", "--porcelain"], { cwd: gitProj });

    log("spec: status, unchanged");
    await alternate("status, unchanged", [hdStatus, gitStatus], undefined, 3);

    log("spec: start-up");
    const empty = `${workDir}/empty.ts`;
    Deno.writeTextFileSync(empty, "");
    await alternate(
      "start-up --version",
      [
        { tool: "deno run (empty)", cmd: deno, args: ["run", "-A", "--quiet", empty], env },
        { tool: "hd", cmd: deno, args: [...hdArgs, "--version"], env },
        { tool: "git", cmd: "git", args: ["--version"] },
      ],
      undefined,
      3,
    );
    await alternate(
      "start-up --help",
      [
        { tool: "deno run (empty)", cmd: deno, args: ["run", "-A", "--quiet", empty], env },
        { tool: "hd", cmd: deno, args: [...hdArgs, "--help"], env },
      ],
      undefined,
      3,
    );

    // `hd status` with nothing running on a small project (examples/hello's files): the issue
    // counts it among the commands that do no work, so it stands beside Deno's floor too
    const small = `${workDir}/spec-small`;
    await sh(`cp -r ${REPO}/examples/hello ${small} && rm -rf ${small}/.hd`);
    const smallStatus: Side = {
      tool: "hd",
      cmd: deno,
      args: [...hdArgs, "status", "--json"],
      cwd: small,
      env,
    };
    // the proof: one status past the racy window of the copy, another to save it bound
    await new Promise((r) => setTimeout(r, 1200));
    await timeCmd(deno, smallStatus.args, { cwd: small, env: env() });
    await new Promise((r) => setTimeout(r, 1200));
    await timeCmd(deno, smallStatus.args, { cwd: small, env: env() });
    await alternate(
      "start-up status, small project, nothing running",
      [
        { tool: "deno run (empty)", cmd: deno, args: ["run", "-A", "--quiet", empty], env },
        smallStatus,
      ],
      undefined,
      3,
    );

    log("spec: status, one file edited");
    await alternate("status, one file edited", [hdStatus, gitStatus], (i) => {
      const rel = `src/m${i % 50}/d${i % 7}/f${i}.js`;
      Deno.writeTextFileSync(`${proj}/${rel}`, `// edit ${i}\n`, { append: true });
      Deno.writeTextFileSync(`${gitProj}/${rel}`, `// edit ${i}\n`, { append: true });
      return Promise.resolve();
    });

    // as most editors save (vim, JetBrains' safe write …): the new content written beside the
    // file, then renamed over it, so the directory changes too
    log("spec: status, one file saved by rename");
    await alternate("status, one file saved by rename (an editor's atomic save)", [
      hdStatus,
      gitStatus,
    ], (i) => {
      const j = i + 500; // a file the cases before did not touch
      const rel = `src/m${j % 50}/d${j % 7}/f${j}.js`;
      for (const root of [proj, gitProj]) {
        const text = Deno.readTextFileSync(`${root}/${rel}`) + `// saved ${i}\n`;
        Deno.writeTextFileSync(`${root}/${rel}.swp`, text);
        Deno.renameSync(`${root}/${rel}.swp`, `${root}/${rel}`);
      }
      return Promise.resolve();
    });

    log("spec: status, one file created");
    await alternate("status, one file created", [hdStatus, gitStatus], (i) => {
      const rel = `src/m${(i + 30) % 50}/d${(i + 5) % 7}/new${i}.js`;
      for (const root of [proj, gitProj]) {
        Deno.writeTextFileSync(`${root}/${rel}`, `export const n${i} = ${i};\n`);
      }
      return Promise.resolve();
    });
    return rows;
  },
};

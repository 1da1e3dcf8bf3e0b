/**
 * Which project files a `RUN` reads when it installs dependencies: the rules that split `COPY . .`
 * into per-step inputs. A command is cut into simple commands (on `&&`, `||`, `;`, `|`, newlines);
 * the step is keyed by the union of the matched rules' files only when every simple command is an
 * install a rule knows or a harmless one (`cd`, `mkdir`, `rm -rf /abs`, `echo`, …). Anything else
 * (`npm run build`, `go build`, `pip install .`) reads the sources, and the step keeps the whole tree.
 *
 * @example
 * ```ts
 * import { classifyRun } from "./rules.ts";
 * classifyRun("npm ci", () => true); // { rules: ["npm"], inputs: ["package.json", …], outputs: ["node_modules"] }
 * ```
 * @module
 */

/** One package-manager rule. */
export interface Rule {
  /** Rule name, shown in the hd.toml comment ("keyed by the npm rule"). */
  name: string;
  /** Does this simple command (its words) install dependencies by this rule? */
  matches(words: string[]): boolean;
  /** Files (or globs) the install reads; `always` are kept even when absent. */
  files: string[];
  always: string[];
  /** Paths the install writes into the project. */
  outputs: string[];
}

const sub = (w: string[], i: number) => (w[i] ?? "").toLowerCase();
/** The words after a leading `python -m` / `python3 -m`, `uv`, or nothing. */
function tool(w: string[]): string[] {
  if (/^python[0-9.]*$/.test(w[0] ?? "") && w[1] === "-m") return w.slice(2);
  return w;
}
const base = (s: string) => s.split("/").pop() ?? s;

/** The rules, in the order they are tried. */
export const RULES: readonly Rule[] = [
  {
    name: "npm",
    matches: (w) =>
      ["npm"].includes(base(w[0])) && ["ci", "install", "i", "add"].includes(sub(w, 1)),
    files: ["package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc"],
    always: ["package.json"],
    outputs: ["node_modules"],
  },
  {
    name: "yarn",
    matches: (w) =>
      base(w[0]) === "yarn" &&
      (w.length === 1 || sub(w, 1) === "install" || sub(w, 1).startsWith("--")),
    files: ["package.json", "yarn.lock", ".yarnrc", ".yarnrc.yml", ".yarn/releases"],
    always: ["package.json"],
    outputs: ["node_modules"],
  },
  {
    name: "pnpm",
    matches: (w) => base(w[0]) === "pnpm" && ["install", "i", "fetch"].includes(sub(w, 1)),
    files: ["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml", ".npmrc"],
    always: ["package.json"],
    outputs: ["node_modules"],
  },
  {
    name: "pip",
    matches: (w0) => {
      const w = tool(w0);
      const pip = /^pip[0-9.]*$/.test(base(w[0] ?? "")) && sub(w, 1) === "install";
      const uv = base(w[0] ?? "") === "uv" &&
        (sub(w, 1) === "sync" || (sub(w, 1) === "pip" && sub(w, 2) === "install"));
      const poetry = base(w[0] ?? "") === "poetry" && sub(w, 1) === "install";
      const pipenv = base(w[0] ?? "") === "pipenv" && sub(w, 1) === "install";
      // installing the project itself (`pip install .`, `-e .`) reads the sources
      const self = w.some((x) => x === "." || x === "./" || x.startsWith(".["));
      return (pip || uv || poetry || pipenv) && !self;
    },
    files: [
      "requirements*.txt",
      "requirements",
      "pyproject.toml",
      "poetry.lock",
      "uv.lock",
      "Pipfile",
      "Pipfile.lock",
      "setup.cfg",
    ],
    always: [],
    outputs: [],
  },
  {
    name: "go",
    matches: (w) =>
      base(w[0]) === "go" && sub(w, 1) === "mod" && ["download", "verify"].includes(sub(w, 2)),
    files: ["go.mod", "go.sum", "go.work", "go.work.sum"],
    always: ["go.mod"],
    outputs: [],
  },
  {
    name: "cargo",
    matches: (w) => base(w[0]) === "cargo" && ["fetch", "vendor"].includes(sub(w, 1)),
    files: ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"],
    always: ["Cargo.toml"],
    outputs: [],
  },
  {
    name: "bundler",
    matches: (w) => ["bundle", "bundler"].includes(base(w[0])) && sub(w, 1) === "install",
    files: ["Gemfile", "Gemfile.lock", "*.gemspec", ".bundle/config"],
    always: ["Gemfile"],
    outputs: [],
  },
  {
    name: "composer",
    matches: (w) => base(w[0]).startsWith("composer") && ["install", "update"].includes(sub(w, 1)),
    files: ["composer.json", "composer.lock", "auth.json"],
    always: ["composer.json"],
    outputs: ["vendor"],
  },
  {
    name: "maven",
    matches: (w) =>
      ["mvn", "mvnw", "./mvnw"].includes(w[0]) &&
      w.slice(1).some((x) => x.startsWith("dependency:")) &&
      w.slice(1).every((x) => x.startsWith("-") || x.startsWith("dependency:")),
    files: ["pom.xml", ".mvn", "mvnw"],
    always: ["pom.xml"],
    outputs: [],
  },
  {
    name: "gradle",
    matches: (w) =>
      ["gradle", "gradlew", "./gradlew"].includes(w[0]) &&
      w.slice(1).some((x) => x === "dependencies" || x === "--refresh-dependencies") &&
      w.slice(1).every((x) => x.startsWith("-") || x === "dependencies"),
    files: [
      "build.gradle",
      "build.gradle.kts",
      "settings.gradle",
      "settings.gradle.kts",
      "gradle.properties",
      "gradle",
      "gradlew",
    ],
    always: [],
    outputs: [],
  },
  {
    name: "apt",
    matches: (w) =>
      ["apt-get", "apt"].includes(base(w[0])) ||
      (base(w[0]) === "dpkg" && w.includes("--configure")),
    files: [],
    always: [],
    outputs: [],
  },
  {
    name: "apk",
    matches: (w) => base(w[0]) === "apk",
    files: [],
    always: [],
    outputs: [],
  },
];

/** Simple commands that read no project file (they may run beside an install). */
function harmless(w: string[]): boolean {
  const c = base(w[0] ?? "");
  if (["cd", "mkdir", "echo", "true", ":", "set", "export", "corepack", "test", "["].includes(c)) {
    return true;
  }
  if (c === "rm") return w.slice(1).every((x) => x.startsWith("-") || x.startsWith("/"));
  if (c === "npm" && ["config", "cache", "set"].includes(sub(w, 1))) return true;
  if (c === "yarn" && ["config", "cache"].includes(sub(w, 1))) return true;
  if (/^pip[0-9.]*$/.test(c) && sub(w, 1) === "install" && w.includes("--upgrade")) {
    return w.slice(2).every((x) => x.startsWith("-") || /^(pip|setuptools|wheel)$/.test(x));
  }
  return false;
}

/** Cuts a shell command into simple commands' words (quotes removed, a rough POSIX split). */
export function simpleCommands(cmd: string): string[][] {
  const out: string[][] = [];
  let words: string[] = [];
  let cur = "";
  let quote = "";
  let inWord = false;
  const flushWord = () => {
    if (inWord) words.push(cur);
    cur = "";
    inWord = false;
  };
  const flushCmd = () => {
    flushWord();
    // drop leading VAR=value assignments and `env`/`sudo`/`exec`
    while (
      words.length && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]) ||
        ["sudo", "exec", "env", "time", "command"].includes(words[0]))
    ) words.shift();
    if (words.length) out.push(words);
    words = [];
  };
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"' && i + 1 < cmd.length) cur += cmd[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < cmd.length) {
      if (cmd[i + 1] !== "\n") {
        cur += cmd[i + 1];
        inWord = true;
      }
      i++;
    } else if (c === "&" || c === "|" || c === ";" || c === "\n" || c === "(" || c === ")") {
      flushCmd();
    } else if (c === " " || c === "\t") flushWord();
    else {
      cur += c;
      inWord = true;
    }
  }
  flushCmd();
  return out;
}

/** How one RUN is keyed. */
export interface RunKey {
  /** Names of the rules that matched, in order; empty when the step reads the sources. */
  rules: string[];
  /** The install's project inputs (rules' files that exist, plus their `always` files). */
  inputs: string[];
  outputs: string[];
  /** Why no rule keys it (the first simple command that reads the sources), when rules is empty. */
  reason: string | null;
}

/**
 * Classifies a RUN command. `exists(path)` says whether a project file (or, for a glob, any file
 * matching it) exists; absent optional files are left out of the inputs.
 */
export function classifyRun(cmd: string, exists: (glob: string) => boolean): RunKey {
  const rules: Rule[] = [];
  const cmds = simpleCommands(cmd);
  for (const w of cmds) {
    const r = RULES.find((r) => r.matches(w));
    if (r) {
      if (!rules.includes(r)) rules.push(r);
      continue;
    }
    if (harmless(w)) continue;
    return { rules: [], inputs: [], outputs: [], reason: `\`${w.join(" ")}\` reads the sources` };
  }
  if (!rules.length) {
    return { rules: [], inputs: [], outputs: [], reason: "no package-manager install in it" };
  }
  const inputs: string[] = [];
  const outputs: string[] = [];
  for (const r of rules) {
    for (const f of r.files) {
      if ((r.always.includes(f) || exists(f)) && !inputs.includes(f)) inputs.push(f);
    }
    for (const o of r.outputs) if (!outputs.includes(o)) outputs.push(o);
  }
  return { rules: rules.map((r) => r.name), inputs, outputs, reason: null };
}

/**
 * Warm restarts (`reload = "warm"`): the decisions and the loader behind them. The supervisor
 * (supervisor.ts) starts a Node service as `node --require <loader> …`; the loader records which
 * modules the running instance loaded (`require.cache`) to a file hd owns, outside the project.
 * Beside the running instance hd keeps a standby: the same command, whose loader first requires
 * the unchanged modules of that record (node_modules and project files the service does not watch)
 * and then blocks on stdin until hd writes `go` — before that it runs none of the service's own
 * code and listens on nothing. On an edit hd stops the old instance, then says go: the standby
 * runs the entry point, which finds its dependencies in the module cache and loads only the
 * changed code.
 *
 * Whether a restart may hand over to the standby or must start cold (and why) is
 * {@link warmDecision}, a pure function tested as a table (tests/services/warm_test.ts).
 *
 * @example
 * ```ts
 * import { warmDecision } from "./warm.ts";
 * const d = warmDecision({
 *   reload: "warm", command: "node src/server.js", sandboxed: false,
 *   standby: { alive: true, command: "node src/server.js", preloaded: new Set(["lib/db.js"]) },
 *   changed: ["src/routes.js"], stepsRan: 0,
 * });
 * console.log(d); // "warm"
 * ```
 * @module
 */
import type { GlobSet } from "../watch/pathmap.ts";

/** What {@link warmDecision} looks at. */
export interface WarmFacts {
  /** The service's `reload` setting (absent = "restart"). */
  reload: "warm" | "restart" | undefined;
  /** The service's command now. */
  command: string;
  /**
   * The service runs in a sandbox hd keeps no standby in: a service on an `image` of its own (a
   * service of the environment's `base` has standby containers, see
   * src/runtime/sandbox_services.ts, and counts as not sandboxed here).
   */
  sandboxed: boolean;
  /** The standby, or null when none was prepared. */
  standby: {
    /** Its process is still alive (waiting for go). */
    alive: boolean;
    /** The command it was started with. */
    command: string;
    /**
     * What it holds in its module cache once it preloaded (project-relative paths, absolute for
     * files outside the project) — as it reported it; null while it is still loading.
     */
    preloaded: ReadonlySet<string> | null;
  } | null;
  /** Project-relative paths changed since the standby started (the batch's included). */
  changed: readonly string[];
  /** Build steps that ran (not cached) since the standby started. */
  stepsRan: number;
}

/** A warm handover, or a cold restart and why. */
export type WarmDecision = "warm" | { cold: true; why: string };

/** Files whose change means the dependencies may differ: a standby's node_modules are stale. */
const MANIFESTS = new Set([
  "package.json",
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  ".npmrc",
  ".pnpmfile.cjs",
]);

/**
 * Decides whether a restart hands over to the warm standby ("warm") or starts cold (and why).
 *
 * @example
 * ```ts
 * import { warmDecision } from "./warm.ts";
 * warmDecision({
 *   reload: "warm", command: "node app.js", sandboxed: false,
 *   standby: { alive: true, command: "node app.js", preloaded: new Set(["lib/a.js"]) },
 *   changed: ["lib/a.js"], stepsRan: 0,
 * }); // { cold: true, why: "lib/a.js changed and the standby had loaded it" }
 * ```
 */
export function warmDecision(f: WarmFacts): WarmDecision {
  const cold = (why: string): WarmDecision => ({ cold: true, why });
  if (f.reload !== "warm") return cold('reload is not "warm"');
  if (f.sandboxed) {
    return cold(
      "warm restarts run on the host or the environment's base only (the service has an image)",
    );
  }
  const cmd = nodeCommand(f.command);
  if ("why" in cmd) return cold(cmd.why);
  if (f.standby === null) return cold("no standby was ready");
  if (!f.standby.alive) return cold("the standby died");
  if (f.standby.command !== f.command) return cold("the service's command changed");
  if (f.standby.preloaded === null) return cold("the standby was still loading its modules");
  if (f.stepsRan > 0) return cold("a build step re-ran");
  for (const p of f.changed) {
    const parts = p.split("/");
    if (MANIFESTS.has(parts[parts.length - 1]) || parts.includes("node_modules")) {
      return cold(`${p} changed (the dependencies may differ)`);
    }
    if (f.standby.preloaded.has(p)) return cold(`${p} changed and the standby had loaded it`);
  }
  return "warm";
}

/** What {@link heldDecision} looks at: a held container of a plain sandboxed service. */
export interface HeldFacts {
  /** The service's command now. */
  command: string;
  /** The held container, or null when none was prepared. */
  standby: {
    /** Its process is still alive (holding before the command). */
    alive: boolean;
    /** The command it holds. */
    command: string;
  } | null;
  /**
   * Build steps that ran (not cached) since it was created: its root is the one it was created on,
   * and a step's new layer means a new root.
   */
  stepsRan: number;
}

/**
 * Decides whether a plain restart of a service of the environment's base starts the container
 * hd created ahead ("held": namespaces, mounts and cgroup made, its shell waiting on stdin before
 * the command) or a new one (and why). The project is bound into it, so an edit since it was
 * created is seen by the command it starts; only a new root (a step ran), a changed command
 * (hd.toml drops it before) or its death make it stale.
 *
 * @example
 * ```ts
 * import { heldDecision } from "./warm.ts";
 * heldDecision({
 *   command: "node web/server.js",
 *   standby: { alive: true, command: "node web/server.js" },
 *   stepsRan: 0,
 * }); // "held"
 * ```
 */
export function heldDecision(f: HeldFacts): "held" | { cold: true; why: string } {
  const cold = (why: string) => ({ cold: true as const, why });
  if (f.standby === null) return cold("no container was held ready");
  if (!f.standby.alive) return cold("the held container died");
  if (f.standby.command !== f.command) return cold("the service's command changed");
  if (f.stepsRan > 0) return cold("a build step re-ran (a new root)");
  return "held";
}

const SIMPLE = /^[^;&|\n`()<>$*?{}\[\]#'"\\]+$/;
/** Node options after which no script file runs (or that make one run differently). */
const NO_SCRIPT = new Set([
  "-e",
  "--eval",
  "-p",
  "--print",
  "-i",
  "--interactive",
  "--test",
  "--watch",
  "--watch-path",
  "-",
]);

/**
 * The words of `command` when it is a plain `node [OPTIONS] SCRIPT [ARGS]` line (no shell syntax,
 * `node` or a path ending in `/node`, a script file), or why it is not.
 *
 * @example
 * ```ts
 * import { nodeCommand } from "./warm.ts";
 * nodeCommand("node --enable-source-maps src/server.js"); // { words: ["node", "--enable-source-maps", "src/server.js"] }
 * nodeCommand("npm start"); // { why: "the command is not `node …` (npm)" }
 * ```
 */
export function nodeCommand(command: string): { words: string[] } | { why: string } {
  const c = command.trim().replace(/^exec\s+/, "");
  const words = c.split(/\s+/).filter(Boolean);
  const first = words[0] ?? "";
  if (first !== "node" && !first.endsWith("/node")) {
    return { why: `the command is not \`node …\` (${first || "empty"})` };
  }
  if (!SIMPLE.test(c)) return { why: "the command uses shell syntax (quotes, pipes, variables…)" };
  const script = words.slice(1).find((w) => !w.startsWith("-"));
  const bad = words.slice(1).find((w) => NO_SCRIPT.has(w));
  if (bad !== undefined) return { why: `node ${bad} runs no script file hd can warm` };
  if (script === undefined) return { why: "the command names no script file" };
  return { words };
}

/**
 * The command a warm service runs: `node --require LOADER …` (the loader records its modules; in
 * a standby it also preloads and waits for go), or null when `command` is not a plain node line.
 *
 * @example
 * ```ts
 * import { warmCommandLine } from "./warm.ts";
 * warmCommandLine("node app.js", "/tmp/hd-warm-x/loader.cjs"); // "node --require /tmp/hd-warm-x/loader.cjs app.js"
 * ```
 */
export function warmCommandLine(command: string, loader: string): string | null {
  const c = nodeCommand(command);
  if ("why" in c || !/^[\w/.+-]+$/.test(loader)) return null;
  return [c.words[0], "--require", loader, ...c.words.slice(1)].join(" ");
}

/** What the loader of a running instance recorded (see {@link parseRecord}). */
export interface WarmRecord {
  /** The entry point's absolute path (never preloaded). */
  entry: string | null;
  /** Absolute paths of the modules in `require.cache`, in load order. */
  modules: string[];
  /** For each module, the indexes in `modules` of the modules it required (`module.children`). */
  children: number[][];
}

/** At most this many modules are taken from a record (a bigger one is cut). */
export const MAX_RECORD_MODULES = 50_000;

/**
 * Reads a record the service's own loader wrote — untrusted input: JSON with `entry` and
 * `modules`, absolute paths without control characters; anything else is dropped. Null when it
 * is not such a record.
 *
 * @example
 * ```ts
 * import { parseRecord } from "./warm.ts";
 * parseRecord('{"entry":"/p/app.js","modules":["/p/app.js","/p/node_modules/x/index.js"]}');
 * ```
 */
export function parseRecord(text: string): WarmRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const raw = v as { entry?: unknown; modules?: unknown; children?: unknown };
  const { modules, children } = raw;
  // without the graph hd cannot tell which modules pull in watched code: nothing is taken
  if (!Array.isArray(modules) || !Array.isArray(children)) return null;
  if (modules.length > MAX_RECORD_MODULES || children.length !== modules.length) return null;
  if (!modules.every(modulePath)) return null;
  const n = modules.length;
  const edges = children.map((c) =>
    Array.isArray(c) && c.every((i) => Number.isInteger(i) && i >= 0 && i < n)
      ? c as number[]
      : null
  );
  if (edges.some((e) => e === null)) return null;
  return {
    entry: modulePath(raw.entry) ? raw.entry : null,
    modules: modules as string[],
    children: edges as number[][],
  };
}

/** An absolute path without control characters: what a module cache key may be here. */
function modulePath(p: unknown): p is string {
  return typeof p === "string" && p.startsWith("/") && p.length < 4096 &&
    ![...p].some((c) => c.charCodeAt(0) < 0x20);
}

/**
 * The module list a standby reported once it had preloaded (a JSON array of absolute paths), as
 * the set {@link warmDecision} compares changes with (project-relative inside `dir`); null when it
 * is not such a list.
 *
 * @example
 * ```ts
 * import { loadedSet } from "./warm.ts";
 * loadedSet('["/p/lib/a.js", "/usr/lib/b.js"]', "/p"); // Set { "lib/a.js", "/usr/lib/b.js" }
 * ```
 */
export function loadedSet(text: string, dir: string): Set<string> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length > MAX_RECORD_MODULES || !v.every(modulePath)) return null;
  return new Set(v.map((m) => m.startsWith(dir + "/") ? m.slice(dir.length + 1) : m));
}

/**
 * Which recorded modules a standby preloads: every one but the entry point, the loader, the
 * project files the service watches (its edits; never a file under node_modules), and any module
 * that required one of those, directly or not (it holds their old exports). Returns the absolute
 * paths to require and their keys as {@link warmDecision} sees changes (project-relative inside
 * `dir`, absolute outside).
 *
 * @example
 * ```ts
 * import { preloadList } from "./warm.ts";
 * import { GlobSet } from "../watch/pathmap.ts";
 * const r = preloadList(
 *   {
 *     entry: "/p/src/app.js",
 *     modules: ["/p/src/app.js", "/p/src/a.js", "/p/lib/b.js", "/p/node_modules/x/i.js"],
 *     children: [[1, 2, 3], [], [], []],
 *   },
 *   { dir: "/p", watch: new GlobSet(["src/**"]), loader: "/tmp/l.cjs" },
 * );
 * r.paths; // ["/p/lib/b.js", "/p/node_modules/x/i.js"]
 * ```
 */
export function preloadList(
  rec: WarmRecord,
  o: { dir: string; watch: GlobSet; loader: string },
): { paths: string[]; preloaded: Set<string> } {
  const rel = (m: string) => m.startsWith(o.dir + "/") ? m.slice(o.dir.length + 1) : m;
  const watched = (m: string) => {
    const key = rel(m);
    return key !== m && !key.split("/").includes("node_modules") && o.watch.matches(key);
  };
  // tainted: the entry, the loader, watched files, and whatever required one of them
  const parents: number[][] = rec.modules.map(() => []);
  rec.children.forEach((cs, i) => cs.forEach((c) => parents[c].push(i)));
  const tainted = new Set<number>();
  const todo: number[] = [];
  rec.modules.forEach((m, i) => {
    if (m === rec.entry || m === o.loader || watched(m)) (tainted.add(i), todo.push(i));
  });
  while (todo.length) {
    for (const p of parents[todo.pop()!]) if (!tainted.has(p)) (tainted.add(p), todo.push(p));
  }
  const paths: string[] = [];
  const preloaded = new Set<string>();
  rec.modules.forEach((m, i) => {
    if (tainted.has(i) || preloaded.has(rel(m))) return;
    preloaded.add(rel(m));
    paths.push(m);
  });
  return { paths, preloaded };
}

/**
 * The loader hd writes beside its records and runs with `node --require`. Environment (removed
 * from `process.env` before the service's code runs): `HD_WARM_RECORD` (where to record
 * `require.cache`), `HD_WARM_PRELOAD` (a JSON array of absolute paths to require first),
 * `HD_WARM_LOADED` (where a standby writes the keys of its module cache once it preloaded),
 * `HD_WARM_HOLD=1` (then wait for a `go` line on stdin; EOF without it exits 0),
 * `HD_WARM_NODE_OPTIONS` (in a sandbox, where the loader comes through NODE_OPTIONS: the
 * service's own NODE_OPTIONS, put back; empty: none).
 */
export const WARM_LOADER = `"use strict";
// hd's warm loader (src/services/warm.ts): records the modules this instance loads; in a standby,
// requires the unchanged ones first and waits for hd's go before the entry point runs.
(function () {
  const fs = require("fs");
  const Module = require("module");
  const env = process.env;
  const record = env.HD_WARM_RECORD;
  const preload = env.HD_WARM_PRELOAD;
  const loaded = env.HD_WARM_LOADED;
  const hold = env.HD_WARM_HOLD === "1";
  delete env.HD_WARM_RECORD;
  delete env.HD_WARM_PRELOAD;
  delete env.HD_WARM_LOADED;
  delete env.HD_WARM_HOLD;
  // in a sandbox hd's loader comes through NODE_OPTIONS: the service's own is put back
  if (env.HD_WARM_NODE_OPTIONS !== undefined) {
    if (env.HD_WARM_NODE_OPTIONS) env.NODE_OPTIONS = env.HD_WARM_NODE_OPTIONS;
    else delete env.NODE_OPTIONS;
    delete env.HD_WARM_NODE_OPTIONS;
  }
  const save = (file, value) => {
    const text = JSON.stringify(value);
    const tmp = file + "." + process.pid + ".tmp";
    try {
      fs.writeFileSync(tmp, text);
      fs.renameSync(tmp, file);
    } catch (_) {
      // a sandbox's record file is bound alone (its directory is read-only): written in place
      fs.writeFileSync(file, text);
    }
  };
  if (preload) {
    let list = [];
    try { list = JSON.parse(fs.readFileSync(preload, "utf8")); } catch (_) { list = []; }
    for (const f of Array.isArray(list) ? list : []) {
      if (typeof f !== "string" || f[0] !== "/") continue;
      try { require(f); } catch (_) { /* loaded (or failing) again after go */ }
    }
  }
  // what this standby holds now (hd compares the edits with it)
  if (loaded) {
    try { save(loaded, Object.keys(Module._cache)); } catch (_) { /* hd starts cold */ }
  }
  if (hold) {
    const buf = Buffer.alloc(16);
    const nap = new Int32Array(new SharedArrayBuffer(4));
    let got = "";
    while (got.indexOf("\\n") < 0) {
      let n = 0;
      try { n = fs.readSync(0, buf, 0, buf.length, null); } catch (e) {
        if (e && e.code === "EAGAIN") { Atomics.wait(nap, 0, 0, 2); continue; }
        n = 0;
      }
      if (n === 0) process.exit(0);
      got += buf.toString("latin1", 0, n);
    }
    if (got.slice(0, 2) !== "go") process.exit(0);
  }
  if (!record) return;
  let last = -1;
  const write = () => {
    try {
      const cache = Module._cache;
      const modules = Object.keys(cache);
      if (modules.length === last) return;
      last = modules.length;
      const index = new Map(modules.map((m, i) => [m, i]));
      const children = modules.map((m) =>
        ((cache[m] && cache[m].children) || []).map((c) => index.get(c.filename))
          .filter((i) => i !== undefined)
      );
      const main = modules.find((m) => cache[m] && cache[m].id === ".");
      const entry = main === undefined ? null : main;
      save(record, { version: 1, pid: process.pid, entry, modules, children });
    } catch (_) { /* hd reads the last good record */ }
  };
  setImmediate(write);
  for (const ms of [300, 2000, 10000, 60000]) setTimeout(write, ms).unref();
  process.on("exit", write);
})();
`;

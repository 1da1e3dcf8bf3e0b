/**
 * What `hd ingest` produces: an hd.toml document model (sections with the source lines they came
 * from), the list of reports (FILE:LINE: why, for everything not translated), the table of keys
 * agreed in docs/design/compose.md but not yet honoured by the runtime ({@link FEATURES}), and the
 * writer that renders the model as commented TOML.
 *
 * A planned key is emitted through {@link planned}: when its feature is on it lands in the
 * section's `extra` keys (and so in the TOML), when off the source line is reported as
 * "not translated yet: … (hd.toml key K planned, docs/design/compose.md)". Switching a key on once
 * the runtime honours it is a one-line change in {@link FEATURES}.
 *
 * @example
 * ```ts
 * import { emptyDoc, renderToml } from "./model.ts";
 * const doc = emptyDoc("app");
 * console.log(renderToml(doc));
 * ```
 * @module
 */

/** A place in an input file. */
export interface Source {
  /** The file as shown (relative to the working directory when below it). */
  file: string;
  line: number;
}

/** One thing that was not translated (or translated with an assumption). */
export interface Report {
  file: string;
  line: number;
  /** What: the instruction or key, e.g. `USER app`, `services.db.ports`. */
  what: string;
  /** Why, and what would translate it. */
  why: string;
}

/** A TOML value the writer knows. */
export type TomlValue =
  | string
  | number
  | boolean
  | TomlValue[]
  | { [k: string]: TomlValue };

/** One build step. `inputs` null: chained (the string form). */
export interface StepOut {
  run: string;
  inputs: string[] | null;
  outputs: string[];
  env: Record<string, string>;
  network: "host" | "none";
  /** Comment lines written above the step. */
  comment: string[];
  /** Planned keys (only when their feature is on). */
  extra: Record<string, TomlValue>;
}

/** One service. */
export interface ServiceOut {
  name: string;
  command: string;
  watch: string[];
  port: number | null;
  depends_on: string[];
  restart_policy: "always" | "on_failure" | "never" | null;
  env: Record<string, string>;
  workdir: string | null;
  comment: string[];
  extra: Record<string, TomlValue>;
}

/** The whole document. */
export interface HdDoc {
  /** Lines of the header comment. */
  header: string[];
  environment: {
    name: string;
    base: string | null;
    workdir: string | null;
    env: Record<string, string>;
    comment: string[];
    extra: Record<string, TomlValue>;
  };
  build: {
    steps: StepOut[];
    cache: string[];
    comment: string[];
    extra: Record<string, TomlValue>;
  };
  services: ServiceOut[];
  files: { include: string[]; exclude: string[]; comment: string[] };
  /** Planned top-level tables (`[volumes.NAME]`, `[secrets.NAME]`), only when their feature is on. */
  tables: Record<string, Record<string, Record<string, TomlValue>>>;
}

/** An empty document for environment `name`. */
export function emptyDoc(name: string): HdDoc {
  return {
    header: [],
    environment: { name, base: null, workdir: null, env: {}, comment: [], extra: {} },
    build: { steps: [], cache: [], comment: [], extra: {} },
    services: [],
    files: { include: [], exclude: [], comment: [] },
    tables: {},
  };
}

/** A new service with defaults. */
export function newService(name: string, command: string): ServiceOut {
  return {
    name,
    command,
    watch: [],
    port: null,
    depends_on: [],
    restart_policy: null,
    env: {},
    workdir: null,
    comment: [],
    extra: {},
  };
}

/**
 * The keys of docs/design/compose.md, by feature: the hd.toml key each one writes and whether the
 * runtime honours it yet. Turn one on (`on: true`) when the runtime does, and document it in
 * docs/hdtoml.md; the emission code and its tests are already in place.
 */
export const FEATURES = {
  "environment.user": { key: "environment.user", on: true },
  "environment.env_file": { key: "environment.env_file", on: true },
  "build.shell": { key: "build.shell", on: true },
  "step.workdir": { key: "build.steps[].workdir", on: true },
  "step.user": { key: "build.steps[].user", on: true },
  "step.image": { key: "build.steps[].image", on: true },
  "step.copy": { key: "build.steps[].copy", on: true },
  "service.image": { key: "services.NAME.image", on: true },
  "service.user": { key: "services.NAME.user", on: true },
  "service.env_file": { key: "services.NAME.env_file", on: true },
  "service.ports": { key: "services.NAME.ports", on: true },
  "service.expose": { key: "services.NAME.expose", on: true },
  "service.aliases": { key: "services.NAME.aliases", on: true },
  "service.depends_on_conditions": { key: "services.NAME.depends_on (table form)", on: true },
  "service.healthcheck": { key: "services.NAME.healthcheck", on: true },
  "service.stop_signal": { key: "services.NAME.stop_signal", on: true },
  "service.restart_grace": { key: "services.NAME.restart_grace", on: true },
  "service.volumes": { key: "services.NAME.volumes", on: true },
  "service.tmpfs": { key: "services.NAME.tmpfs", on: true },
  "service.secrets": { key: "services.NAME.secrets", on: true },
  "service.profiles": { key: "services.NAME.profiles", on: true },
  "service.scale": { key: "services.NAME.scale", on: true },
  "service.labels": { key: "services.NAME.labels", on: true },
  "volumes": { key: "[volumes.NAME]", on: true },
  "secrets": { key: "[secrets.NAME]", on: true },
  "interpolation": { key: "${VAR} in hd.toml strings", on: true },
} as const;

/** A feature of {@link FEATURES}. */
export type Feature = keyof typeof FEATURES;

/** Which features are on: {@link FEATURES} by default; tests turn all on to check the emission. */
export type FeatureSet = Readonly<Record<Feature, boolean>>;

/** The features the runtime honours today. */
export function currentFeatures(): FeatureSet {
  return Object.fromEntries(
    Object.entries(FEATURES).map(([k, v]) => [k, v.on]),
  ) as Record<Feature, boolean>;
}

/** Every feature on (tests of the emission of the planned keys). */
export function allFeatures(): FeatureSet {
  return Object.fromEntries(Object.keys(FEATURES).map((k) => [k, true])) as Record<
    Feature,
    boolean
  >;
}

/** The translation's running state: features, reports, and the source of each section. */
export class Translation {
  readonly reports: Report[] = [];
  constructor(readonly features: FeatureSet) {}

  /** Records that `what` at `at` was not translated, and why. */
  report(at: Source, what: string, why: string): void {
    if (this.reports.some((r) => r.file === at.file && r.line === at.line && r.what === what)) {
      return;
    }
    this.reports.push({ file: at.file, line: at.line, what, why });
  }

  /**
   * Emits planned key `key` = `value` into `target` when `feature` is on; otherwise reports
   * `what` at `at` as not translated yet, naming the planned key. Returns whether it was emitted.
   */
  planned(
    feature: Feature,
    target: Record<string, TomlValue>,
    key: string,
    value: TomlValue,
    at: Source,
    what: string,
  ): boolean {
    if (this.features[feature]) {
      target[key] = value;
      return true;
    }
    this.report(
      at,
      what,
      `not translated yet: hd.toml key ${FEATURES[feature].key} planned, docs/design/compose.md`,
    );
    return false;
  }
}

/** Sorts reports by file, then line. */
export function sortReports(rs: Report[]): Report[] {
  return [...rs].sort((a, b) => a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line);
}

/** One report as `FILE:LINE: what: why`. */
export function formatReport(r: Report): string {
  return `${r.file}:${r.line}: ${r.what}: ${r.why}`;
}

// ---- TOML writer -------------------------------------------------------------------------------

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/** A key, bare when it can be. */
export function tomlKey(k: string): string {
  return BARE_KEY.test(k) ? k : tomlString(k);
}

/** A TOML basic string. */
export function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

/** A TOML value on one line (inline arrays and tables). */
export function tomlValue(v: TomlValue): string {
  if (typeof v === "string") return tomlString(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(", ")}]`;
  const entries = Object.entries(v);
  if (!entries.length) return "{}";
  return `{ ${entries.map(([k, x]) => `${tomlKey(k)} = ${tomlValue(x)}`).join(", ")} }`;
}

function comments(lines: string[], indent = ""): string {
  return lines.map((l) => `${indent}# ${l}`.trimEnd() + "\n").join("");
}

/** One build step as an inline value (a string when chained with nothing else). */
export function stepValue(s: StepOut): string {
  const simple = s.inputs === null && !s.outputs.length && !Object.keys(s.env).length &&
    s.network === "host" && !Object.keys(s.extra).length;
  if (simple) return tomlString(s.run);
  // a copy step runs nothing: only its stage (when in one) and what it copies
  if (s.extra.copy !== undefined) return tomlValue(s.extra);
  const t: Record<string, TomlValue> = { run: s.run };
  if (s.inputs !== null) t.inputs = s.inputs;
  if (s.outputs.length) t.outputs = s.outputs;
  if (Object.keys(s.env).length) t.env = s.env;
  if (s.network !== "host") t.network = s.network;
  Object.assign(t, s.extra);
  return tomlValue(t);
}

/** Renders the document as commented TOML. */
export function renderToml(doc: HdDoc): string {
  let out = comments(doc.header);
  const e = doc.environment;
  out += "\n" + comments(e.comment) + "[environment]\n";
  out += `name = ${tomlString(e.name)}\n`;
  if (e.base !== null) out += `base = ${tomlString(e.base)}\n`;
  if (e.workdir !== null) out += `workdir = ${tomlString(e.workdir)}\n`;
  if (Object.keys(e.env).length) out += `env = ${tomlValue(e.env)}\n`;
  for (const [k, v] of Object.entries(e.extra)) out += `${tomlKey(k)} = ${tomlValue(v)}\n`;
  const b = doc.build;
  if (b.steps.length || b.cache.length || Object.keys(b.extra).length) {
    out += "\n" + comments(b.comment) + "[build]\n";
    if (b.steps.length) {
      out += "steps = [\n";
      for (const s of b.steps) out += comments(s.comment, "  ") + `  ${stepValue(s)},\n`;
      out += "]\n";
    }
    if (b.cache.length) out += `cache = ${tomlValue(b.cache)}\n`;
    for (const [k, v] of Object.entries(b.extra)) out += `${tomlKey(k)} = ${tomlValue(v)}\n`;
  }
  for (const s of doc.services) {
    out += "\n" + comments(s.comment) + `[services.${tomlKey(s.name)}]\n`;
    if (s.command) out += `command = ${tomlString(s.command)}\n`;
    if (s.watch.length) out += `watch = ${tomlValue(s.watch)}\n`;
    if (s.port !== null) out += `port = ${s.port}\n`;
    if (s.depends_on.length) out += `depends_on = ${tomlValue(s.depends_on)}\n`;
    if (s.restart_policy) out += `restart_policy = ${tomlString(s.restart_policy)}\n`;
    if (Object.keys(s.env).length) out += `env = ${tomlValue(s.env)}\n`;
    if (s.workdir !== null) out += `workdir = ${tomlString(s.workdir)}\n`;
    for (const [k, v] of Object.entries(s.extra)) out += `${tomlKey(k)} = ${tomlValue(v)}\n`;
  }
  for (const [table, entries] of Object.entries(doc.tables)) {
    for (const [name, keys] of Object.entries(entries)) {
      out += `\n[${table}.${tomlKey(name)}]\n`;
      for (const [k, v] of Object.entries(keys)) out += `${tomlKey(k)} = ${tomlValue(v)}\n`;
    }
  }
  const f = doc.files;
  if (f.include.length || f.exclude.length) {
    out += "\n" + comments(f.comment) + "[files]\n";
    if (f.include.length) out += `include = ${tomlValue(f.include)}\n`;
    if (f.exclude.length) out += `exclude = ${tomlValue(f.exclude)}\n`;
  }
  return out;
}

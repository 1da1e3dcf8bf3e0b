/**
 * `hd ingest`'s entry: find the input (a Dockerfile or a compose file), read the project through a
 * small file interface, translate (from_dockerfile.ts, compose.ts), turn `.dockerignore` into
 * `[files].exclude`, render the commented hd.toml, and check that hd itself loads it.
 *
 * @example
 * ```ts
 * import { ingest, projectFiles } from "./ingest.ts";
 * const r = ingest({ dir: "/src/app", input: "Dockerfile", fs: projectFiles("/src/app"), name: "app" });
 * console.log(r.toml, r.reports);
 * ```
 * @module
 */
import { readBeneath } from "../sys/nofollow.ts";
import { parseSpec } from "../config/parse.ts";
import { HdError } from "../sys/errors.ts";
import { translateCompose } from "./compose.ts";
import { SourceError, translateDockerfile } from "./from_dockerfile.ts";
import {
  currentFeatures,
  emptyDoc,
  type FeatureSet,
  type HdDoc,
  renderToml,
  type Report,
  sortReports,
  Translation,
} from "./model.ts";
import { globSource } from "./words.ts";
import { applyDockerignore } from "./dockerignore.ts";

/** What ingest reads of the project. Paths are relative to the project directory. */
export interface ProjectFiles {
  read(rel: string): string | null;
  /** A path or a glob (`requirements*.txt`) matches something. */
  exists(glob: string): boolean;
  isDir(rel: string): boolean;
}

/** The largest project file `hd ingest` reads (a Dockerfile, a compose file, an env file). */
export const PROJECT_TEXT_MAX = 16 << 20;

/** {@link ProjectFiles} over a real directory. */
export function projectFiles(dir: string): ProjectFiles {
  const stat = (rel: string) => {
    try {
      return Deno.statSync(`${dir}/${rel}`);
    } catch {
      return null;
    }
  };
  return {
    read(rel) {
      try {
        // untrusted: not through a symlink out of the project, not a FIFO or a device, bounded
        // (a compose file's env_file linked to a host file must not land in hd.toml)
        const bytes = readBeneath(dir, rel, PROJECT_TEXT_MAX);
        return bytes === null ? null : new TextDecoder().decode(bytes);
      } catch {
        return null;
      }
    },
    exists(glob) {
      if (!/[*?[]/.test(glob)) return stat(glob) !== null;
      const k = glob.lastIndexOf("/");
      const parent = k < 0 ? "" : glob.slice(0, k);
      const re = new RegExp(`^${globSource(glob.slice(k + 1))}$`);
      try {
        for (const e of Deno.readDirSync(`${dir}/${parent}`)) if (re.test(e.name)) return true;
      } catch { /* no dir */ }
      return false;
    },
    isDir: (rel) => stat(rel)?.isDirectory ?? false,
  };
}

/** The kind of an input, by its name. */
export function inputKind(name: string): "compose" | "dockerfile" {
  const base = name.split("/").pop() ?? name;
  return /^(docker-)?compose(\.[^.]+)?\.ya?ml$/.test(base) || /\.ya?ml$/.test(base)
    ? "compose"
    : "dockerfile";
}

/** The names `hd ingest` looks for without FILE, in order. */
export const INPUT_NAMES = [
  "Dockerfile",
  "*.Dockerfile",
  "compose.yaml",
  "compose.yml",
  "docker-compose.yaml",
  "docker-compose.yml",
];

/** The inputs present in `fs`, in the order of {@link INPUT_NAMES} (globs sorted). */
export function findInputs(dir: string): string[] {
  const names: string[] = [];
  let entries: string[] = [];
  try {
    entries = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch { /* none */ }
  for (const n of INPUT_NAMES) {
    const re = new RegExp(`^${globSource(n)}$`);
    for (const e of entries) if (re.test(e) && !names.includes(e)) names.push(e);
  }
  return names;
}

/** What to ingest. */
export interface IngestOptions {
  /** The project directory (where hd.toml goes). */
  dir: string;
  /** The input, relative to `dir`. */
  input: string;
  fs: ProjectFiles;
  /** Environment name (default for compose files without `name`). */
  name: string;
  /** `name` was given by the user: it wins over compose's `name`. */
  nameGiven?: boolean;
  /** `--target` of a Dockerfile. */
  target?: string | null;
  /** `--build-arg` values. */
  buildArgs?: Record<string, string>;
  /** Variables for compose interpolation (the process environment). */
  env?: Record<string, string>;
  features?: FeatureSet;
  arch?: string;
  /** The input as shown in messages (default `input`). */
  display?: string;
}

/** The result: the document, its TOML, and the reports sorted by file and line. */
export interface IngestResult {
  kind: "compose" | "dockerfile";
  doc: HdDoc;
  toml: string;
  reports: Report[];
}

/**
 * Translates the input. Throws HdError `Cannot ingest FILE: FILE:LINE: …` (exit 1) on broken input.
 */
export function ingest(o: IngestOptions): IngestResult {
  const display = o.display ?? o.input;
  const features = o.features ?? currentFeatures();
  const tr = new Translation(features);
  const kind = inputKind(o.input);
  const text = o.fs.read(o.input);
  if (text === null) {
    throw new HdError(
      `Cannot ingest ${display}: no such file`,
      "name a Dockerfile or a compose file",
    );
  }
  let doc: HdDoc;
  try {
    if (kind === "compose") {
      doc = translateCompose(tr, {
        file: o.input,
        text,
        name: o.name,
        env: o.env,
        readFile: (rel) => o.fs.read(rel),
        exists: (g) => o.fs.exists(g),
        isDir: (p) => o.fs.isDir(p),
        arch: o.arch,
      });
    } else {
      doc = emptyDoc(o.name);
      const ctx = o.input.includes("/") ? o.input.replace(/\/[^/]*$/, "") : "";
      const r = translateDockerfile(tr, {
        file: o.input,
        text,
        target: o.target,
        buildArgs: o.buildArgs,
        context: ctx,
        exists: (g) => o.fs.exists(g),
        isDir: (p) => o.fs.isDir(p),
        arch: o.arch,
      });
      doc.header.push(
        `translated from ${o.input} by \`hd ingest\`; reference: docs/hdtoml.md, docs/ingest.md`,
      );
      doc.environment.base = r.base;
      doc.environment.workdir = r.base ? r.projectDir : null;
      doc.environment.env = r.env;
      doc.environment.comment.push(...r.envComment);
      Object.assign(doc.environment.extra, r.envExtra);
      doc.build.steps = r.steps;
      doc.build.cache = r.cache;
      doc.build.comment.push(...r.buildComment);
      Object.assign(doc.build.extra, r.buildExtra);
      if (r.service) doc.services.push(r.service);
    }
  } catch (e) {
    if (e instanceof SourceError) {
      throw new HdError(
        `Cannot ingest ${display}: ${e.at.file}:${e.at.line}: ${e.message}`,
        e.hint,
      );
    }
    throw e;
  }
  if (doc.build.steps.length) {
    doc.build.comment.unshift(
      "each step names its Dockerfile line and what its hash covers (docs/ingest.md: the split rules)",
    );
  }
  if (kind === "dockerfile") {
    const ctx = o.input.includes("/") ? o.input.replace(/\/[^/]*$/, "") : "";
    applyDockerignore(tr, doc, (rel) => o.fs.read(rel), o.input, ctx);
  }
  if (o.nameGiven) doc.environment.name = o.name;
  const toml = renderToml(doc);
  const today = currentFeatures();
  if (Object.entries(features).every(([k, v]) => today[k as keyof FeatureSet] === v)) {
    try {
      parseSpec(toml, `${o.dir}/hd.toml`);
    } catch (e) {
      throw new HdError(
        `Cannot ingest ${display}: the translation is not a valid hd.toml: ${(e as Error).message}`,
        "the input holds something hd.toml cannot (a name or value it refuses); edit the input or write hd.toml by hand",
      );
    }
  }
  return { kind, doc, toml, reports: sortReports(tr.reports) };
}

/**
 * Loading hd.toml: TOML parsing (smol-toml), validation into an {@link EnvSpec}, and errors that
 * name `file:line:column`, the key, and the nearest valid key for a typo.
 *
 * Every error is an {@link HdError} whose message reads
 * `Cannot load hd.toml: hd.toml:12:8: port must be an integer from 1 to 65535 (key services.web.port)`
 * and whose hint says what to write instead. The reference of the format is docs/hdtoml.md.
 *
 * @example
 * ```ts
 * import { findSpecFile, loadSpec } from "./parse.ts";
 * const spec = loadSpec(findSpecFile(Deno.cwd()));
 * console.log(spec.environment.name, Object.keys(spec.services));
 * ```
 * @module
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { HdError } from "../sys/errors.ts";
import { globSyntaxError } from "../sys/glob.ts";
import { durationOverLimit, parseDuration } from "./duration.ts";
import { type LineCol, SourcePositions } from "./positions.ts";
import { didYouMean } from "./suggest.ts";
import { STOP_SIGNALS, stopSignalName } from "./signals.ts";
import { commandForm, imageWorkdir, RUN_KEYS, serviceRunKeys, userForm } from "./service_keys.ts";
import { declaredVolumes, serviceVolumes, VOLUME_KEYS } from "./volume_keys.ts";
import { dotEnv, ENV_FILE_KEYS, envFileVars } from "./env_files.ts";
import { interpolateDoc } from "./interpolate.ts";
import { checkServiceSecrets, parseSecrets, SECRET_KEYS, serviceSecrets } from "./secret_keys.ts";
import {
  expandReplicas,
  REPLICA_KEYS,
  replicaClash,
  scaleRefusal,
  serviceProfiles,
  serviceScale,
} from "./replica_keys.ts";
import { hostPortClash, parsePortEntry, publishedClash } from "./ports.ts";
import type {
  BuildStepSpec,
  DependencySpec,
  DependsCondition,
  EnvSpec,
  HealthcheckSpec,
  HealthProbe,
  Position,
  PublishedPort,
  RestartPolicy,
  ServiceSpec,
  StepCopySpec,
} from "./types.ts";

import { absSpecPath, displayPath, findSpecFile, SPEC_FILE, specFilePath } from "./find.ts";
/** Re-exported: they live in src/config/find.ts (light enough for `hd up -d`'s first moments). */
export { findSpecFile, SPEC_FILE };

const REF_HINT = "see docs/hdtoml.md for the hd.toml reference";

/** Keys allowed in each table, for unknown-key errors and suggestions. */
export const KNOWN_KEYS = {
  top: [
    "environment",
    "dependencies",
    "build",
    "services",
    "files",
    "options",
    "volumes",
    "secrets",
    "remote",
  ],
  environment: ["name", "base", "env", "workdir", "ca_certs", "user", ...ENV_FILE_KEYS],
  build: ["steps", "cache", "shell"],
  step: ["run", "inputs", "outputs", "env", "network", "user", "workdir", "stage", "image", "copy"],
  stepCopy: ["from", "src", "dst"],
  service: [
    "command",
    "watch",
    "port",
    "depends_on",
    "restart_policy",
    "reload",
    "env",
    "workdir",
    ...RUN_KEYS,
    ...VOLUME_KEYS,
    ...ENV_FILE_KEYS,
    ...SECRET_KEYS,
    ...REPLICA_KEYS,
    "aliases",
    "ports",
    "healthcheck",
    "stop_signal",
    "restart_grace",
    "labels",
    "expose",
  ],
  healthcheck: ["test", "http", "tcp", "interval", "timeout", "retries", "start_period"],
  files: ["include", "exclude"],
  options: ["restart_grace", "debounce", "jobs", "layers"],
  fileDependency: ["file"],
  remote: ["cache"],
} as const;

const RESTART_POLICIES: RestartPolicy[] = ["always", "on_failure", "never"];
const ENV_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const PROVIDER_NAME = /^[a-z][a-z0-9_-]*$/;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Deepest nesting of arrays and inline tables hd.toml may use (hd's own keys need 3); deeper
 * documents are refused as invalid TOML before anything recurses over them.
 */
export const TOML_MAX_DEPTH = 64;

/** The largest hd.toml read (a cloned project's, linked to a huge file by mistake or on purpose). */
export const SPEC_MAX_BYTES = 4 << 20;

/** Defaults of [options], in milliseconds. */
export const DEFAULT_OPTIONS = { restartGraceMs: 5000, debounceMs: 50 } as const;

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (typeof v === "string") return "a string";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a float";
  if (typeof v === "bigint") return "an integer";
  if (typeof v === "boolean") return "a boolean";
  if (v instanceof Date) return "a date";
  if (Array.isArray(v)) return "an array";
  return "a table";
}

export { displayPath };

class Validator {
  readonly file: string;
  readonly shown: string;
  readonly pos: SourcePositions;
  /** Variables for `${VAR}` and env files: the process environment, then the project's .env. */
  lookup: (name: string) => string | undefined = () => undefined;
  /** Project files read besides hd.toml (.env, env_file): their edit reloads hd.toml too. */
  readonly configFiles: string[] = [".env"];

  constructor(file: string, source: string) {
    this.file = file;
    this.shown = displayPath(file);
    this.pos = new SourcePositions(source);
  }

  at(path: string, preferKey = false): Position {
    const lc: LineCol = this.pos.nearest(path, preferKey);
    return { file: this.file, line: lc.line, column: lc.column };
  }

  fail(path: string, what: string, hint = REF_HINT, preferKey = false): never {
    const lc = this.pos.nearest(path, preferKey);
    const key = path ? ` (key ${path})` : "";
    throw new HdError(
      `Cannot load hd.toml: ${this.shown}:${lc.line}:${lc.column}: ${what}${key}`,
      hint,
    );
  }

  keys(path: string, t: Table, allowed: readonly string[], where: string): void {
    for (const k of Object.keys(t)) {
      if (allowed.includes(k)) continue;
      const guess = didYouMean(k, allowed);
      const full = path ? `${path}.${k}` : k;
      this.fail(
        full,
        `unknown key "${k}" in ${where}`,
        guess
          ? `did you mean "${guess}"? (valid keys in ${where}: ${allowed.join(", ")})`
          : `valid keys in ${where}: ${allowed.join(", ")}`,
        true,
      );
    }
  }

  table(path: string, v: unknown, what = path): Table {
    if (!isTable(v)) this.fail(path, `${what} must be a table, not ${typeName(v)}`);
    return v;
  }

  str(path: string, v: unknown, nonEmpty = true): string {
    const name = lastKey(path);
    if (typeof v !== "string") {
      this.fail(path, `${name} must be a string, not ${typeName(v)}`, `write ${name} = "…"`);
    }
    if (nonEmpty && v.trim() === "") this.fail(path, `${name} must not be empty`);
    return v;
  }

  strArray(path: string, v: unknown, example: string): string[] {
    const name = lastKey(path);
    if (!Array.isArray(v)) {
      this.fail(
        path,
        `${name} must be an array of strings, not ${typeName(v)}`,
        `write ${name} = ${example}`,
      );
    }
    return v.map((item, i) => {
      if (typeof item !== "string" || item.trim() === "") {
        this.fail(
          `${path}[${i}]`,
          `${name} must hold non-empty strings; item ${i + 1} is ${
            typeof item === "string" ? "empty" : typeName(item)
          }`,
          `write ${name} = ${example}`,
        );
      }
      return item;
    });
  }

  env(path: string, v: unknown): Record<string, string> {
    const t = this.table(path, v, lastKey(path));
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(t)) {
      if (!VAR_NAME.test(k)) {
        this.fail(
          `${path}.${k}`,
          `"${k}" is not a valid environment variable name`,
          "use letters, digits and _ (not starting with a digit)",
          true,
        );
      }
      if (typeof val !== "string") {
        const shown = typeof val === "number" || typeof val === "boolean" ? String(val) : "…";
        this.fail(
          `${path}.${k}`,
          `environment variable ${k} must be a string, not ${typeName(val)}`,
          `quote it: ${k} = "${shown}"`,
        );
      }
      out[k] = val;
    }
    return out;
  }

  /**
   * A path relative to the project (a dependency file, an output, a service workdir): not
   * absolute, no `~`, no `..` component, no control character. Returned normalized (no `.`
   * components, no doubled or trailing slashes); `.` stands for the project itself, refused
   * unless `root` allows it.
   */
  relPath(path: string, v: unknown, root = false): string {
    const s = this.str(path, v);
    const name = lastKey(path);
    this.#plain(path, s);
    this.#belowProject(path, s, "it must be relative to the project", {
      abs: `write it relative to ${this.dir}, e.g. "${s.replace(/^\/+/, "").split("/").pop()}"`,
      home: "write a path relative to the project (hd.toml's directory)",
      up: 'remove the ".."; hd reads and writes only below the project directory',
    });
    const n = normalizePath(s);
    if (n === "." && !root) {
      this.fail(
        path,
        `${name} "${s}" names the project itself`,
        "name a file or directory below the project",
      );
    }
    return n;
  }

  /**
   * A glob relative to the project (inputs, watch, [files]): as {@link relPath}, kept as is;
   * syntax hd's matcher does not read as picomatch would is refused (globSyntaxError).
   */
  glob(path: string, s: string): string {
    this.#plain(path, s);
    this.#belowProject(path, s, "globs match paths relative to the project", {
      abs: `write it relative to the project, e.g. "${s.replace(/^\/+/, "")}"`,
      home: "write a glob relative to the project (hd.toml's directory)",
      up: 'remove the ".."; globs match only files below the project directory',
    });
    const bad = globSyntaxError(s);
    if (bad !== null) this.fail(path, `${lastKey(path)} "${s}": ${bad.why}`, bad.hint);
    return s;
  }

  /**
   * Refuses a project path or glob that is absolute, starts with `~` or has a `..` component:
   * `rule` says what it must be, `hint` how to fix each case.
   */
  #belowProject(
    path: string,
    s: string,
    rule: string,
    hint: { abs: string; home: string; up: string },
  ): void {
    const name = lastKey(path);
    if (s.startsWith("/")) this.fail(path, `${name} "${s}" is an absolute path; ${rule}`, hint.abs);
    if (s.startsWith("~")) {
      this.fail(path, `${name} "${s}" names a home directory; ${rule}`, hint.home);
    }
    if (s.split("/").includes("..")) {
      this.fail(path, `${name} "${s}" leaves the project (a ".." component)`, hint.up);
    }
  }

  /** An array of project globs. */
  globs(path: string, v: unknown, example: string): string[] {
    return this.strArray(path, v, example).map((s, i) => this.glob(`${path}[${i}]`, s));
  }

  /**
   * A `[build].cache` entry: an absolute path inside the environment (`/var/cache/apt`, as a
   * Dockerfile's `--mount=type=cache,target=…`), `~`, `~/…`, or relative below the workdir; never
   * with a `..` component.
   */
  cachePath(path: string, s: string): string {
    this.#plain(path, s);
    if (s.startsWith("~") && s !== "~" && !s.startsWith("~/")) {
      this.fail(
        path,
        `cache "${s}" names another user's home directory`,
        'write "~/…" (the home directory of the user steps run as)',
      );
    }
    const home = s === "~" || s.startsWith("~/");
    if (s.split("/").includes("..")) {
      this.fail(
        path,
        `cache "${s}" leaves ${home ? "the home directory" : "the workdir"} (a ".." component)`,
        'remove the ".."',
      );
    }
    if (home) return s === "~" ? "~" : `~/${normalizePath(s.slice(2))}`.replace(/\/\.$/, "");
    if (s.startsWith("/")) {
      const abs = normalizePath(s);
      if (abs === ".") {
        this.fail(
          path,
          `cache "${s}" names the whole root`,
          'name a directory, e.g. "/var/cache/apt"',
        );
      }
      return `/${abs}`;
    }
    const n = normalizePath(s);
    if (n === ".") {
      this.fail(path, `cache "${s}" names the workdir itself`, "name a directory below it");
    }
    return n;
  }

  /** `[environment].workdir`: absolute, or relative to the project; no `..`; normalized. */
  workdir(path: string, v: unknown): string {
    const s = this.str(path, v);
    this.#plain(path, s);
    if (s.split("/").includes("..")) {
      this.fail(
        path,
        `workdir "${s}" has a ".." component`,
        'write the directory without "..", e.g. workdir = "/app"',
      );
    }
    if (s.startsWith("~")) {
      this.fail(
        path,
        `workdir "${s}" names a home directory`,
        'write an absolute path like "/app"',
      );
    }
    return s.startsWith("/") ? "/" + normalizePath(s).replace(/^\.$/, "") : normalizePath(s);
  }

  /** Refuses control characters (NUL, newline, …) in a path. */
  #plain(path: string, s: string): void {
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x1f\x7f]/.test(s)) {
      this.fail(
        path,
        `${lastKey(path)} ${JSON.stringify(s)} has a control character`,
        "write the path without NUL, newline or other control characters",
      );
    }
  }

  get dir(): string {
    return this.file.slice(0, this.file.lastIndexOf("/")) || "/";
  }

  duration(path: string, v: unknown, fallback: number): number {
    if (v === undefined) return fallback;
    const name = lastKey(path);
    const ms = typeof v === "string" ? parseDuration(v) : null;
    if (ms === null) {
      this.fail(
        path,
        `${name} must be a duration like "5s", "500ms" or "1m", not ${
          typeof v === "string" ? `"${v}"` : typeName(v)
        }`,
        `write ${name} = "${fallback >= 1000 ? `${fallback / 1000}s` : `${fallback}ms`}"`,
      );
    }
    const over = durationOverLimit(name, ms);
    if (over) this.fail(path, over.message, over.hint);
    return ms;
  }
}

/** `a//b/./c/` → `a/b/c`; "" or only `.` components → `.`. (No `..` handling: callers refuse it.) */
export function normalizePath(p: string): string {
  const parts = p.split("/").filter((c) => c !== "" && c !== ".");
  return parts.length ? parts.join("/") : ".";
}

function lastKey(path: string): string {
  const m = /([^.\[\]]+)(\[\d+\])?$/.exec(path);
  return m ? m[1] : path;
}

/**
 * Parses and validates the text of an hd.toml. `file` is its absolute path (the project dir is
 * its directory). Throws {@link HdError} `Cannot load hd.toml: FILE:LINE:COL: …` on any problem.
 */
export function parseSpec(
  source: string,
  file: string,
  opts: { env?: Record<string, string> } = {},
): EnvSpec {
  const v: Validator = new Validator(file, source);
  let doc: Table;
  try {
    doc = parseToml(source, { maxDepth: TOML_MAX_DEPTH }) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      const why = e.message.split("\n")[0].replace(/^Invalid TOML document:\s*/, "");
      const lineText = source.split("\n")[e.line - 1] ?? "";
      throw new HdError(
        `Cannot load hd.toml: ${v.shown}:${e.line}:${e.column}: invalid TOML: ${why}`,
        why.includes("nested")
          ? `hd.toml nests arrays and inline tables at most ${TOML_MAX_DEPTH} deep; flatten line ${e.line}`
          : `fix the syntax of line ${e.line}: ${lineText.trim().slice(0, 80)}`,
      );
    }
    // smol-toml reports what it refuses as TomlError; anything else is still about the text.
    throw new HdError(
      `Cannot load hd.toml: ${v.shown}: invalid TOML: ${(e as Error).message.split("\n")[0]}`,
      "check the file's syntax (docs/hdtoml.md)",
    );
  }
  v.keys("", doc, KNOWN_KEYS.top, "hd.toml (top level)");
  // ${VAR} interpolation (interpolate.ts): the process environment wins over the project's .env
  const procEnv = opts.env ?? Deno.env.toObject();
  const dotenv = dotEnv(v.dir, procEnv);
  v.lookup = (n) => Object.hasOwn(procEnv, n) ? procEnv[n] : dotenv[n];
  interpolateDoc(doc, v.lookup, (path, e) => v.fail(path, e.message, e.hint));

  // [environment]
  if (doc.environment === undefined) {
    v.fail(
      "",
      "missing the [environment] table",
      'start the file with:  [environment]  name = "myapp"',
    );
  }
  const envT = v.table("environment", doc.environment, "[environment]");
  v.keys("environment", envT, KNOWN_KEYS.environment, "[environment]");
  if (envT.name === undefined) {
    v.fail("environment.name", "[environment] needs a name", 'add name = "myapp"', true);
  }
  const name = v.str("environment.name", envT.name);
  if (!ENV_NAME.test(name)) {
    v.fail(
      "environment.name",
      `name "${name}" is not valid`,
      "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
    );
  }
  const environment: EnvSpec["environment"] = {
    name,
    base: envT.base === undefined ? null : v.str("environment.base", envT.base),
    env: envT.env === undefined ? {} : v.env("environment.env", envT.env),
    workdir: envT.workdir === undefined ? null : v.workdir("environment.workdir", envT.workdir),
  };
  if (envT.ca_certs !== undefined) {
    if (typeof envT.ca_certs !== "boolean") {
      v.fail(
        "environment.ca_certs",
        `ca_certs must be true or false, not ${typeName(envT.ca_certs)}`,
        "write ca_certs = true (no quotes)",
      );
    }
    environment.caCerts = envT.ca_certs;
  }
  if (envT.env_file !== undefined) {
    const vars = envFileVars(
      v,
      "environment.env_file",
      envT.env_file,
      v.dir,
      v.lookup,
      (f) => v.configFiles.push(f),
    );
    environment.env = { ...vars, ...environment.env };
  }
  if (envT.user !== undefined) {
    environment.user = userForm(v, "environment.user", envT.user);
    if (environment.base === null) noHostUser(v, "environment.user");
  }
  if (environment.base !== null && /\s/.test(environment.base)) {
    v.fail(
      "environment.base",
      `base "${environment.base}" is not an image reference`,
      'e.g. base = "debian:12"',
    );
  }

  // [dependencies]
  const dependencies: DependencySpec[] = [];
  if (doc.dependencies !== undefined) {
    const deps = v.table("dependencies", doc.dependencies, "[dependencies]");
    for (const [provider, val] of Object.entries(deps)) {
      const path = `dependencies.${provider}`;
      if (!PROVIDER_NAME.test(provider)) {
        v.fail(path, `"${provider}" is not a provider name`, "e.g. npm, apt, node", true);
      }
      const at = v.at(path, true);
      if (Array.isArray(val)) {
        const packages = v.strArray(path, val, `["curl", "git=1:2.39.5-0+deb12u1"]`);
        packages.forEach((p, i) => {
          if (/\s/.test(p)) {
            v.fail(`${path}[${i}]`, `package "${p}" contains spaces`, 'pin as "name=version"');
          }
        });
        dependencies.push({ provider, form: "list", packages, at });
      } else if (typeof val === "string") {
        dependencies.push({ provider, form: "version", version: v.str(path, val), at });
      } else if (isTable(val)) {
        v.keys(path, val, KNOWN_KEYS.fileDependency, `[dependencies] ${provider}`);
        if (val.file === undefined) {
          v.fail(
            `${path}.file`,
            `${provider} = { … } needs a file`,
            `write ${provider} = { file = "…" }`,
          );
        }
        dependencies.push({
          provider,
          form: "file",
          file: v.relPath(`${path}.file`, val.file),
          at,
        });
      } else {
        v.fail(
          path,
          `${provider} must be a list of packages, a version string or { file = "…" }, not ${
            typeName(val)
          }`,
          `e.g. apt = ["curl"], node = "20", npm = { file = "package-lock.json" }`,
        );
      }
    }
  }

  // apt packages are installed into a layer over the base image: without one there is nowhere
  const apt = dependencies.find((d) => d.provider === "apt");
  if (apt !== undefined && environment.base === null) {
    v.fail(
      "dependencies.apt",
      "apt packages cannot be installed on the host: [environment] has no base image",
      `add base = "debian:12" (or another Debian image) to [environment], or install ${
        apt.form === "list" && apt.packages.length ? apt.packages.join(", ") : "them"
      } on this machine yourself and remove the apt entry`,
      true,
    );
  }

  // [build]
  const build: EnvSpec["build"] = { steps: [], cache: [] };
  if (doc.build !== undefined) {
    const b = v.table("build", doc.build, "[build]");
    v.keys("build", b, KNOWN_KEYS.build, "[build]");
    const steps = b.steps;
    if (steps !== undefined) {
      if (!Array.isArray(steps)) {
        v.fail(
          "build.steps",
          `steps must be an array, not ${typeName(steps)}`,
          'write steps = ["make", { run = "npm ci", inputs = ["package-lock.json"] }]',
        );
      }
      steps.forEach((s: unknown, index: number) =>
        build.steps.push(step(v, s, index, environment.base !== null))
      );
      checkStages(v, build.steps, environment.base !== null);
    }
    if (b.cache !== undefined) {
      build.cache = v.strArray("build.cache", b.cache, '["~/.npm"]')
        .map((c, i) => v.cachePath(`build.cache[${i}]`, c));
    }
    if (b.shell !== undefined) {
      // the step's command is appended as the last argument, as Dockerfile SHELL does
      const sh = v.strArray("build.shell", b.shell, '["/bin/bash", "-c"]');
      if (sh.length === 0 || sh[0] === "" || sh.some((a) => a.includes("\0"))) {
        v.fail(
          "build.shell",
          sh.length === 0 ? "shell must not be empty" : "shell names no program",
          'write shell = ["/bin/bash", "-c"]',
        );
      }
      build.shell = sh;
    }
  }

  // [services.NAME]
  const services: Record<string, ServiceSpec> = {};
  if (doc.services !== undefined) {
    const st = v.table("services", doc.services, "[services]");
    for (const [sname, sv] of Object.entries(st)) {
      services[sname] = service(v, sname, sv, environment.base !== null);
    }
    checkDependsOn(v, services);
    // Host services share the host's network: the same `port` twice is an error (src/config/ports.ts).
    const onHost = (s: ServiceSpec) => environment.base === null && s.image === undefined;
    for (const s of Object.values(services)) {
      const key = s.ports ? "ports" : s.aliases ? "aliases" : null;
      if (key && onHost(s)) {
        v.fail(
          `services.${s.name}.${key}`,
          `${key} needs the service to run in a sandbox; on the host it shares the host's network`,
          key === "ports"
            ? `remove ports (the service's own port is the host's already), or set base = "IMAGE"`
            : `remove aliases, or set base = "IMAGE" (each sandboxed service then has its own network)`,
          true,
        );
      }
    }
    const clash = hostPortClash(
      Object.values(services).map((s) => ({
        name: s.name,
        port: s.port,
        onHost: onHost(s),
        at: v.at(`services.${s.name}.port`),
      })),
    );
    if (clash) {
      const loc = (p: Position) => `${displayPath(p.file)}:${p.line}:${p.column}`;
      const { first, second } = clash;
      v.fail(
        `services.${second.name}.port`,
        `port ${clash.port} is declared by two services on the host: "${first.name}" at ${
          loc(first.at)
        } and "${second.name}" at ${loc(second.at)}`,
        'give each service its own port; on the host they share one network (with base = "IMAGE" each sandboxed service has its own)',
      );
    }
    const pub = publishedClash(
      Object.values(services).flatMap((s) =>
        (s.ports ?? []).map((p) => ({
          name: s.name,
          hostIp: p.hostIp,
          published: p.published,
          at: p.at!,
        }))
      ),
    );
    if (pub) {
      v.fail(
        `services.${pub.second}.ports`,
        `${pub.key} is published twice: by "${pub.first}" and by "${pub.second}" (${
          displayPath(pub.at.file)
        }:${pub.at.line}:${pub.at.column})`,
        "publish each host port once",
      );
    }
    // scale = N: N replicas NAME-1..N, each a service of its own (src/config/replica_keys.ts)
    const scales: Record<string, number> = {};
    for (const [sname, sv] of Object.entries(st)) {
      const n = serviceScale(v, `services.${sname}`, sv as Record<string, unknown>);
      const no = n === null ? null : scaleRefusal(services[sname], n, onHost(services[sname]));
      if (no) v.fail(`services.${sname}.${no.key}`, no.what, no.hint, true);
      if (n !== null && n > 1) scales[sname] = n;
    }
    const clashing = replicaClash(Object.keys(services), scales);
    if (clashing) {
      v.fail(
        `services.${clashing[1]}.scale`,
        `replica "${clashing[0]}" of "${clashing[1]}" has the name of another service`,
        `rename service "${clashing[0]}"`,
        true,
      );
    }
    const expanded = expandReplicas(services, scales, (n) => !onHost(services[n]));
    for (const k of Object.keys(services)) delete services[k];
    Object.assign(services, expanded);
  }

  // [files]
  const files: EnvSpec["files"] = { include: [], exclude: [] };
  if (doc.files !== undefined) {
    const f = v.table("files", doc.files, "[files]");
    v.keys("files", f, KNOWN_KEYS.files, "[files]");
    if (f.include !== undefined) {
      files.include = v.globs("files.include", f.include, '["src/**", "package.json"]');
    }
    if (f.exclude !== undefined) {
      files.exclude = v.globs("files.exclude", f.exclude, '["**/*.log", "dist"]');
    }
  }

  // [options]
  const options: EnvSpec["options"] = { ...DEFAULT_OPTIONS };
  if (doc.options !== undefined) {
    const o = v.table("options", doc.options, "[options]");
    v.keys("options", o, KNOWN_KEYS.options, "[options]");
    options.restartGraceMs = v.duration(
      "options.restart_grace",
      o.restart_grace,
      DEFAULT_OPTIONS.restartGraceMs,
    );
    options.debounceMs = v.duration("options.debounce", o.debounce, DEFAULT_OPTIONS.debounceMs);
    if (o.jobs !== undefined) {
      const j = typeof o.jobs === "bigint" ? Number(o.jobs) : o.jobs;
      if (typeof j !== "number" || !Number.isInteger(j) || j < 1 || j > 1024) {
        v.fail(
          "options.jobs",
          `jobs must be an integer from 1 to 1024, not ${
            typeof o.jobs === "number" || typeof o.jobs === "bigint"
              ? String(o.jobs)
              : typeof o.jobs === "string"
              ? `"${o.jobs}"`
              : typeName(o.jobs)
          }`,
          typeof o.jobs === "string" && /^\d+$/.test(o.jobs)
            ? `remove the quotes: jobs = ${o.jobs}`
            : "jobs = N runs at most N independent build steps at once (leave it out: one per core)",
        );
      }
      options.jobs = j;
    }
    if (o.layers !== undefined) {
      const l = v.str("options.layers", o.layers);
      if (l !== "lazy" && l !== "materialized") {
        v.fail(
          "options.layers",
          `layers must be "lazy" or "materialized", not "${l}"`,
          'layers = "lazy" serves image layers through FUSE; "materialized" copies them (default)',
        );
      }
      options.layers = l;
    }
  }

  // [remote]: the shared build cache (src/remote), "REGISTRY/REPO" or "s3://BUCKET/PREFIX"
  let remote: EnvSpec["remote"];
  if (doc.remote !== undefined) {
    const r = v.table("remote", doc.remote, "[remote]");
    v.keys("remote", r, KNOWN_KEYS.remote, "[remote]");
    const c = r.cache === undefined ? "" : v.str("remote.cache", r.cache);
    if (c && !/^s3:\/\/[^/]+|^[^/\s]+\/[^\s]+$/.test(c)) {
      v.fail(
        "remote.cache",
        `remote.cache must be "REGISTRY/REPOSITORY" or "s3://BUCKET/PREFIX", not "${c}"`,
        'write cache = "registry.example.com/team/hd-cache"',
      );
    }
    remote = { cache: c || null };
  }

  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const spec: EnvSpec = {
    file,
    dir,
    environment,
    dependencies,
    build,
    services,
    files,
    options,
    remote,
  };
  if (doc.volumes !== undefined) spec.volumes = declaredVolumes(v, doc.volumes);
  if (doc.secrets !== undefined) spec.secrets = parseSecrets(v, doc.secrets, v.lookup);
  checkServiceSecrets(v, services, spec.secrets ?? {});
  spec.configFiles = [...new Set(v.configFiles)];
  return spec;
}

/** hd does not switch users on the host: `user` needs a base (or, for a service, an image). */
function noHostUser(v: Validator, path: string): never {
  return v.fail(
    path,
    "user needs a base: hd does not switch users on the host (steps and services run as you)",
    'add base = "…" to [environment], or remove user',
    true,
  );
}

function step(v: Validator, s: unknown, index: number, base = false): BuildStepSpec {
  const path = `build.steps[${index}]`;
  const at = v.at(path);
  if (typeof s === "string") {
    if (s.trim() === "") v.fail(path, `step ${index + 1} is an empty command`);
    return { run: s, inputs: null, outputs: [], env: {}, network: "host", index, at };
  }
  if (isTable(s) && s.copy !== undefined) return copyStep(v, s, index);
  if (!isTable(s)) {
    v.fail(
      path,
      `step ${index + 1} must be a command string or a table, not ${typeName(s)}`,
      'write "make" or { run = "npm ci", inputs = ["package-lock.json"] }',
    );
  }
  v.keys(path, s, KNOWN_KEYS.step, `build step ${index + 1}`);
  if (s.run === undefined) {
    v.fail(`${path}.run`, `step ${index + 1} needs a run command`, 'add run = "…"', true);
  }
  const run = v.str(`${path}.run`, s.run);
  const inputs = s.inputs === undefined
    ? null
    : v.globs(`${path}.inputs`, s.inputs, '["package.json", "package-lock.json"]');
  const outputs = s.outputs === undefined
    ? []
    : v.strArray(`${path}.outputs`, s.outputs, '["node_modules"]')
      .map((o, i) => v.relPath(`${path}.outputs[${i}]`, o));
  const env = s.env === undefined ? {} : v.env(`${path}.env`, s.env);
  let network: "host" | "none" = "host";
  if (s.network !== undefined) {
    const n = v.str(`${path}.network`, s.network);
    if (n !== "host" && n !== "none") {
      const guess = didYouMean(n, ["host", "none"]);
      v.fail(
        `${path}.network`,
        `network must be "none" or "host", not "${n}"`,
        guess ? `did you mean "${guess}"?` : 'write network = "none" or network = "host"',
      );
    }
    network = n;
  }
  // as Dockerfile USER / WORKDIR in effect for this RUN (only in a base's sandbox)
  const where: Pick<BuildStepSpec, "user" | "workdir"> = {};
  if (s.user !== undefined) {
    where.user = userForm(v, `${path}.user`, s.user);
    if (!base) noHostUser(v, `${path}.user`);
  }
  if (s.workdir !== undefined) where.workdir = v.workdir(`${path}.workdir`, s.workdir);
  const out: BuildStepSpec = { run, inputs, outputs, env, network, index, at, ...where };
  if (s.stage !== undefined) out.stage = stageName(v, `${path}.stage`, s.stage);
  if (s.image !== undefined) out.image = imageRef(v, `${path}.image`, s.image);
  if (out.image !== undefined && out.stage === undefined) {
    v.fail(
      `${path}.image`,
      `step ${index + 1} names an image but no stage`,
      'add stage = "NAME" (steps of one stage run on its image; copy takes from = "NAME")',
      true,
    );
  }
  if (out.stage !== undefined && outputs.length) {
    v.fail(
      `${path}.outputs`,
      `step ${index + 1} of stage "${out.stage}" declares outputs`,
      "a stage's layers are not part of the environment: copy what it made with copy = [{ from, src, dst }]",
      true,
    );
  }
  return out;
}

// ---- build stages: `stage`, `image` and `copy` (docs/hdtoml.md, [build]) ----

const STAGE_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

function stageName(v: Validator, path: string, x: unknown): string {
  const n = v.str(path, x);
  if (!STAGE_NAME.test(n)) {
    v.fail(
      path,
      `stage name "${n}" is not valid`,
      "use a-z, 0-9, '_', '.' and '-', e.g. \"build\"",
    );
  }
  return n;
}

function imageRef(v: Validator, path: string, x: unknown): string {
  const image = v.str(path, x);
  if (/\s/.test(image) || image.includes("\0")) {
    v.fail(path, `image "${image}" is not an image reference`, 'e.g. "golang:1.22"');
  }
  return image;
}

/** An absolute, normalized path inside a stage or the environment (`dst` may end with `/`). */
function sandboxPath(v: Validator, path: string, x: unknown, trailing: boolean): string {
  const p = v.str(path, x);
  const name = lastKey(path);
  const body = trailing && p.length > 1 ? p.replace(/\/$/, "") : p;
  // deno-lint-ignore no-control-regex
  const bad = !p.startsWith("/") || /[\x00-\x1f\x7f]/.test(p) ||
    (body !== "/" && body.slice(1).split("/").some((c) => c === "" || c === "." || c === ".."));
  if (bad) {
    v.fail(
      path,
      `${name} "${p}" is not an absolute, normalized path (no ".", ".." or empty components)`,
      `write e.g. ${name} = "/out/app"`,
    );
  }
  return p;
}

/** A step with `copy`: it runs nothing (`run` is a comment naming the copies); `stage` may place it in a stage. */
function copyStep(v: Validator, s: Table, index: number): BuildStepSpec {
  const path = `build.steps[${index}]`;
  v.keys(path, s, KNOWN_KEYS.step, `build step ${index + 1}`);
  for (const k of ["run", "inputs", "outputs", "env", "network"]) {
    if (s[k] !== undefined) {
      v.fail(
        `${path}.${k}`,
        `step ${index + 1} copies (copy = …): it cannot have ${k}`,
        "a copy step runs nothing; put the command in a step of its own",
        true,
      );
    }
  }
  if (!Array.isArray(s.copy) || s.copy.length === 0) {
    v.fail(
      `${path}.copy`,
      `copy must be a non-empty array of tables, not ${
        Array.isArray(s.copy) ? "an empty array" : typeName(s.copy)
      }`,
      'write copy = [{ from = "build", src = "/out/app", dst = "/usr/local/bin/app" }]',
    );
  }
  const copy = s.copy.map((c: unknown, i: number) => {
    const cp = `${path}.copy[${i}]`;
    const t = v.table(cp, c, `copy item ${i + 1}`);
    v.keys(cp, t, KNOWN_KEYS.stepCopy, `copy item ${i + 1} of step ${index + 1}`);
    for (const k of KNOWN_KEYS.stepCopy) {
      if (t[k] === undefined) v.fail(cp, `copy item ${i + 1} needs ${k}`, `add ${k} = "…"`);
    }
    return {
      from: stageName(v, `${cp}.from`, t.from),
      src: sandboxPath(v, `${cp}.src`, t.src, false),
      dst: sandboxPath(v, `${cp}.dst`, t.dst, true),
    };
  });
  const out: BuildStepSpec = {
    // shown where steps are listed; a shell comment, so it would do nothing if it were run
    run: `# copy ${copy.map((c: StepCopySpec) => `${c.from}:${c.src} -> ${c.dst}`).join(", ")}`,
    inputs: [],
    outputs: [],
    env: {},
    network: "none",
    index,
    at: v.at(path),
    copy,
  };
  if (s.stage !== undefined) out.stage = stageName(v, `${path}.stage`, s.stage);
  if (s.image !== undefined) out.image = imageRef(v, `${path}.image`, s.image);
  if (out.image !== undefined && out.stage === undefined) {
    v.fail(
      `${path}.image`,
      `step ${index + 1} names an image but no stage`,
      'add stage = "NAME" (a copy into a stage), or remove image (a copy into the environment)',
      true,
    );
  }
  return out;
}

/**
 * Across steps: stages and copies need a base (they run in the sandbox); every step of a stage names the same image (its first step names one), and each
 * `copy` takes from a stage of earlier steps, not its own.
 */
function checkStages(v: Validator, steps: BuildStepSpec[], sandboxed: boolean): void {
  const images = new Map<string, string>();
  for (const s of steps) {
    const path = `build.steps[${s.index}]`;
    const key = s.copy ? "copy" : s.stage !== undefined ? "stage" : null;
    if (key !== null && !sandboxed) {
      v.fail(
        `${path}.${key}`,
        `step ${s.index + 1} uses ${key}, which needs the sandbox: [environment] has no base image`,
        'add base = "IMAGE" to [environment] (the image the environment itself runs on)',
        true,
      );
    }
    if (s.stage !== undefined) {
      const first = images.get(s.stage);
      if (s.image === undefined && first === undefined) {
        v.fail(
          path,
          `step ${s.index + 1} starts stage "${s.stage}" without an image`,
          'add image = "REF" (the image the stage runs on)',
        );
      }
      if (first !== undefined && s.image !== undefined && s.image !== first) {
        v.fail(
          `${path}.image`,
          `step ${s.index + 1} of stage "${s.stage}" names image "${s.image}", not "${first}"`,
          "every step of a stage runs on the same image; name another stage for another image",
        );
      }
      if (first === undefined) images.set(s.stage, s.image!);
      s.image ??= first;
    }
    s.copy?.forEach((c, i) => {
      if (c.from === s.stage || !images.has(c.from)) {
        const known = [...images.keys()];
        v.fail(
          `${path}.copy[${i}].from`,
          c.from === s.stage
            ? `step ${s.index + 1} copies from its own stage "${c.from}"`
            : `no earlier step has stage "${c.from}"`,
          known.length
            ? `stages before step ${s.index + 1}: ${known.join(", ")}`
            : 'give the steps that build it stage = "NAME" and image = "REF", before this step',
        );
      }
    });
  }
}

function service(v: Validator, name: string, sv: unknown, base = false): ServiceSpec {
  const path = `services.${name}`;
  if (!SERVICE_NAME.test(name)) {
    v.fail(
      path,
      `service name "${name}" is not valid`,
      "use letters, digits, '_' and '-', starting with a letter or digit",
      true,
    );
  }
  const t = v.table(path, sv, `[services.${name}]`);
  v.keys(path, t, KNOWN_KEYS.service, `[services.${name}]`);
  if (t.command === undefined && t.image === undefined) {
    v.fail(`${path}.command`, `service "${name}" needs a command`, 'add command = "…"', true);
  }
  // compose's image/command/entrypoint/user (src/config/service_keys.ts)
  // a service of the base may name its user too (checked here; service_keys.ts wants an image)
  const baseUser = base && t.image === undefined && t.user !== undefined;
  const run = serviceRunKeys(v, path, baseUser ? { ...t, user: undefined } : t);
  if (baseUser) run.user = userForm(v, `${path}.user`, t.user);
  const command = t.command === undefined ? "" : commandForm(v, `${path}.command`, t.command).shown;
  const watch = t.watch === undefined ? [] : v.globs(`${path}.watch`, t.watch, '["src/**"]');
  let port: number | null = null;
  if (t.port !== undefined) {
    const p = t.port;
    const n = typeof p === "bigint" ? Number(p) : p;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
      v.fail(
        `${path}.port`,
        `port must be an integer from 1 to 65535, not ${
          typeof p === "number" || typeof p === "bigint"
            ? String(p)
            : typeof p === "string"
            ? `"${p}"`
            : typeName(p)
        }`,
        typeof p === "string" && /^\d+$/.test(p)
          ? `remove the quotes: port = ${p}`
          : "e.g. port = 3000",
      );
    }
    port = n;
  }
  // depends_on: a list of names, or a table of name = condition (see dependsOnTable)
  const dependsTable = isTable(t.depends_on) ? dependsOnTable(v, path, t.depends_on) : null;
  const depends_on = t.depends_on === undefined
    ? []
    : dependsTable
    ? Object.keys(dependsTable)
    : v.strArray(`${path}.depends_on`, t.depends_on, '["db"]');
  let restart_policy: RestartPolicy = "on_failure";
  if (t.restart_policy !== undefined) {
    const r = v.str(`${path}.restart_policy`, t.restart_policy);
    if (!(RESTART_POLICIES as string[]).includes(r)) {
      const guess = didYouMean(r, RESTART_POLICIES);
      v.fail(
        `${path}.restart_policy`,
        `restart_policy must be always, on_failure or never, not "${r}"`,
        guess ? `did you mean "${guess}"?` : 'write restart_policy = "on_failure"',
      );
    }
    restart_policy = r as RestartPolicy;
  }
  // reload = "warm": restarts hand over to a standby that preloaded the unchanged modules
  let reload: "warm" | "restart" | undefined;
  if (t.reload !== undefined) {
    const r = v.str(`${path}.reload`, t.reload);
    if (r !== "warm" && r !== "restart") {
      v.fail(
        `${path}.reload`,
        `reload must be "warm" or "restart", not "${r}"`,
        didYouMean(r, ["warm", "restart"])
          ? `did you mean "${didYouMean(r, ["warm", "restart"])}"?`
          : 'write reload = "warm"',
      );
    }
    reload = r;
  }
  let env = t.env === undefined ? {} : v.env(`${path}.env`, t.env);
  if (t.env_file !== undefined) {
    const onFile = (f: string) => v.configFiles.push(f);
    env = { ...envFileVars(v, `${path}.env_file`, t.env_file, v.dir, v.lookup, onFile), ...env };
  }
  const workdir = t.workdir === undefined
    ? "."
    : run.image !== undefined
    ? imageWorkdir(v, `${path}.workdir`, v.workdir(`${path}.workdir`, t.workdir))
    : v.relPath(`${path}.workdir`, t.workdir, true);
  // the environment's network (src/sandbox/network.ts): extra host names, published ports
  const net: Pick<ServiceSpec, "aliases" | "ports"> = {};
  if (t.aliases !== undefined) {
    net.aliases = v.strArray(`${path}.aliases`, t.aliases, '["db", "postgres"]');
    net.aliases.forEach((a, i) => {
      if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(a) || a.length > 253) {
        v.fail(
          `${path}.aliases[${i}]`,
          `alias "${a}" is not a host name`,
          "use letters, digits, '.' and '-'",
        );
      }
    });
  }
  if (t.ports !== undefined) net.ports = publishedPorts(v, `${path}.ports`, t.ports);
  return {
    ...net,
    name,
    command,
    watch,
    port,
    depends_on,
    restart_policy,
    ...(reload ? { reload } : {}),
    env,
    workdir,
    at: v.at(path, true),
    healthcheck: t.healthcheck === undefined ? null : healthcheck(v, path, t.healthcheck),
    ...(dependsTable ? { depends_conditions: dependsTable } : {}),
    ...run,
    ...serviceVolumes(v, path, t, base || run.image !== undefined),
    ...serviceSecrets(v, path, t),
    ...serviceProfiles(v, path, t),
    ...stopKeys(v, path, t),
    ...metaKeys(v, path, t),
  };
}

/** `labels` and `expose` of service table `t` (only those present): kept, never acted on. */
function metaKeys(v: Validator, path: string, t: Table): Pick<ServiceSpec, "labels" | "expose"> {
  const out: Pick<ServiceSpec, "labels" | "expose"> = {};
  if (t.labels !== undefined) {
    const l = v.table(`${path}.labels`, t.labels, "labels");
    out.labels = {};
    for (const [k, val] of Object.entries(l)) {
      // deno-lint-ignore no-control-regex
      if (k === "" || /[\x00-\x1f]/.test(k)) {
        v.fail(`${path}.labels`, "a label name is empty or has a control character", "");
      }
      if (typeof val !== "string") {
        v.fail(
          `${path}.labels.${k}`,
          `label ${k} must be a string, not ${typeName(val)}`,
          `quote it: labels = { ${k} = "${String(val)}" }`,
        );
      }
      out.labels[k] = val;
    }
  }
  if (t.expose !== undefined) {
    if (!Array.isArray(t.expose)) {
      v.fail(
        `${path}.expose`,
        `expose must be an array of ports, not ${typeName(t.expose)}`,
        "e.g. expose = [9229]",
      );
    }
    out.expose = t.expose.map((p: unknown, i: number) => {
      const n = typeof p === "bigint" ? Number(p) : p;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
        v.fail(
          `${path}.expose[${i}]`,
          `expose must hold integers from 1 to 65535, not ${
            typeof p === "string" ? `"${p}"` : typeof p === "number" ? String(p) : typeName(p)
          }`,
          typeof p === "string" && /^\d+$/.test(p)
            ? `remove the quotes: ${p}`
            : "e.g. expose = [9229]",
        );
      }
      return n;
    });
  }
  return out;
}

/** `stop_signal` and `restart_grace` of service table `t` (only those present). */
function stopKeys(
  v: Validator,
  path: string,
  t: Table,
): Pick<ServiceSpec, "stop_signal" | "restartGraceMs"> {
  const out: Pick<ServiceSpec, "stop_signal" | "restartGraceMs"> = {};
  if (t.stop_signal !== undefined) {
    const s = v.str(`${path}.stop_signal`, t.stop_signal);
    const name = stopSignalName(s);
    if (!name) {
      v.fail(
        `${path}.stop_signal`,
        `stop_signal "${s}" is not a signal that stops a service`,
        `write one of ${STOP_SIGNALS.join(", ")}`,
      );
    }
    out.stop_signal = name;
  }
  if (t.restart_grace !== undefined) {
    out.restartGraceMs = v.duration(
      `${path}.restart_grace`,
      t.restart_grace,
      DEFAULT_OPTIONS.restartGraceMs,
    );
  }
  return out;
}

/** `ports`: compose's short syntax strings or long-form tables (see src/config/ports.ts). */
function publishedPorts(v: Validator, path: string, val: unknown): PublishedPort[] {
  if (!Array.isArray(val)) {
    v.fail(path, `ports must be an array, not ${typeName(val)}`, 'write ports = ["8080:3000"]');
  }
  return val.map((item: unknown, i: number): PublishedPort => {
    const p = `${path}[${i}]`;
    const at = v.at(p);
    if (typeof item === "string") {
      const e = parsePortEntry(item);
      if (!e.ok) v.fail(p, e.why, e.hint);
      return { hostIp: e.hostIp, published: e.published, target: e.target, at };
    }
    if (typeof item === "number" || typeof item === "bigint") {
      const e = parsePortEntry(String(item));
      if (!e.ok) v.fail(p, e.why, e.hint);
      return { hostIp: e.hostIp, published: e.published, target: e.target, at };
    }
    if (!isTable(item)) {
      v.fail(
        p,
        `a ports entry must be a string or a table, not ${typeName(item)}`,
        'e.g. "8080:3000"',
      );
    }
    v.keys(
      p,
      item,
      ["target", "published", "host_ip", "protocol", "mode", "name"],
      "a ports table",
    );
    if (item.target === undefined) {
      v.fail(p, "a ports table needs a target", "e.g. { target = 3000, published = 8080 }");
    }
    const num = (x: unknown) =>
      typeof x === "number" || typeof x === "bigint" ? String(x) : typeof x === "string" ? x : "?";
    const proto = item.protocol === undefined ? "tcp" : v.str(`${p}.protocol`, item.protocol);
    const ip = item.host_ip === undefined ? null : v.str(`${p}.host_ip`, item.host_ip);
    const pub = item.published === undefined ? "" : num(item.published);
    // the same rules as the short syntax: [HOST_IP:][PUBLISHED:]TARGET/PROTOCOL
    const short = `${ip !== null ? `${ip}:${pub}:` : pub ? `${pub}:` : ""}${
      num(item.target)
    }/${proto}`;
    const e = parsePortEntry(short);
    if (!e.ok) v.fail(p, e.why, e.hint);
    return { hostIp: e.hostIp, published: e.published, target: e.target, at };
  });
}

function checkDependsOn(v: Validator, services: Record<string, ServiceSpec>): void {
  const names = Object.keys(services);
  for (const s of Object.values(services)) {
    s.depends_on.forEach((d, i) => {
      const path = `services.${s.name}.depends_on[${i}]`;
      if (services[d] === undefined) {
        const guess = didYouMean(d, names.filter((n) => n !== s.name));
        v.fail(
          path,
          `depends_on names unknown service "${d}"`,
          guess
            ? `did you mean "${guess}"? (services: ${names.join(", ")})`
            : `services defined: ${names.join(", ")}`,
        );
      }
      if (d === s.name) {
        v.fail(
          path,
          `depends_on forms a cycle: ${s.name} -> ${s.name}`,
          "a service cannot depend on itself",
        );
      }
    });
  }
  // Depth-first search with an explicit stack (a 20,000-long chain must not overflow the call
  // stack): `stack` is the current path, `next[i]` the next dependency of stack[i] to look at.
  const state = new Map<string, "active" | "done">();
  for (const start of names) {
    if (state.has(start)) continue;
    const stack = [start];
    const next = [0];
    state.set(start, "active");
    while (stack.length) {
      const top = stack.length - 1;
      const deps = services[stack[top]].depends_on;
      if (next[top] === deps.length) {
        state.set(stack[top], "done");
        stack.pop();
        next.pop();
        continue;
      }
      const d = deps[next[top]++];
      const st = state.get(d);
      if (st === "active") {
        const cycle = [...stack.slice(stack.indexOf(d)), d];
        const shown = cycle.length <= 12
          ? cycle
          : [...cycle.slice(0, 5), `… (${cycle.length - 10} more) …`, ...cycle.slice(-5)];
        v.fail(
          `services.${d}.depends_on`,
          `depends_on forms a cycle: ${shown.join(" -> ")}`,
          "remove one of these depends_on entries so the services can start in order",
        );
      }
      if (st === undefined) {
        state.set(d, "active");
        stack.push(d);
        next.push(0);
      }
    }
  }
}

/**
 * Reads and validates the hd.toml at `file` (relative to the cwd, or absolute); `opts.env` as
 * {@link parseSpec}'s.
 */
export function loadSpec(file: string, opts: { env?: Record<string, string> } = {}): EnvSpec {
  const abs = absSpecPath(file);
  let text: string;
  try {
    // a project's file: a regular file (a FIFO would never answer, a device never end), bounded
    const st = Deno.statSync(abs);
    if (!st.isFile) throw new Error("not a regular file");
    if (st.size > SPEC_MAX_BYTES) throw new Error(`${st.size} bytes (at most ${SPEC_MAX_BYTES})`);
    text = Deno.readTextFileSync(abs);
  } catch (e) {
    throw new HdError(
      `Cannot load hd.toml: ${displayPath(abs)}: ${
        e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message
      }`,
      "run `hd init` to create one, or pass --file PATH",
    );
  }
  return parseSpec(text, abs, opts);
}

/** The spec a command works on: `--file PATH` when given, else hd.toml found from the cwd. */
export function loadProjectSpec(file?: string): EnvSpec {
  return loadSpec(specFilePath(file));
}

const CONDITIONS: Record<string, DependsCondition> = {
  started: "started",
  healthy: "healthy",
  completed_successfully: "completed_successfully",
  service_started: "started",
  service_healthy: "healthy",
  service_completed_successfully: "completed_successfully",
};

/** `depends_on = { db = "healthy", migrate = "completed_successfully" }` (compose's aliases too). */
function dependsOnTable(
  v: Validator,
  path: string,
  t: Table,
): Record<string, DependsCondition> {
  const out: Record<string, DependsCondition> = {};
  for (const [dep, c] of Object.entries(t)) {
    const key = `${path}.depends_on.${dep}`;
    // compose's long form { condition = "service_healthy" } is accepted as well
    const raw = isTable(c) && c.condition !== undefined ? c.condition : c;
    const name = v.str(key, raw);
    const cond = CONDITIONS[name];
    if (cond === undefined) {
      const guess = didYouMean(name, Object.keys(CONDITIONS));
      v.fail(
        key,
        `the condition of ${dep} must be started, healthy or completed_successfully, not "${name}"`,
        guess ? `did you mean "${guess}"?` : `write ${dep} = "healthy"`,
      );
    }
    out[dep] = cond;
  }
  return out;
}

/** Defaults of a healthcheck (compose's). */
export const HEALTHCHECK_DEFAULTS = {
  intervalMs: 30_000,
  timeoutMs: 30_000,
  retries: 3,
  startPeriodMs: 0,
} as const;

/** `healthcheck = { test = …, http = …, tcp = …, interval, timeout, retries, start_period }`. */
function healthcheck(v: Validator, service: string, raw: unknown): HealthcheckSpec {
  const path = `${service}.healthcheck`;
  const t = v.table(path, raw, "healthcheck");
  v.keys(path, t, KNOWN_KEYS.healthcheck, "healthcheck");
  const given = (["test", "http", "tcp"] as const).filter((k) => t[k] !== undefined);
  if (given.length !== 1) {
    v.fail(
      path,
      given.length === 0
        ? "healthcheck needs one of test, http or tcp"
        : `healthcheck takes one of test, http or tcp, not ${given.join(" and ")}`,
      'e.g. healthcheck = { test = ["CMD", "pg_isready"] } or { http = "http://127.0.0.1:3000/health" }',
    );
  }
  let probe: HealthProbe;
  if (t.test !== undefined) {
    const tp = `${path}.test`;
    if (typeof t.test === "string") {
      probe = { kind: "shell", script: v.str(tp, t.test) };
    } else {
      const a = v.strArray(tp, t.test, '["CMD", "pg_isready", "-U", "postgres"]');
      if (a[0] === "CMD" && a.length >= 2) probe = { kind: "cmd", argv: a.slice(1) };
      else if (a[0] === "CMD-SHELL" && a.length === 2 && a[1].trim() !== "") {
        probe = { kind: "shell", script: a[1] };
      } else {
        v.fail(
          tp,
          `test must be ["CMD", program, args…], ["CMD-SHELL", "script"] or a string, not ${
            JSON.stringify(a)
          }`,
          a[0] === "NONE"
            ? "remove the healthcheck to have none"
            : 'e.g. test = ["CMD", "redis-cli", "ping"] or test = "curl -f http://127.0.0.1/"',
        );
      }
    }
  } else if (t.http !== undefined) {
    const url = v.str(`${path}.http`, t.http);
    let ok = false;
    try {
      ok = ["http:", "https:"].includes(new URL(url).protocol);
    } catch { /* not a URL */ }
    if (!ok) {
      v.fail(
        `${path}.http`,
        `http must be an http:// or https:// URL, not "${url}"`,
        'e.g. http = "http://127.0.0.1:3000/health"',
      );
    }
    probe = { kind: "http", url };
  } else {
    const p = typeof t.tcp === "bigint" ? Number(t.tcp) : t.tcp;
    if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) {
      v.fail(
        `${path}.tcp`,
        `tcp must be a port from 1 to 65535, not ${JSON.stringify(String(t.tcp))}`,
        "e.g. tcp = 5432",
      );
    }
    probe = { kind: "tcp", port: p };
  }
  let retries: number = HEALTHCHECK_DEFAULTS.retries;
  if (t.retries !== undefined) {
    const r = typeof t.retries === "bigint" ? Number(t.retries) : t.retries;
    if (typeof r !== "number" || !Number.isInteger(r) || r < 1 || r > 1000) {
      v.fail(
        `${path}.retries`,
        `retries must be an integer from 1 to 1000, not ${JSON.stringify(String(t.retries))}`,
        "e.g. retries = 3",
      );
    }
    retries = r;
  }
  const intervalMs = v.duration(`${path}.interval`, t.interval, HEALTHCHECK_DEFAULTS.intervalMs);
  const timeoutMs = v.duration(`${path}.timeout`, t.timeout, HEALTHCHECK_DEFAULTS.timeoutMs);
  const startPeriodMs = v.duration(
    `${path}.start_period`,
    t.start_period,
    HEALTHCHECK_DEFAULTS.startPeriodMs,
  );
  for (const [k, ms] of [["interval", intervalMs], ["timeout", timeoutMs]] as const) {
    if (ms === 0) v.fail(`${path}.${k}`, `${k} must be more than 0`, `e.g. ${k} = "5s"`);
  }
  return { probe, intervalMs, timeoutMs, retries, startPeriodMs, at: v.at(path, true) };
}

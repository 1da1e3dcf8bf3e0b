/**
 * Compose files (the Compose Specification) read with `yaml` for line positions: the service keys
 * that matter for development, `${VAR:-default}` interpolation from the environment and `.env`,
 * `extends`, `x-` extensions ignored, and unknown keys refused. The services that share the
 * environment (built from the same Dockerfile, or run on one image with the project bind-mounted)
 * become `[services.NAME]`; the others, and what the environment cannot express yet, are reported
 * line by line through the {@link Translation}.
 *
 * @example
 * ```ts
 * import { translateCompose } from "./compose.ts";
 * import { currentFeatures, Translation } from "./model.ts";
 * const tr = new Translation(currentFeatures());
 * const doc = translateCompose(tr, { file: "compose.yaml", text: "services: {}\n", name: "app" });
 * ```
 * @module
 */
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { didYouMean } from "../config/suggest.ts";
import { STOP_SIGNALS, stopSignalName } from "../config/signals.ts";
import { durationOverLimit, parseDuration } from "../config/duration.ts";
import { SourceError, translateDockerfile } from "./from_dockerfile.ts";
import { applyDockerignore } from "./dockerignore.ts";
import {
  emptyDoc,
  type HdDoc,
  newService,
  type ServiceOut,
  type Source,
  type TomlValue,
  type Translation,
} from "./model.ts";
import { shellQuote, shellQuoteWord, splitWords } from "./words.ts";

/** Top-level keys of the Compose Specification. */
export const COMPOSE_TOP = [
  "version",
  "name",
  "services",
  "networks",
  "volumes",
  "secrets",
  "configs",
  "include",
  "models",
] as const;

/** Service keys of the Compose Specification. */
export const COMPOSE_SERVICE = [
  "annotations",
  "attach",
  "blkio_config",
  "build",
  "cap_add",
  "cap_drop",
  "cgroup",
  "cgroup_parent",
  "command",
  "configs",
  "container_name",
  "cpu_count",
  "cpu_percent",
  "cpu_period",
  "cpu_quota",
  "cpu_rt_period",
  "cpu_rt_runtime",
  "cpu_shares",
  "cpus",
  "cpuset",
  "credential_spec",
  "depends_on",
  "deploy",
  "develop",
  "device_cgroup_rules",
  "devices",
  "dns",
  "dns_opt",
  "dns_search",
  "domainname",
  "driver_opts",
  "entrypoint",
  "env_file",
  "environment",
  "expose",
  "extends",
  "external_links",
  "extra_hosts",
  "gpus",
  "group_add",
  "healthcheck",
  "hostname",
  "image",
  "init",
  "ipc",
  "isolation",
  "label_file",
  "labels",
  "links",
  "logging",
  "mac_address",
  "mem_limit",
  "mem_reservation",
  "mem_swappiness",
  "memswap_limit",
  "models",
  "network_mode",
  "networks",
  "oom_kill_disable",
  "oom_score_adj",
  "pid",
  "pids_limit",
  "platform",
  "ports",
  "post_start",
  "pre_stop",
  "privileged",
  "profiles",
  "provider",
  "pull_policy",
  "read_only",
  "restart",
  "runtime",
  "scale",
  "secrets",
  "security_opt",
  "shm_size",
  "stdin_open",
  "stop_grace_period",
  "stop_signal",
  "storage_opt",
  "sysctls",
  "tmpfs",
  "tty",
  "ulimits",
  "use_api_socket",
  "user",
  "userns_mode",
  "uts",
  "volumes",
  "volumes_from",
  "working_dir",
] as const;

/** Build keys that change nothing hd builds (reported as not translated when present). */
const BUILD_KEYS = ["context", "dockerfile", "target", "args", "dockerfile_inline"];

/** What to translate. */
export interface ComposeOptions {
  /** The compose file as shown in reports. */
  file: string;
  text: string;
  /** The environment name when the file has no `name`. */
  name: string;
  /** Variables for interpolation (the process environment), over `.env`. */
  env?: Record<string, string>;
  /** Reads a project file (relative path), null when absent. */
  readFile?: (rel: string) => string | null;
  exists?: (glob: string) => boolean;
  isDir?: (path: string) => boolean;
  arch?: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses a `.env` file: KEY=VALUE lines, `#` comments, optional quotes, `export ` prefix. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const l = raw.trim();
    if (!l || l.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(l);
    if (!m) continue;
    let v = m[2];
    if (/^".*"$/.test(v)) v = v.slice(1, -1).replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    else if (/^'.*'$/.test(v)) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, "");
    out[m[1]] = v;
  }
  return out;
}

/** Compose interpolation of one string: `$$`, `$V`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?m}`, `${V?m}`, `${V:+r}`, `${V+r}`. */
export function interpolate(s: string, vars: Record<string, string>): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== "$") {
      out += c;
      continue;
    }
    if (s[i + 1] === "$") {
      out += "$";
      i++;
      continue;
    }
    const bare = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i + 1));
    if (bare) {
      out += vars[bare[0]] ?? "";
      i += bare[0].length;
      continue;
    }
    if (s[i + 1] !== "{") {
      out += c;
      continue;
    }
    // find the matching brace (defaults may nest ${…})
    let depth = 0;
    let j = i + 1;
    for (; j < s.length; j++) {
      if (s[j] === "{") depth++;
      else if (s[j] === "}" && --depth === 0) break;
    }
    if (j >= s.length) throw new Error(`unterminated \${ in "${s}"`);
    const inner = s.slice(i + 2, j);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?|:\+|\+)([\s\S]*))?$/.exec(inner);
    if (!m) throw new Error(`invalid interpolation "\${${inner}}"`);
    const [, name, op, word0] = m;
    const v = vars[name];
    const word = word0 !== undefined ? interpolate(word0, vars) : "";
    const set = v !== undefined;
    const nonEmpty = set && v !== "";
    if (!op) out += v ?? "";
    else if (op === ":-") out += nonEmpty ? v : word;
    else if (op === "-") out += set ? v : word;
    else if (op === ":+") out += nonEmpty ? word : "";
    else if (op === "+") out += set ? word : "";
    else {
      if (op === ":?" ? !nonEmpty : !set) {
        throw new Error(`required variable ${name} is missing a value: ${word}`);
      }
      out += v;
    }
    i = j;
  }
  return out;
}

/** Splits a compose command string into words as compose does (shell quoting, no expansion). */
export function composeWords(s: string): string[] {
  return splitWords(s).map((w) => {
    let out = "";
    let q = "";
    for (let i = 0; i < w.length; i++) {
      const c = w[i];
      if (q) {
        if (c === q) q = "";
        else if (c === "\\" && q === '"' && i + 1 < w.length && '"\\$`'.includes(w[i + 1])) {
          out += w[++i];
        } else out += c;
      } else if (c === "'" || c === '"') q = c;
      else if (c === "\\" && i + 1 < w.length) out += w[++i];
      else out += c;
    }
    return out;
  });
}

/** Line numbers of every key path (`services.web.ports`), from the YAML AST. */
function keyLines(root: Node | null, lc: LineCounter): Map<string, number> {
  const lines = new Map<string, number>();
  const walk = (n: unknown, path: string) => {
    if (isMap(n)) {
      for (const p of n.items) {
        if (!isPair(p)) continue;
        const k = isScalar(p.key) ? String(p.key.value) : "";
        const kp = path ? `${path}.${k}` : k;
        const r = (p.key as Node | null)?.range;
        if (r && !lines.has(kp)) lines.set(kp, lc.linePos(r[0]).line);
        walk(p.value, kp);
      }
    } else if (isSeq(n)) {
      n.items.forEach((it, i) => {
        const r = (it as Node | null)?.range;
        if (r) lines.set(`${path}[${i}]`, lc.linePos(r[0]).line);
        walk(it, `${path}[${i}]`);
      });
    }
  };
  walk(root, "");
  return lines;
}

/** Parses compose YAML into JS with key lines; throws {@link SourceError} on bad YAML. */
export function parseComposeYaml(
  file: string,
  text: string,
): { data: Obj; lines: Map<string, number> } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, merge: true, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0].line ?? lc.linePos(e.pos[0]).line;
    throw new SourceError(
      { file, line },
      `invalid YAML: ${e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")}`,
      "fix the YAML syntax (indentation, quotes, brackets)",
    );
  }
  const data = doc.toJS({ maxAliasCount: 100 }) as Json;
  if (data === null || data === undefined) return { data: {}, lines: new Map() };
  if (!isObj(data)) {
    throw new SourceError(
      { file, line: 1 },
      "a compose file is a mapping of top-level keys",
      "start with services:",
    );
  }
  return { data, lines: keyLines(doc.contents, lc) };
}

function merge(base: Json, over: Json): Json {
  if (Array.isArray(base) && Array.isArray(over)) return [...base, ...over];
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
    return out;
  }
  return over;
}

const str = (v: Json): string => (typeof v === "string" ? v : v === null ? "" : String(v));

function envOf(v: Json, vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const x of v) {
      const s = str(x);
      const k = s.indexOf("=");
      if (k < 0) {
        if (vars[s] !== undefined) out[s] = vars[s];
      } else out[s.slice(0, k)] = s.slice(k + 1);
    }
  } else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (x === null) {
        if (vars[k] !== undefined) out[k] = vars[k];
      } else out[k] = str(x);
    }
  }
  return out;
}

function argvOf(v: Json): string[] | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.map(str);
  return composeWords(str(v));
}

function normRel(p: string): string {
  const parts: string[] = [];
  for (const s of p.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") parts.pop();
    else parts.push(s);
  }
  return parts.join("/");
}

/** Translates a compose file into an hd.toml document. Throws {@link SourceError} on broken input. */
export function translateCompose(tr: Translation, o: ComposeOptions): HdDoc {
  const file = o.file;
  const readFile = o.readFile ?? (() => null);
  const { data: raw, lines } = parseComposeYaml(file, o.text);
  const lineOf = (path: string): number => {
    for (let p = path; p; p = p.replace(/(\.[^.[\]]*|\[\d+\])$/, "")) {
      const l = lines.get(p);
      if (l) return l;
      if (!/[.[]/.test(p)) break;
    }
    return 1;
  };
  const at = (path: string): Source => ({ file, line: lineOf(path) });
  const dotenvText = readFile(".env");
  const vars: Record<string, string> = {
    ...(dotenvText ? parseDotEnv(dotenvText) : {}),
    ...(o.env ?? {}),
  };
  // interpolation of every string value (keys too), with the line of the value's key on error
  const interp = (v: Json, path: string): Json => {
    if (typeof v === "string") {
      try {
        return interpolate(v, vars);
      } catch (e) {
        throw new SourceError(
          at(path),
          (e as Error).message,
          "set the variable in the environment or in .env, or give a default with ${VAR:-default}",
        );
      }
    }
    if (Array.isArray(v)) return v.map((x, i) => interp(x, `${path}[${i}]`));
    if (isObj(v)) {
      const out: Obj = {};
      for (const [k, x] of Object.entries(v)) {
        out[k] = k.startsWith("x-") ? x : interp(x, path ? `${path}.${k}` : k);
      }
      return out;
    }
    return v;
  };
  const data = interp(raw, "") as Obj;
  for (const k of Object.keys(data)) {
    if (k.startsWith("x-")) continue;
    if (!(COMPOSE_TOP as readonly string[]).includes(k)) {
      const s = didYouMean(k, COMPOSE_TOP);
      throw new SourceError(
        at(k),
        `unknown compose key "${k}"`,
        s ? `did you mean "${s}"?` : `top-level keys: ${COMPOSE_TOP.join(", ")} (and x-…)`,
      );
    }
  }
  const name = typeof data.name === "string" && /^[a-z0-9][a-z0-9._-]*$/.test(data.name)
    ? data.name
    : o.name;
  const doc = emptyDoc(name);
  doc.header.push(
    `translated from ${file} by \`hd ingest\`; reference: docs/hdtoml.md, docs/ingest.md`,
  );
  if (isObj(data.services) === false && data.services !== undefined) {
    throw new SourceError(
      at("services"),
      "services must be a mapping of service names",
      "write services:\\n  web: …",
    );
  }
  const servicesRaw = (data.services ?? {}) as Obj;
  for (const k of ["networks", "configs", "include", "models"]) {
    if (k in data) {
      tr.report(
        at(k),
        k,
        `not translated: top-level ${k} has no hd.toml key (one environment, one network)`,
      );
    }
  }
  // services with extends resolved
  const resolved: Record<string, Obj> = {};
  const resolve = (n: string, svcs: Obj, depth: number, path: string): Obj => {
    const s = svcs[n];
    if (!isObj(s)) {
      throw new SourceError(
        at(path),
        `service "${n}" must be a mapping`,
        "write its keys below it",
      );
    }
    for (const k of Object.keys(s)) {
      if (k.startsWith("x-")) continue;
      if (!(COMPOSE_SERVICE as readonly string[]).includes(k)) {
        const sg = didYouMean(k, COMPOSE_SERVICE);
        throw new SourceError(
          at(`${path}.${k}`),
          `unknown compose key "${k}" in service ${n}`,
          sg ? `did you mean "${sg}"?` : "see the Compose Specification's service keys",
        );
      }
    }
    if (!s.extends) return s;
    if (depth > 10) {
      throw new SourceError(
        at(`${path}.extends`),
        "extends nests more than 10 deep (a cycle?)",
        "remove the loop",
      );
    }
    const ex = s.extends;
    const baseName = typeof ex === "string" ? ex : isObj(ex) ? str(ex.service) : "";
    let baseSvcs = svcs;
    if (isObj(ex) && ex.file) {
      const t = readFile(normRel(str(ex.file)));
      if (t === null) {
        throw new SourceError(
          at(`${path}.extends`),
          `extends file ${str(ex.file)} does not exist`,
          "check the path",
        );
      }
      const other = parseComposeYaml(str(ex.file), t).data;
      baseSvcs = (other.services ?? {}) as Obj;
    }
    if (!(baseName in baseSvcs)) {
      throw new SourceError(
        at(`${path}.extends`),
        `extends names an unknown service "${baseName}"`,
        "check the name",
      );
    }
    const b = resolve(
      baseName,
      baseSvcs,
      depth + 1,
      baseSvcs === svcs ? `services.${baseName}` : path,
    );
    const own = { ...s };
    delete own.extends;
    const bb = { ...b };
    delete bb.depends_on; // compose: depends_on is not inherited
    return merge(bb, own) as Obj;
  };
  for (const n of Object.keys(servicesRaw)) {
    if (n.startsWith("x-")) continue;
    resolved[n] = resolve(n, servicesRaw, 0, `services.${n}`);
  }

  // ---- the environment: the first service with build, else one running an image with the project bound ----
  const projectBind = (s: Obj): string | null => {
    for (const v of (Array.isArray(s.volumes) ? s.volumes : [])) {
      if (typeof v === "string") {
        const [src, dst] = v.split(":");
        if (dst && (src === "." || src === "./")) return dst.replace(/\/$/, "") || "/";
      } else if (isObj(v) && v.type === "bind" && (v.source === "." || v.source === "./")) {
        return str(v.target).replace(/\/$/, "") || "/";
      }
    }
    return null;
  };
  const buildKey = (s: Obj): string | null => {
    if (s.build === undefined) return s.image && projectBind(s) ? `image:${str(s.image)}` : null;
    const b = isObj(s.build) ? s.build : { context: s.build };
    return `build:${normRel(str(b.context ?? "."))}|${str(b.dockerfile ?? "Dockerfile")}|${
      str(b.target ?? "")
    }`;
  };
  const names = Object.keys(resolved);
  const envKey = names.map((n) => buildKey(resolved[n])).find((k) => k !== null) ?? null;
  const envSvc = names.find((n) => buildKey(resolved[n]) === envKey) ?? null;
  let projectDir = "/app";
  let df: ReturnType<typeof translateDockerfile> | null = null;
  let ctxRel = "";
  if (envSvc && envKey?.startsWith("build:")) {
    const s = resolved[envSvc];
    const b: Obj = isObj(s.build) ? s.build : { context: s.build };
    const p = `services.${envSvc}.build`;
    for (const k of Object.keys(b)) {
      if (!BUILD_KEYS.includes(k)) {
        tr.report(at(`${p}.${k}`), `build.${k}`, "not translated: no hd.toml key planned");
      }
    }
    ctxRel = normRel(str(b.context ?? "."));
    if (/^[a-z]+:\/\//.test(str(b.context ?? ""))) {
      throw new SourceError(
        at(p),
        `build context ${str(b.context)} is not a local directory`,
        "clone it and point context at the directory",
      );
    }
    const dfRel = normRel(`${ctxRel}/${str(b.dockerfile ?? "Dockerfile")}`);
    const text = typeof b.dockerfile_inline === "string" ? b.dockerfile_inline : readFile(dfRel);
    if (text === null) {
      throw new SourceError(
        at(p),
        `${dfRel} does not exist`,
        "check build.context and build.dockerfile",
      );
    }
    const args: Record<string, string> = envOf(b.args ?? null, vars);
    df = translateDockerfile(tr, {
      file: typeof b.dockerfile_inline === "string"
        ? `${file}:${lineOf(`${p}.dockerfile_inline`)}`
        : dfRel,
      text,
      target: b.target ? str(b.target) : null,
      buildArgs: args,
      context: ctxRel,
      exists: o.exists,
      isDir: o.isDir,
      arch: o.arch,
      serviceName: envSvc,
    });
    projectDir = df.projectDir;
    applyDockerignore(tr, doc, readFile, dfRel, ctxRel);
    doc.environment.base = df.base;
    doc.environment.env = df.env;
    doc.environment.comment.push(
      ...df.envComment,
      `(the build of service ${envSvc}, ${file}:${lineOf(p)})`,
    );
    Object.assign(doc.environment.extra, df.envExtra);
    doc.build.steps = df.steps;
    doc.build.cache = df.cache;
    doc.build.comment.push(...df.buildComment);
    Object.assign(doc.build.extra, df.buildExtra);
  } else if (envSvc) {
    const s = resolved[envSvc];
    doc.environment.base = str(s.image);
    projectDir = projectBind(s)!;
    doc.environment.comment.push(
      `from ${file}:${
        lineOf(`services.${envSvc}.image`)
      } (service ${envSvc}: its image, with the project bound at ${projectDir})`,
    );
  } else {
    doc.environment.comment.push(
      `no service of ${file} builds the project or binds it: the environment runs on the host`,
    );
  }
  doc.environment.workdir = doc.environment.base ? projectDir : null;

  // ---- services ----
  const emitted = new Set(names.filter((n) => buildKey(resolved[n]) === envKey && envKey !== null));
  const out: ServiceOut[] = [];
  for (const n of names) {
    const s = resolved[n];
    const p = `services.${n}`;
    const sv = newService(n, "");
    let ownImage = false;
    if (!emitted.has(n)) {
      // a service on an image of its own (or another Dockerfile): services.NAME.image, planned
      const img = s.build !== undefined
        ? `(built from ${isObj(s.build) ? str(s.build.context ?? ".") : str(s.build)})`
        : str(s.image ?? "");
      const where = at(s.image !== undefined ? `${p}.image` : `${p}.build`);
      if (
        !tr.planned("service.image", sv.extra, "image", img, where, `service ${n} (image ${img})`)
      ) {
        continue;
      }
      ownImage = true;
    }
    sv.comment.push(`from ${file}:${lineOf(p)} (service ${n})`);
    // command: compose entrypoint/command over the Dockerfile's, combined as Docker does
    let ep: string[] | null = null;
    let cmd: string[] | null = null;
    if (ownImage) { /* its image's own command unless compose gives one */ }
    else if (df && n === envSvc && df.service) {
      ep = df.entrypoint;
      cmd = df.cmd;
      sv.port = df.service.port;
      sv.watch = df.service.watch;
      sv.workdir = df.service.workdir;
      Object.assign(sv.extra, df.service.extra);
      sv.comment.push(...df.service.comment);
    } else if (df && df.service) {
      ep = df.entrypoint;
      cmd = df.cmd;
      sv.watch = df.service.watch;
      sv.workdir = df.service.workdir;
    }
    if (s.entrypoint !== undefined) {
      ep = argvOf(s.entrypoint);
      if (s.command === undefined) cmd = null;
    }
    if (s.command !== undefined) cmd = argvOf(s.command);
    const argv = [...(ep ?? []), ...(cmd ?? [])];
    if (!argv.length && !ownImage) {
      tr.report(
        at(p),
        `service ${n}`,
        "not translated: no command (the image's own command is not known to hd ingest); add command:",
      );
      continue;
    }
    sv.command = !argv.length
      ? ""
      : argv.length === 3 && /^(\/bin\/)?sh$/.test(argv[0]) && argv[1] === "-c"
      ? argv[2]
      : shellQuote(argv);
    if (
      df && df.service?.command.startsWith("cd ") && s.command === undefined &&
      s.entrypoint === undefined
    ) {
      sv.command = df.service.command;
    }
    if (s.environment !== undefined) sv.env = envOf(s.environment, o.env ?? {});
    if (s.working_dir !== undefined) {
      const wd = str(s.working_dir).replace(/\/$/, "");
      if (wd === projectDir) sv.workdir = null;
      else if (wd.startsWith(projectDir + "/")) sv.workdir = wd.slice(projectDir.length + 1);
      else sv.command = `cd ${shellQuoteWord(wd)} && ${sv.command}`;
    }
    // ports: the container port is the readiness port (hd services share the host's network)
    const published: string[] = [];
    // a service's own ports first (extends merges the base's after them)
    const own = isObj(servicesRaw[n]) && Array.isArray((servicesRaw[n] as Obj).ports)
      ? (servicesRaw[n] as Obj).ports as Json[]
      : [];
    const all = Array.isArray(s.ports) ? s.ports : [];
    const ports = [
      ...own,
      ...all.filter((x) => !own.some((y) => JSON.stringify(y) === JSON.stringify(x))),
    ];
    ports.forEach((pv, i) => {
      let container = "";
      let host = "";
      let ip = "";
      let proto = "tcp";
      if (isObj(pv)) {
        container = str(pv.target);
        host = str(pv.published ?? "");
        ip = str(pv.host_ip ?? "");
        proto = str(pv.protocol ?? "tcp");
      } else {
        const sp = str(pv).split("/");
        proto = sp[1] ?? "tcp";
        const parts = sp[0].split(":");
        container = parts.pop()!;
        host = parts.pop() ?? "";
        ip = parts.join(":");
      }
      const cport = Number(container);
      if (
        proto === "tcp" && Number.isInteger(cport) && cport > 0 && cport < 65536 && sv.port === null
      ) sv.port = cport;
      if ((host && host !== container) || ip || proto !== "tcp" || !Number.isInteger(cport)) {
        published.push(
          typeof pv === "string"
            ? pv
            : `${ip ? ip + ":" : ""}${host ? host + ":" : ""}${container}/${proto}`,
        );
      }
      void i;
    });
    if (published.length) {
      tr.planned(
        "service.ports",
        sv.extra,
        "ports",
        published,
        at(`${p}.ports`),
        `ports ${published.join(", ")}`,
      );
    }
    const expose: number[] = [];
    for (const x of Array.isArray(s.expose) ? s.expose : []) {
      const [n, proto] = str(x).split("/");
      const port = /^\d{1,5}$/.test(n) ? Number(n) : 0;
      if (port >= 1 && port <= 65535 && (proto === undefined || proto === "tcp")) expose.push(port);
      else {
        tr.report(
          at(`${p}.expose`),
          `expose ${str(x)}`,
          "not translated: expose holds single TCP ports (write each port of a range)",
        );
      }
    }
    for (const x of expose) if (sv.port === null && x > 0) sv.port = x;
    const moreExpose = expose.filter((x) => x !== sv.port);
    if (moreExpose.length) {
      tr.planned(
        "service.expose",
        sv.extra,
        "expose",
        moreExpose,
        at(`${p}.expose`),
        `expose ${moreExpose.join(", ")}`,
      );
    }
    // depends_on
    if (s.depends_on !== undefined) {
      const deps: [string, string][] = Array.isArray(s.depends_on)
        ? s.depends_on.map((d) => [str(d), "service_started"])
        : isObj(s.depends_on)
        ? Object.entries(s.depends_on).map((
          [d, v],
        ) => [d, isObj(v) ? str(v.condition ?? "service_started") : "service_started"])
        : [];
      const cond: Record<string, string> = {};
      for (const [d, c] of deps) {
        const dp = `${p}.depends_on.${d}`;
        if (!(d in resolved)) {
          throw new SourceError(
            at(`${p}.depends_on`),
            `depends_on names an unknown service "${d}"`,
            `services: ${names.join(", ")}`,
          );
        }
        if (!emitted.has(d) && !tr.features["service.image"]) {
          tr.report(
            at(Array.isArray(s.depends_on) ? `${p}.depends_on` : dp),
            `depends_on ${d}`,
            `not translated: ${d} is not translated (see its line)`,
          );
          continue;
        }
        const short = c.replace(/^service_/, "");
        cond[d] = short === "healthy" || short === "started" ? short : short;
        if (short === "completed_successfully") {
          if (
            !tr.planned(
              "service.depends_on_conditions",
              sv.extra,
              "depends_on",
              cond,
              at(dp),
              `depends_on ${d}: condition ${c}`,
            )
          ) continue;
        }
        sv.depends_on.push(d);
        if (isObj(s.depends_on) && isObj(s.depends_on[d])) {
          const dv = s.depends_on[d] as Obj;
          for (const k of ["restart", "required"]) {
            if (k in dv) {
              tr.report(at(dp), `depends_on ${d}.${k}`, "not translated: no hd.toml key planned");
            }
          }
        }
      }
      if ("depends_on" in sv.extra) sv.depends_on = [];
    }
    if (s.restart !== undefined) {
      const r = str(s.restart);
      sv.restart_policy = r === "no"
        ? "never"
        : r === "always" || r === "unless-stopped"
        ? "always"
        : r.startsWith("on-failure")
        ? "on_failure"
        : null;
      if (!sv.restart_policy) {
        throw new SourceError(
          at(`${p}.restart`),
          `restart "${r}" is not a restart policy`,
          "use no, always, on-failure or unless-stopped",
        );
      }
      if (/^on-failure:\d+/.test(r)) {
        tr.report(
          at(`${p}.restart`),
          `restart ${r}`,
          "not translated: a retry limit has no hd.toml key planned",
        );
      }
    }
    if (s.healthcheck !== undefined && isObj(s.healthcheck) && !s.healthcheck.disable) {
      const h = s.healthcheck;
      const hc: Record<string, TomlValue> = {};
      if (h.test !== undefined) hc.test = Array.isArray(h.test) ? h.test.map(str) : str(h.test);
      for (const k of ["interval", "timeout", "start_period", "start_interval"]) {
        if (h[k] !== undefined) hc[k] = str(h[k]);
      }
      if (h.retries !== undefined) hc.retries = Number(h.retries);
      tr.planned(
        "service.healthcheck",
        sv.extra,
        "healthcheck",
        hc,
        at(`${p}.healthcheck`),
        "healthcheck",
      );
    }
    if (s.user !== undefined) {
      tr.planned(
        "service.user",
        sv.extra,
        "user",
        str(s.user),
        at(`${p}.user`),
        `user ${str(s.user)}`,
      );
    }
    if (s.env_file !== undefined) {
      const files = (Array.isArray(s.env_file) ? s.env_file : [s.env_file]).map((f) =>
        isObj(f) ? str(f.path) : str(f)
      );
      tr.planned(
        "service.env_file",
        sv.extra,
        "env_file",
        files,
        at(`${p}.env_file`),
        `env_file ${files.join(", ")}`,
      );
    }
    if (s.stop_signal !== undefined) {
      const sig = stopSignalName(str(s.stop_signal));
      if (sig === null) {
        tr.report(
          at(`${p}.stop_signal`),
          `stop_signal ${str(s.stop_signal)}`,
          `not translated: hd stops a service with ${STOP_SIGNALS.join(", ")}`,
        );
      } else {
        tr.planned(
          "service.stop_signal",
          sv.extra,
          "stop_signal",
          sig,
          at(`${p}.stop_signal`),
          `stop_signal ${str(s.stop_signal)}`,
        );
      }
    }
    if (s.stop_grace_period !== undefined) {
      const ms = parseDuration(str(s.stop_grace_period));
      const over = ms === null ? null : durationOverLimit("restart_grace", ms);
      if (ms === null || over) {
        tr.report(
          at(`${p}.stop_grace_period`),
          `stop_grace_period ${str(s.stop_grace_period)}`,
          `not translated: ${over ? over.message : 'not a duration like "10s" or "1m30s"'}`,
        );
      } else {
        tr.planned(
          "service.restart_grace",
          sv.extra,
          "restart_grace",
          str(s.stop_grace_period),
          at(`${p}.stop_grace_period`),
          "stop_grace_period",
        );
      }
    }
    if (s.profiles !== undefined) {
      tr.planned(
        "service.profiles",
        sv.extra,
        "profiles",
        (s.profiles as Json[]).map(str),
        at(`${p}.profiles`),
        "profiles",
      );
    }
    if (s.labels !== undefined) {
      tr.planned(
        "service.labels",
        sv.extra,
        "labels",
        envOf(s.labels, {}),
        at(`${p}.labels`),
        "labels",
      );
    }
    const scale = s.scale ?? (isObj(s.deploy) ? s.deploy.replicas : undefined);
    if (scale !== undefined) {
      tr.planned(
        "service.scale",
        sv.extra,
        "scale",
        Number(scale),
        at(s.scale !== undefined ? `${p}.scale` : `${p}.deploy`),
        "scale",
      );
    }
    if (isObj(s.deploy)) {
      for (const k of Object.keys(s.deploy)) {
        if (k !== "replicas") {
          tr.report(at(`${p}.deploy`), `deploy.${k}`, "not translated: no hd.toml key planned");
        }
      }
    }
    if (s.tmpfs !== undefined) {
      const t = (Array.isArray(s.tmpfs) ? s.tmpfs : [s.tmpfs]).map(str);
      tr.planned("service.tmpfs", sv.extra, "tmpfs", t, at(`${p}.tmpfs`), "tmpfs");
    }
    if (s.secrets !== undefined) {
      const sec = (s.secrets as Json[]).map((x) => isObj(x) ? str(x.source) : str(x));
      tr.planned(
        "service.secrets",
        sv.extra,
        "secrets",
        sec,
        at(`${p}.secrets`),
        `secrets ${sec.join(", ")}`,
      );
    }
    if (isObj(s.networks)) {
      const aliases = Object.values(s.networks).flatMap((v) =>
        isObj(v) && Array.isArray(v.aliases) ? v.aliases.map(str) : []
      );
      if (aliases.length) {
        tr.planned(
          "service.aliases",
          sv.extra,
          "aliases",
          aliases,
          at(`${p}.networks`),
          "networks aliases",
        );
      } else {tr.report(
          at(`${p}.networks`),
          "networks",
          "not translated: one network per environment (no hd.toml key planned)",
        );}
    } else if (s.networks !== undefined) {
      tr.report(
        at(`${p}.networks`),
        "networks",
        "not translated: one network per environment (no hd.toml key planned)",
      );
    }
    // volumes: the project bind is the tracked tree; the rest waits for services.NAME.volumes
    const vols: TomlValue[] = [];
    (Array.isArray(s.volumes) ? s.volumes : []).forEach((v, i) => {
      const vp = `${p}.volumes[${i}]`;
      let type = "volume";
      let src = "";
      let dst = "";
      if (typeof v === "string") {
        const parts = v.split(":");
        if (parts.length === 1) dst = parts[0];
        else [src, dst] = parts;
        type = !src ? "volume" : /^[./~]/.test(src) ? "bind" : "volume";
      } else if (isObj(v)) {
        type = str(v.type ?? "volume");
        src = str(v.source ?? "");
        dst = str(v.target ?? "");
      }
      const rel = normRel(src);
      const dstN = dst.replace(/\/$/, "");
      if (
        type === "bind" && (rel === "" ? dstN === projectDir : dstN === `${projectDir}/${rel}`) &&
        !src.startsWith("~") && !src.startsWith("/")
      ) {
        sv.comment.push(
          `volume ${typeof v === "string" ? v : `${src}:${dst}`} (${file}:${
            lineOf(vp)
          }): the project is mounted at ${projectDir} and tracked`,
        );
        return;
      }
      if (
        type === "volume" && !src && dstN.startsWith(projectDir + "/") &&
        doc.build.steps.some((st) => st.outputs.includes(dstN.slice(projectDir.length + 1)))
      ) {
        sv.comment.push(
          `volume ${dst} (${file}:${lineOf(vp)}): already a build step's output layer`,
        );
        return;
      }
      vols.push(typeof v === "string" ? v : (v as { [k: string]: TomlValue }));
      tr.planned(
        "service.volumes",
        sv.extra,
        "volumes",
        vols,
        at(vp),
        `volume ${typeof v === "string" ? v : `${type} ${src}:${dst}`}`,
      );
    });
    // develop.watch: restart / sync+restart / rebuild → watch globs; sync is live already
    if (isObj(s.develop) && Array.isArray(s.develop.watch)) {
      s.develop.watch.forEach((w, i) => {
        if (!isObj(w)) return;
        const wp = `${p}.develop.watch[${i}]`;
        const action = str(w.action);
        const rel = normRel(str(w.path ?? "."));
        const glob = rel === "" ? "**" : o.isDir?.(rel) ? `${rel}/**` : rel;
        if (action === "sync") {
          sv.comment.push(
            `develop.watch sync ${rel || "."} (${file}:${
              lineOf(wp)
            }): the project is mounted, changes are live`,
          );
          return;
        }
        if (!["sync+restart", "restart", "rebuild", "sync+exec"].includes(action)) {
          throw new SourceError(
            at(wp),
            `develop.watch action "${action}" is not sync, sync+restart, restart or rebuild`,
            "fix the action",
          );
        }
        if (action === "sync+exec") {
          tr.report(at(wp), "develop.watch sync+exec", "not translated: no hd.toml key planned");
          return;
        }
        if (!sv.watch.includes(glob) && !sv.watch.includes("**")) sv.watch.push(glob);
        if (w.ignore !== undefined) {
          tr.report(
            at(wp),
            "develop.watch ignore",
            "not translated: watch globs have no exceptions (use [files].exclude)",
          );
        }
      });
    }
    for (const k of Object.keys(s)) {
      const handled = [
        "build",
        "image",
        "command",
        "entrypoint",
        "environment",
        "env_file",
        "ports",
        "expose",
        "depends_on",
        "healthcheck",
        "restart",
        "working_dir",
        "user",
        "volumes",
        "profiles",
        "develop",
        "secrets",
        "extends",
        "stop_signal",
        "stop_grace_period",
        "labels",
        "scale",
        "deploy",
        "tmpfs",
        "networks",
        "container_name",
        "hostname",
        "init",
        "tty",
        "stdin_open",
      ];
      if (k.startsWith("x-") || handled.includes(k)) continue;
      tr.report(at(`${p}.${k}`), k, "not translated: no hd.toml key planned");
    }
    for (const k of ["container_name", "hostname"]) {
      if (k in s) {
        tr.report(
          at(`${p}.${k}`),
          `${k} ${str(s[k])}`,
          "not translated: a service is reached by its name (no hd.toml key planned)",
        );
      }
    }
    out.push(sv);
  }
  doc.services = out;
  // top-level volumes and secrets
  if (isObj(data.volumes)) {
    for (const v of Object.keys(data.volumes)) {
      const t: Record<string, Record<string, TomlValue>> = doc.tables.volumes ?? {};
      if (tr.planned("volumes", t, v, {}, at(`volumes.${v}`), `volume ${v}`)) {
        doc.tables.volumes = t;
      }
    }
  }
  if (isObj(data.secrets)) {
    for (const [v, def] of Object.entries(data.secrets)) {
      const t: Record<string, Record<string, TomlValue>> = doc.tables.secrets ?? {};
      const d = isObj(def) ? def : {};
      const val: Record<string, TomlValue> = d.file !== undefined
        ? { file: str(d.file) }
        : d.environment !== undefined
        ? { environment: str(d.environment) }
        : {};
      if (tr.planned("secrets", t, v, val, at(`secrets.${v}`), `secret ${v}`)) {
        doc.tables.secrets = t;
      }
    }
  }
  if ("version" in data) {
    doc.header.push(
      `(the obsolete top-level version: ${str(data.version)} is ignored, as compose does)`,
    );
  }
  return doc;
}

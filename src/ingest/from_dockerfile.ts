/**
 * A Dockerfile's meaning, translated: stages (`FROM … AS name`, `--target`, BuildKit's ARG scoping),
 * ENV/ARG expansion, WORKDIR, the instructions that become hd.toml keys, and the split of
 * `COPY . .` into per-step inputs (rules.ts). The stage that is built becomes the environment; the
 * rest is reported through the {@link Translation}.
 *
 * @example
 * ```ts
 * import { translateDockerfile } from "./from_dockerfile.ts";
 * import { currentFeatures, Translation } from "./model.ts";
 * const tr = new Translation(currentFeatures());
 * const r = translateDockerfile(tr, { file: "Dockerfile", text: "FROM node:20\nCMD node s.js\n" });
 * console.log(r.base, r.service?.command); // node:20 node s.js
 * ```
 * @module
 */
import { type DockerfileTokens, type Instruction, tokenizeDockerfile } from "./dockerfile.ts";
import { DockerfileError } from "./dockerfile.ts";
import {
  newService,
  type ServiceOut,
  type Source,
  type StepOut,
  type TomlValue,
  type Translation,
} from "./model.ts";
import { classifyRun } from "./rules.ts";
import { STOP_SIGNALS, stopSignalName } from "../config/signals.ts";
import {
  expandWord,
  shellQuote,
  shellQuoteWord,
  splitWords,
  type Vars,
  WordError,
} from "./words.ts";

/** A broken input: where, what, and a hint. */
export class SourceError extends Error {
  constructor(readonly at: Source, message: string, readonly hint: string) {
    super(message);
  }
}

/** The PATH an image is assumed to set (Docker's default, and that of the official images). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** What to translate. */
export interface DockerfileOptions {
  /** The Dockerfile as shown in reports (e.g. `Dockerfile`, `api/Dockerfile`). */
  file: string;
  text: string;
  /** The stage to build (`--target`); default the last. */
  target?: string | null;
  /** `--build-arg` values. */
  buildArgs?: Record<string, string>;
  /** The build context relative to the project ("" = the project itself). */
  context?: string;
  /** Does a project path (or glob) exist? Used to leave absent optional files out of inputs. */
  exists?: (glob: string) => boolean;
  /** Is a project path a directory? */
  isDir?: (path: string) => boolean;
  /** The target architecture for TARGETARCH and friends. */
  arch?: string;
  /** Name of the service a CMD/ENTRYPOINT becomes. */
  serviceName?: string;
  /** Stages whose steps are written already (a stage copied from twice is built once). */
  emittedStages?: Set<string>;
}

/** The built stage as hd.toml pieces. */
export interface DockerfileResult {
  base: string | null;
  /** Where the build context lands in the environment: the environment's workdir. */
  projectDir: string;
  env: Record<string, string>;
  steps: StepOut[];
  cache: string[];
  /** The CMD/ENTRYPOINT service, or null when the built stage has none. */
  service: ServiceOut | null;
  /** Comment lines for [environment]. */
  envComment: string[];
  /** The name (or index) of the built stage. */
  stage: string;
  /** Planned keys for [environment] (user). */
  envExtra: Record<string, TomlValue>;
  /** Planned keys for [build] (shell). */
  buildExtra: Record<string, TomlValue>;
  /** Comment lines for [build]. */
  buildComment: string[];
  /** ENTRYPOINT and CMD as argument vectors (shell form: the SHELL words and the string). */
  entrypoint: string[] | null;
  cmd: string[] | null;
}

interface Stage {
  index: number;
  name: string | null;
  from: Instruction;
  image: string;
  parent: number | null;
  instrs: Instruction[];
}

type Cmd = { argv: string[] } | { shell: string };

/** The running state of a stage (what `FROM stage` inherits, except ARGs). */
interface State {
  env: Record<string, string>;
  envLines: number[];
  imageEnv: Record<string, string>;
  args: Record<string, string | undefined>;
  workdir: string;
  workdirLines: number[];
  user: { name: string; line: number } | null;
  shell: { argv: string[]; line: number } | null;
  cmd: { v: Cmd; line: number } | null;
  entrypoint: { v: Cmd; line: number } | null;
  cmdHere: boolean;
  expose: { port: string; line: number }[];
  healthcheck: { v: TomlValue | null; line: number } | null;
  stopsignal: { v: string; line: number } | null;
  labels: { v: Record<string, string>; line: number }[];
  volumes: { v: string[]; line: number }[];
}

/** One event of the built chain, in order. */
type Event =
  | {
    kind: "run";
    at: number;
    cmd: string;
    /**
     * The SHELL in effect for a shell-form RUN (null: the default `/bin/sh -c`, or an exec-form
     * RUN, which needs none); folded into the command (`bash -c 'cmd'`) unless it is the shell
     * `[build] shell` names.
     */
    shellFold: string[] | null;
    /** An exec-form RUN (its words already quoted: any shell runs it). */
    exec?: boolean;
    args: Record<string, string>;
    env: Record<string, string>;
    workdir: string;
    user: string | null;
    network: "host" | "none";
    cache: string[];
    binds: string[];
    text: string;
  }
  | {
    kind: "copy";
    at: number;
    add: boolean;
    sources: string[];
    dest: string;
    from: string | null;
    heredocs: { name: string; body: string }[];
    flags: Record<string, string | null>;
    text: string;
  };

function normAbs(base: string, p: string): string {
  const parts = (p.startsWith("/") ? p : `${base}/${p}`).split("/");
  const out: string[] = [];
  for (const s of parts) {
    if (s === "" || s === ".") continue;
    if (s === "..") out.pop();
    else out.push(s);
  }
  return "/" + out.join("/");
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

const isGlob = (s: string) => /[*?[]/.test(s);
const TAR = /\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tzst)$/;
const short = (s: string, n = 60) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

function platformArgs(arch: string): Record<string, string> {
  return {
    TARGETPLATFORM: `linux/${arch}`,
    TARGETOS: "linux",
    TARGETARCH: arch,
    TARGETVARIANT: "",
    BUILDPLATFORM: `linux/${arch}`,
    BUILDOS: "linux",
    BUILDARCH: arch,
    BUILDVARIANT: "",
  };
}

/** Translates the built stage of a Dockerfile. Throws {@link SourceError} on broken input. */
export function translateDockerfile(tr: Translation, o: DockerfileOptions): DockerfileResult {
  const file = o.file;
  const at = (line: number): Source => ({ file, line });
  let tokens: DockerfileTokens;
  try {
    tokens = tokenizeDockerfile(o.text);
  } catch (e) {
    if (e instanceof DockerfileError) throw new SourceError(at(e.line), e.message, e.hint);
    throw e;
  }
  const esc = tokens.escape;
  const buildArgs = o.buildArgs ?? {};
  const ctx = normRel(o.context ?? "");
  const inCtx = (p: string) => normRel(ctx ? `${ctx}/${p}` : p);
  const exists = o.exists ?? (() => true);
  const isDir = o.isDir ?? (() => false);
  const arch = o.arch ?? "amd64";
  const expand = (raw: string, vars: Vars, line: number) => {
    try {
      return expandWord(raw, vars, esc);
    } catch (e) {
      if (e instanceof WordError) {
        throw new SourceError(at(line), e.message, "check the quotes and ${…} expansions");
      }
      throw e;
    }
  };
  const words = (s: string, line: number) => {
    try {
      return splitWords(s, esc);
    } catch (e) {
      if (e instanceof WordError) throw new SourceError(at(line), e.message, "close the quote");
      throw e;
    }
  };

  // ---- stages and global ARGs ----
  const globals: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  const predefined = platformArgs(arch);
  for (const ins of tokens.instructions) {
    if (ins.keyword === "FROM") {
      const gv: Record<string, string> = { ...predefined };
      for (const [k, v] of Object.entries(globals)) if (v !== undefined) gv[k] = v;
      const w = words(ins.args, ins.line);
      if (w.length !== 1 && !(w.length === 3 && w[1].toLowerCase() === "as")) {
        throw new SourceError(
          at(ins.line),
          `FROM takes an image and an optional "AS name", not "${short(ins.args)}"`,
          "write FROM image[:tag] [AS name]",
        );
      }
      const image = expand(w[0], gv, ins.line);
      if (!image) {
        throw new SourceError(at(ins.line), "FROM names no image (an empty ARG?)", "set the ARG");
      }
      const name = w.length === 3 ? w[2].toLowerCase() : null;
      const parent = stages.findIndex((s) => s.name !== null && s.name === image.toLowerCase());
      stages.push({
        index: stages.length,
        name,
        from: ins,
        image,
        parent: parent >= 0 ? parent : null,
        instrs: [],
      });
      for (const f of ins.flags) {
        if (f.name === "platform") {
          tr.report(
            at(ins.line),
            `FROM --platform=${f.value}`,
            "not translated: hd runs the host's platform (no hd.toml key planned)",
          );
        }
      }
      continue;
    }
    if (!stages.length) {
      if (ins.keyword !== "ARG") {
        throw new SourceError(
          at(ins.line),
          `${ins.keyword} before the first FROM`,
          "only ARG may come before FROM",
        );
      }
      for (const w of words(ins.args, ins.line)) {
        const k = w.indexOf("=");
        const name = k < 0 ? w : w.slice(0, k);
        const gv: Record<string, string> = {};
        for (const [a, v] of Object.entries(globals)) if (v !== undefined) gv[a] = v;
        globals[name] = buildArgs[name] ??
          (k < 0 ? undefined : expand(w.slice(k + 1), gv, ins.line));
      }
      continue;
    }
    stages[stages.length - 1].instrs.push(ins);
  }
  if (!stages.length) {
    throw new SourceError(at(1), "no FROM instruction", "a Dockerfile starts with FROM image");
  }

  const stageByRef = (ref: string): Stage | null => {
    if (/^[0-9]+$/.test(ref)) return stages[Number(ref)] ?? null;
    return stages.find((s) => s.name === ref.toLowerCase()) ?? null;
  };
  let target = stages[stages.length - 1];
  if (o.target) {
    const t = stageByRef(o.target);
    if (!t) {
      throw new SourceError(
        at(stages[stages.length - 1].from.line),
        `no stage named "${o.target}" (target)`,
        `stages: ${stages.map((s) => s.name ?? String(s.index)).join(", ")}`,
      );
    }
    target = t;
  }

  // ---- a cycle of stages (FROM stage, COPY --from, RUN --mount from=) ----
  const edges = (s: Stage): { to: Stage; line: number }[] => {
    const out: { to: Stage; line: number }[] = [];
    if (s.parent !== null) out.push({ to: stages[s.parent], line: s.from.line });
    for (const ins of s.instrs) {
      for (const f of ins.flags) {
        let ref: string | null = null;
        if (f.name === "from" && f.value) ref = f.value;
        if (f.name === "mount" && f.value) {
          const m = /(?:^|,)from=([^,]+)/.exec(f.value);
          if (m) ref = m[1];
        }
        const to = ref ? stageByRef(ref) : null;
        if (to) out.push({ to, line: ins.line });
      }
    }
    return out;
  };
  const color = new Map<number, number>();
  const path: { s: Stage; line: number }[] = [];
  const visit = (s: Stage, line: number) => {
    color.set(s.index, 1);
    path.push({ s, line });
    for (const e of edges(s)) {
      const c = color.get(e.to.index) ?? 0;
      if (c === 1) {
        const k = path.findIndex((p) => p.s === e.to);
        const names = [...path.slice(k).map((p) => p.s), e.to].map((x) => x.name ?? x.index);
        throw new SourceError(
          at(e.line),
          `the stages form a cycle: ${names.join(" -> ")}`,
          "a stage cannot copy from a stage built from it",
        );
      }
      if (c === 0) visit(e.to, e.line);
    }
    path.pop();
    color.set(s.index, 2);
  };
  visit(target, target.from.line);

  // ---- dispatch: the chain of the built stage ----
  const chain: Stage[] = [];
  for (let s: Stage | null = target; s; s = s.parent !== null ? stages[s.parent] : null) {
    chain.unshift(s);
  }
  const root = chain[0];
  const base = root.image === "scratch" ? null : root.image;
  if (!base) {
    tr.report(
      at(root.from.line),
      "FROM scratch",
      "not translated: an empty root; without `base` hd runs on the host (no hd.toml key planned)",
    );
  }
  const st: State = {
    env: {},
    envLines: [],
    imageEnv: base ? { PATH: DEFAULT_PATH } : {},
    args: {},
    workdir: "/",
    workdirLines: [],
    user: null,
    shell: null,
    cmd: null,
    entrypoint: null,
    cmdHere: false,
    expose: [],
    healthcheck: null,
    stopsignal: null,
    labels: [],
    volumes: [],
  };
  const events: Event[] = [];
  const vars = (): Record<string, string> => {
    const v: Record<string, string> = { ...st.imageEnv };
    for (const [k, x] of Object.entries(st.args)) if (x !== undefined) v[k] = x;
    return Object.assign(v, st.env);
  };
  const parseCmd = (ins: Instruction): Cmd => ins.json ? { argv: ins.json } : { shell: ins.args };
  for (const stage of chain) {
    st.args = {};
    st.cmdHere = false;
    for (const ins of stage.instrs) {
      const line = ins.line;
      const text = `${ins.keyword} ${short(ins.args.replace(/\s+/g, " "), 50)}`.trim();
      switch (ins.keyword) {
        case "ARG":
          for (const w of words(ins.args, line)) {
            const k = w.indexOf("=");
            const name = k < 0 ? w : w.slice(0, k);
            const dflt = k < 0
              ? (name in predefined ? predefined[name] : globals[name])
              : expand(w.slice(k + 1), vars(), line);
            st.args[name] = buildArgs[name] ?? dflt;
          }
          break;
        case "ENV": {
          const w = words(ins.args, line);
          const v0 = vars();
          if (w.length && !w[0].includes("=")) {
            // legacy form: ENV key the rest of the line
            const rest = ins.args.trim().slice(w[0].length).trim();
            if (!rest) {
              throw new SourceError(at(line), `ENV ${w[0]} has no value`, "write ENV NAME=value");
            }
            st.env[w[0]] = expand(rest, v0, line);
          } else {
            for (const x of w) {
              const k = x.indexOf("=");
              if (k <= 0) {
                throw new SourceError(
                  at(line),
                  `ENV "${x}" is not NAME=value`,
                  "write ENV NAME=value",
                );
              }
              st.env[x.slice(0, k)] = expand(x.slice(k + 1), v0, line);
            }
          }
          st.envLines.push(line);
          break;
        }
        case "WORKDIR": {
          const v = expand(ins.args.trim(), vars(), line);
          st.workdir = normAbs(st.workdir, v);
          st.workdirLines.push(line);
          break;
        }
        case "USER":
          st.user = { name: expand(ins.args.trim(), vars(), line), line };
          break;
        case "SHELL":
          st.shell = { argv: ins.json!, line };
          break;
        case "CMD":
          st.cmd = { v: parseCmd(ins), line };
          st.cmdHere = true;
          break;
        case "ENTRYPOINT":
          st.entrypoint = { v: parseCmd(ins), line };
          if (!st.cmdHere) st.cmd = null; // Docker: ENTRYPOINT resets an inherited CMD
          break;
        case "EXPOSE":
          for (const w of words(ins.args, line)) {
            st.expose.push({ port: expand(w, vars(), line), line });
          }
          break;
        case "HEALTHCHECK": {
          const rest = ins.args.trim();
          if (/^none$/i.test(rest)) {
            st.healthcheck = { v: null, line };
            break;
          }
          const m = /^CMD\s+([\s\S]*)$/i.exec(rest);
          if (!m) {
            throw new SourceError(
              at(line),
              "HEALTHCHECK needs CMD or NONE",
              "write HEALTHCHECK [OPTIONS] CMD command",
            );
          }
          let test: string[];
          try {
            const j = JSON.parse(m[1]);
            test = Array.isArray(j) ? ["CMD", ...j.map(String)] : ["CMD-SHELL", m[1]];
          } catch {
            test = ["CMD-SHELL", m[1]];
          }
          const hc: Record<string, TomlValue> = { test };
          for (const f of ins.flags) {
            const k = f.name.replace(/-/g, "_");
            if (["interval", "timeout", "start_period", "start_interval"].includes(k) && f.value) {
              hc[k] = f.value;
            }
            if (k === "retries" && f.value) hc.retries = Number(f.value);
          }
          st.healthcheck = { v: hc, line };
          break;
        }
        case "STOPSIGNAL":
          st.stopsignal = { v: expand(ins.args.trim(), vars(), line), line };
          break;
        case "LABEL": {
          const l: Record<string, string> = {};
          for (const w of words(ins.args, line)) {
            const k = w.indexOf("=");
            if (k > 0) {
              l[expand(w.slice(0, k), vars(), line)] = expand(w.slice(k + 1), vars(), line);
            }
          }
          st.labels.push({ v: l, line });
          break;
        }
        case "MAINTAINER":
          tr.report(
            at(line),
            text,
            "not translated: deprecated; no hd.toml key (labels planned, docs/design/compose.md)",
          );
          break;
        case "ONBUILD":
          tr.report(
            at(line),
            text,
            "not translated: runs only in images built FROM this one; hd has no such images (no hd.toml key planned)",
          );
          break;
        case "VOLUME": {
          const v = ins.json ?? words(ins.args, line).map((w) => expand(w, vars(), line));
          st.volumes.push({ v, line });
          break;
        }
        case "RUN": {
          let cmd: string;
          if (ins.json) cmd = shellQuote(ins.json);
          else if (
            ins.heredocs.length && /^<<-?["']?[A-Za-z_][A-Za-z0-9_.-]*["']?$/.test(ins.args.trim())
          ) {
            // RUN <<EOF: the body is the script (a #! line picks the interpreter)
            const h = ins.heredocs[0];
            const sb = /^#!\s*(\S.*)\n/.exec(h.body);
            if (sb) cmd = `${sb[1].trim()} <<'${h.name}'\n${h.body}${h.name}`;
            else cmd = h.body.replace(/\n$/, "");
          } else if (ins.heredocs.length) {
            cmd = ins.args + "\n" + ins.heredocs.map((h) => `${h.body}${h.name}`).join("\n");
          } else cmd = ins.args;
          const shellFold = st.shell && !ins.json ? st.shell.argv : null;
          let network: "host" | "none" = "host";
          const cache: string[] = [];
          const binds: string[] = [];
          for (const f of ins.flags) {
            if (f.name === "network") {
              if (f.value === "none") network = "none";
              else if (f.value !== "host" && f.value !== "default") {
                throw new SourceError(
                  at(line),
                  `RUN --network=${f.value} is not a network mode`,
                  "use none, host or default",
                );
              }
            } else if (f.name === "mount") {
              const kv: Record<string, string> = {};
              for (const p of (f.value ?? "").split(",")) {
                const k = p.indexOf("=");
                kv[k < 0 ? p : p.slice(0, k)] = k < 0 ? "true" : p.slice(k + 1);
              }
              const type = kv.type ?? "bind";
              const tgt = kv.target ?? kv.dst ?? kv.destination ?? "";
              if (type === "cache" && tgt) {
                cache.push(normAbs(st.workdir, expand(tgt, vars(), line)));
              } else if (type === "bind" && !kv.from) {
                binds.push(normRel(expand(kv.source ?? kv.src ?? ".", vars(), line)));
              } else if (type === "secret") {
                tr.planned(
                  "secrets",
                  {},
                  "secrets",
                  [],
                  at(line),
                  `RUN --mount=type=secret${kv.id ? `,id=${kv.id}` : ""}`,
                );
              } else {
                tr.report(
                  at(line),
                  `RUN --mount=${short(f.value ?? "", 40)}`,
                  `not translated: a ${type} mount${
                    kv.from ? " from another stage or image" : ""
                  } in a step has no hd.toml key`,
                );
              }
            } else if (f.name === "security") {
              tr.report(
                at(line),
                `RUN --security=${f.value}`,
                "not translated: steps run with hd's default capabilities (no hd.toml key planned)",
              );
            }
          }
          const args: Record<string, string> = {};
          for (const [k, x] of Object.entries(st.args)) {
            if (x !== undefined && !(k in st.env)) args[k] = x;
          }
          events.push({
            kind: "run",
            at: line,
            cmd,
            shellFold,
            exec: ins.json !== null && ins.json !== undefined,
            args,
            env: { ...st.env },
            workdir: st.workdir,
            user: st.user?.name ?? null,
            network,
            cache,
            binds,
            text,
          });
          break;
        }
        case "COPY":
        case "ADD": {
          const flags: Record<string, string | null> = {};
          for (const f of ins.flags) flags[f.name] = f.value;
          const hds = ins.heredocs.map((h) => ({ name: h.name, body: h.body }));
          let w = ins.json ?? words(ins.args, line);
          if (!ins.json) {
            w = w.map((x) => /^<<-?["']?[A-Za-z_]/.test(x) ? x : expand(x, vars(), line));
          }
          if (w.length < 2) {
            throw new SourceError(
              at(line),
              `${ins.keyword} needs a source and a destination`,
              `write ${ins.keyword} SRC... DEST`,
            );
          }
          const dest = w[w.length - 1];
          const destAbs = normAbs(st.workdir, dest) +
            (dest.endsWith("/") || dest === "." ? "/" : "");
          events.push({
            kind: "copy",
            at: line,
            add: ins.keyword === "ADD",
            sources: w.slice(0, -1),
            dest: destAbs,
            from: flags.from ?? null,
            heredocs: hds,
            flags,
            text,
          });
          break;
        }
      }
    }
  }

  // ---- where the context lands: the dest of `COPY . DEST`, else the final WORKDIR ----
  let projectDir = st.workdir === "/" ? "/app" : st.workdir;
  // without COPY . DEST: where the first plain COPY of project files puts them
  const first = events.find((e) =>
    e.kind === "copy" && !e.from && !e.heredocs.length &&
    e.sources.every((x) => !/^[a-z]+:\/\//.test(x) && !TAR.test(x) && !isDir(inCtx(normRel(x))))
  );
  if (first && first.kind === "copy") {
    projectDir = first.dest.endsWith("/") || first.sources.length > 1
      ? first.dest.replace(/\/$/, "") || "/"
      : first.dest.replace(/\/[^/]*$/, "") || "/";
  }
  let wholeAt = 0;
  for (const e of events) {
    if (e.kind === "copy" && !e.from && e.sources.length === 1 && normRel(e.sources[0]) === "") {
      projectDir = e.dest.replace(/\/$/, "") || "/";
      wholeAt = e.at;
    }
  }
  /** Docker's path → hd's: the context sits at projectDir/ctx, the project root at projectDir. */
  const hdDir = (d: string): string =>
    ctx && (d === projectDir || d.startsWith(projectDir + "/"))
      ? `${projectDir}/${ctx}${d.slice(projectDir.length)}`
      : d;

  // ---- emission ----
  const steps: StepOut[] = [];
  // the stages copied from whose steps are written (shared with the stages' own translations)
  const emitted = o.emittedStages ?? new Set<string>();
  const cache: string[] = [];
  let whole: number | null = null;
  const copied: string[] = [];
  const copiedLines: number[] = [];
  const step = (run: string, inputs: string[] | null, comment: string[]): StepOut => ({
    run,
    inputs,
    outputs: [],
    env: {},
    network: "host",
    comment,
    extra: {},
  });
  const inDir = (dockerDir: string, cmd: string): string => {
    const dir = hdDir(dockerDir);
    if (dir === projectDir) return cmd;
    if (dir === "/") return /[;|\n]/.test(cmd) ? `cd / || exit 1; ${cmd}` : `cd / && ${cmd}`;
    const q = shellQuoteWord(
      dir.startsWith(projectDir + "/") ? dir.slice(projectDir.length + 1) : dir,
    );
    return /[;|\n]/.test(cmd)
      ? `mkdir -p ${q} && cd ${q} || exit 1; ${cmd}`
      : `mkdir -p ${q} && cd ${q} && ${cmd}`;
  };
  const stepAt = (s: StepOut, e: { workdir?: string; at: number }, cmd: string) => {
    if (
      e.workdir !== undefined && hdDir(e.workdir) !== projectDir && tr.features["step.workdir"]
    ) {
      s.extra.workdir = hdDir(e.workdir);
      s.run = cmd;
    } else s.run = e.workdir !== undefined ? inDir(e.workdir, cmd) : cmd;
  };
  // with [build] shell (the last SHELL), a RUN under another shell (or before any SHELL, under
  // sh -c; exec-form RUNs are already quoted words) keeps its own by folding it into the command
  const finalShell = st.shell && tr.features["build.shell"] ? st.shell.argv : null;
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const foldShell = (e: { cmd: string; shellFold: string[] | null; exec?: boolean }): string => {
    if (finalShell === null) return e.shellFold ? shellQuote([...e.shellFold, e.cmd]) : e.cmd;
    const own = e.shellFold ?? (e.exec ? finalShell : ["/bin/sh", "-c"]);
    return same(own, finalShell) ? e.cmd : shellQuote([...own, e.cmd]);
  };
  let reportedUser = false;
  for (const e of events) {
    if (e.kind === "run") {
      const key = classifyRun(e.cmd, (g) => exists(inCtx(g)));
      const s = step("", null, []);
      stepAt(s, e, foldShell(e));
      const loc = `${file}:${e.at} ${e.text}`;
      if (whole !== null) {
        if (key.rules.length) {
          s.inputs = key.inputs.map(inCtx);
          s.outputs = key.outputs.map(inCtx);
          s.comment.push(
            `${loc}: keyed by the ${
              key.rules.join(" + ")
            } rule (not the whole tree of COPY . . at line ${whole})`,
          );
        } else {
          s.comment.push(`${loc}: chained after COPY . . at line ${whole} (${key.reason})`);
        }
      } else {
        const ins = [...copied, ...e.binds.map(inCtx)];
        s.inputs = [...new Set(ins)];
        s.outputs = key.outputs.map(inCtx);
        s.comment.push(
          copiedLines.length
            ? `${loc}: keyed by what was copied before it (line${
              copiedLines.length > 1 ? "s" : ""
            } ${copiedLines.join(", ")})`
            : `${loc}: nothing of the project was copied before it: no inputs`,
        );
        if (key.rules.length) s.comment[0] += ` — ${key.rules.join(" + ")} rule`;
      }
      if (e.binds.length && whole !== null && s.inputs) {
        s.inputs = [...new Set([...s.inputs, ...e.binds.map(inCtx)])];
      }
      for (const [k, v] of Object.entries(e.args)) s.env[k] = v;
      for (const [k, v] of Object.entries(e.env)) if (st.env[k] !== v) s.env[k] = v;
      s.network = e.network;
      const asRoot = !e.user || e.user === "root" || e.user === "0";
      if (asRoot && st.user && tr.features["environment.user"] && tr.features["step.user"]) {
        // [environment] user (the last USER) is every step's default: a RUN before it says root
        const last = st.user.name;
        if (last !== "root" && last !== "0" && !last.startsWith("0:")) s.extra.user = "root";
      }
      if (!asRoot && e.user) {
        if (tr.features["step.user"]) s.extra.user = e.user;
        else if (!reportedUser) {
          reportedUser = true;
          tr.planned(
            "step.user",
            s.extra,
            "user",
            e.user,
            at(st.user?.line ?? e.at),
            `USER ${e.user} for RUN`,
          );
        }
      }
      for (const c of e.cache) if (!cache.includes(c)) cache.push(c);
      steps.push(s);
      continue;
    }
    // COPY / ADD
    if (e.from) {
      const from = stageByRef(e.from);
      const what = `COPY --from=${e.from} ${short(e.sources.join(" "), 30)} ${e.dest}`;
      if (tr.features["step.copy"] && tr.features["step.image"] && from) {
        // the stage's steps, once (by its name: what COPY --from says, stable when steps move)
        const name = from.name ?? String(from.index);
        if (!emitted.has(name)) {
          emitted.add(name);
          const sub = translateDockerfile(tr, {
            ...o,
            target: name,
            serviceName: undefined,
            emittedStages: emitted,
          });
          if (!sub.base) {
            tr.report(
              at(e.at),
              what,
              `not translated: stage ${name} starts FROM scratch (a stage's steps need an image)`,
            );
            continue;
          }
          if (sub.projectDir !== projectDir && sub.steps.some((s) => s.extra.copy === undefined)) {
            tr.report(
              at(from.from.line),
              `stage ${name}: its build context at ${sub.projectDir}`,
              `not translated: hd runs its steps with the project at ${projectDir} (the environment's workdir, as for every step); a path below ${sub.projectDir} in its commands may need editing`,
            );
          }
          for (const c of sub.cache) if (!cache.includes(c)) cache.push(c);
          sub.steps.forEach((s, i) => {
            if (s.extra.stage === undefined) {
              // the stage's ENV (what it had at the end) is each step's own
              s.env = { ...sub.env, ...s.env };
              s.extra = s.extra.copy !== undefined
                ? { stage: name, image: sub.base!, ...s.extra }
                : { ...s.extra, stage: name, image: sub.base! };
            }
            if (i === 0) s.comment.unshift(`stage ${name} (COPY --from at ${file}:${e.at})`);
            steps.push(s);
          });
        }
        const s = step("", [], [
          `${file}:${e.at} ${e.text}: copied from stage ${name}`,
        ]);
        s.extra.copy = e.sources.map((src) => ({
          from: name,
          src: normAbs("/", src),
          dst: e.dest.replace(/\/\/+$/, "/"),
        }));
        steps.push(s);
      } else if (from) {
        tr.planned(
          "step.copy",
          {},
          "copy",
          [],
          at(e.at),
          `${what} (stage ${
            from.name ?? from.index
          }, ${file}:${from.from.line}; its image via build.steps[].image)`,
        );
      } else {
        tr.report(
          at(e.at),
          what,
          `not translated: a copy from image ${e.from}; write \`FROM ${e.from} AS NAME\` and COPY --from=NAME`,
        );
      }
      continue;
    }
    if (e.heredocs.length) {
      // COPY <<EOF /file: a step writing the file
      const parts = e.heredocs.map((h) => {
        const dst = e.dest.endsWith("/") ? `${e.dest}${h.name}` : e.dest;
        const dir = dst.replace(/\/[^/]*$/, "") || "/";
        return `mkdir -p ${shellQuoteWord(dir)} && cat > ${
          shellQuoteWord(dst)
        } <<'${h.name}'\n${h.body}${h.name}`;
      });
      steps.push(step(parts.join("\n"), [], [`${file}:${e.at} ${e.text}: writes the heredoc`]));
      continue;
    }
    for (const [k, v] of Object.entries(e.flags)) {
      if (k === "chown" || k === "chmod") {
        tr.report(
          at(e.at),
          `${e.add ? "ADD" : "COPY"} --${k}=${v}`,
          "not translated: the project is mounted with its own owners and modes (no hd.toml key planned)",
        );
      } else if (k === "exclude" || k === "parents" || k === "keep-git-dir" || k === "checksum") {
        tr.report(
          at(e.at),
          `${e.add ? "ADD" : "COPY"} --${k}`,
          "not translated: no hd.toml key planned",
        );
      }
    }
    const cps: string[] = [];
    const intoDir: string[] = [];
    const cpInputs: string[] = [];
    for (const src of e.sources) {
      if (e.add && /^(https?|git|ssh):\/\/|^git@|\.git(#.*)?$/.test(src)) {
        tr.report(
          at(e.at),
          `ADD ${short(src, 50)}`,
          "not translated: downloads are not build inputs; fetch it in a RUN step (no hd.toml key planned)",
        );
        continue;
      }
      const rel = normRel(src);
      const pIn = inCtx(rel);
      if (rel === "") {
        whole = e.at;
        if (e.dest.replace(/\/$/, "") !== projectDir) {
          tr.report(
            at(e.at),
            e.text,
            `not translated: the project is mounted at ${projectDir}, not copied to ${e.dest}`,
          );
        }
        continue;
      }
      const dstDir = e.dest.endsWith("/") || e.sources.length > 1 || isGlob(src);
      if (e.add && TAR.test(rel)) {
        const d = e.dest.replace(/\/$/, "") || "/";
        const s = step(
          `mkdir -p ${shellQuoteWord(d)} && tar -xf ${shellQuoteWord(pIn)} -C ${shellQuoteWord(d)}`,
          [pIn],
          [`${file}:${e.at} ${e.text}: ADD extracts the archive`],
        );
        steps.push(s);
        if (whole === null) {
          copied.push(pIn);
          copiedLines.push(e.at);
        }
        continue;
      }
      const dir = isDir(pIn);
      const target = dir
        ? e.dest.replace(/\/$/, "")
        : dstDir
        ? `${e.dest.replace(/\/$/, "")}/${rel.split("/").pop()}`
        : e.dest.replace(/\/$/, "");
      const identity = isGlob(rel)
        ? e.dest.replace(/\/$/, "") ===
          normAbs(projectDir, rel.includes("/") ? rel.replace(/\/[^/]*$/, "") : ".")
        : target === normAbs(projectDir, rel);
      if (!identity) {
        const q = isGlob(pIn)
          ? pIn.replace(/[^A-Za-z0-9_@%+=:,./*?[\]!-]/g, "\\$&")
          : shellQuoteWord(pIn);
        const d = e.dest.replace(/\/$/, "") || "/";
        const cmd = dir
          ? `mkdir -p ${shellQuoteWord(d)} && cp -a ${q}/. ${shellQuoteWord(d)}/`
          : dstDir
          ? `mkdir -p ${shellQuoteWord(d)} && cp -a ${q} ${shellQuoteWord(d)}/`
          : `mkdir -p ${shellQuoteWord(d.replace(/\/[^/]*$/, "") || "/")} && cp -a ${q} ${
            shellQuoteWord(d)
          }`;
        if (!dir && dstDir) intoDir.push(q);
        else cps.push(cmd);
        cpInputs.push(pIn);
      }
      if (whole === null) {
        if (!copied.includes(pIn)) copied.push(pIn);
        if (!copiedLines.includes(e.at)) copiedLines.push(e.at);
      }
    }
    if (intoDir.length) {
      const d = shellQuoteWord(e.dest.replace(/\/$/, "") || "/");
      cps.unshift(`mkdir -p ${d} && cp -a ${intoDir.join(" ")} ${d}/`);
    }
    if (cps.length) {
      steps.push(step(cps.join(" && "), cpInputs, [
        `${file}:${e.at} ${e.text}: copies outside the project's place (${projectDir})`,
      ]));
    }
  }

  // ---- the service: CMD and ENTRYPOINT combined as Docker does ----
  let service: ServiceOut | null = null;
  const shellOf = st.shell?.argv ?? ["/bin/sh", "-c"];
  const asArgv = (c: Cmd): string[] => "argv" in c ? c.argv : [...shellOf, c.shell];
  let argv: string[] | null = null;
  if (st.entrypoint) {
    argv = asArgv(st.entrypoint.v);
    if ("argv" in st.entrypoint.v && st.cmd) argv = [...argv, ...asArgv(st.cmd.v)];
  } else if (st.cmd) argv = asArgv(st.cmd.v);
  const svcLines = [st.entrypoint?.line, st.cmd?.line].filter((x): x is number => !!x).sort((
    a,
    b,
  ) => a - b);
  if (argv && argv.length) {
    let command = argv.length === 3 && /^(\/bin\/)?sh$/.test(argv[0]) && argv[1] === "-c"
      ? argv[2]
      : shellQuote(argv);
    const fin = hdDir(st.workdir);
    let wd: string | null = null;
    if (fin !== projectDir) {
      if (fin.startsWith(projectDir + "/")) wd = fin.slice(projectDir.length + 1);
      else command = `cd ${shellQuoteWord(fin)} && ${command}`;
    }
    service = newService(o.serviceName ?? "app", command);
    service.workdir = wd;
    if (whole !== null) service.watch = ["**"];
    else service.watch = [...copied];
    const ports: number[] = [];
    for (const x of st.expose) {
      const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(x.port);
      if (
        m && (m[2] ?? "tcp").toLowerCase() === "tcp" && Number(m[1]) >= 1 && Number(m[1]) <= 65535
      ) {
        if (service.port === null) {
          service.port = Number(m[1]);
          svcLines.push(x.line);
        } else ports.push(Number(m[1]));
      } else {
        tr.report(
          at(x.line),
          `EXPOSE ${x.port}`,
          "not translated: only a TCP port can be a service's readiness port",
        );
      }
      if (ports.length) {
        tr.planned(
          "service.expose",
          service.extra,
          "expose",
          ports,
          at(x.line),
          `EXPOSE ${ports.join(" ")}`,
        );
      }
    }
    const svcFrom = [...new Set(svcLines)].sort((a, b) => a - b);
    service.comment.push(
      `from ${file}:${svcFrom.join(", ")} (${st.entrypoint ? "ENTRYPOINT" : ""}${
        st.entrypoint && st.cmd ? " + " : ""
      }${st.cmd ? "CMD" : ""}${service.port ? ", EXPOSE" : ""})`,
    );
    if (whole !== null) {
      service.comment.push(`watch: COPY . . (line ${whole}) put the whole tree in the image`);
    }
    if (st.healthcheck?.v) {
      tr.planned(
        "service.healthcheck",
        service.extra,
        "healthcheck",
        st.healthcheck.v,
        at(st.healthcheck.line),
        "HEALTHCHECK",
      );
    }
    if (st.stopsignal) {
      const sig = stopSignalName(st.stopsignal.v);
      if (sig === null) {
        tr.report(
          at(st.stopsignal.line),
          `STOPSIGNAL ${st.stopsignal.v}`,
          `not translated: hd stops a service with ${STOP_SIGNALS.join(", ")}`,
        );
      } else {
        tr.planned(
          "service.stop_signal",
          service.extra,
          "stop_signal",
          sig,
          at(st.stopsignal.line),
          `STOPSIGNAL ${st.stopsignal.v}`,
        );
      }
    }
    if (st.user) {
      tr.planned(
        "service.user",
        service.extra,
        "user",
        st.user.name,
        at(st.user.line),
        `USER ${st.user.name}`,
      );
    }
    const labels: Record<string, string> = {};
    for (const l of st.labels) Object.assign(labels, l.v);
    for (const l of st.labels) {
      tr.planned("service.labels", service.extra, "labels", labels, at(l.line), "LABEL");
    }
    const vols: string[] = [];
    for (const v of st.volumes) {
      for (const p of v.v) {
        vols.push(`${normRel(p).replace(/[^a-z0-9_.-]+/gi, "-").toLowerCase() || "root"}:${p}`);
      }
      tr.planned(
        "service.volumes",
        service.extra,
        "volumes",
        vols,
        at(v.line),
        `VOLUME ${v.v.join(" ")}`,
      );
    }
  } else if (!o.emittedStages) {
    // (a stage copied from is built for its files, not run: no service is expected of it)
    const line = chain[chain.length - 1].from.line;
    tr.report(
      at(line),
      "no CMD or ENTRYPOINT",
      "no service written: the base image's own command is not known to hd ingest; add a [services.NAME] command",
    );
    for (const x of st.expose) {
      tr.report(at(x.line), `EXPOSE ${x.port}`, "not translated: no service to attach the port to");
    }
    for (
      const [what, l] of [["HEALTHCHECK", st.healthcheck?.line], [
        "STOPSIGNAL",
        st.stopsignal?.line,
      ]] as const
    ) {
      if (l) tr.report(at(l), what, "not translated: no service to attach it to");
    }
    for (const l of st.labels) {
      tr.report(at(l.line), "LABEL", "not translated: no service to attach it to");
    }
    for (const v of st.volumes) {
      tr.report(
        at(v.line),
        `VOLUME ${v.v.join(" ")}`,
        "not translated: no service to attach it to",
      );
    }
    if (st.user) {
      tr.planned(
        "environment.user",
        {},
        "user",
        st.user.name,
        at(st.user.line),
        `USER ${st.user.name}`,
      );
    }
  }
  const envExtra: Record<string, TomlValue> = {};
  if (st.user && tr.features["environment.user"]) envExtra.user = st.user.name;
  const buildExtra: Record<string, TomlValue> = {};
  const buildComment: string[] = [];
  if (st.shell && tr.features["build.shell"]) buildExtra.shell = st.shell.argv;
  else if (st.shell) {
    buildComment.push(`SHELL at ${file}:${st.shell.line} is folded into each RUN after it`);
  }

  const fromLines = [root.from.line, ...st.workdirLines, ...st.envLines];
  if (wholeAt) fromLines.push(wholeAt);
  const stageNote = stages.length < 2
    ? ""
    : ` (stage ${target.name ?? target.index}${
      chain.length > 1
        ? `, built on ${chain.slice(0, -1).map((s) => s.name ?? s.index).join(" <- ")}`
        : ""
    })`;
  const envComment = [`from ${file}:${fromLines.sort((a, b) => a - b).join(", ")}${stageNote}`];
  if (base && Object.values(st.env).some((v) => v.includes(DEFAULT_PATH))) {
    envComment.push("$PATH of the base image taken as the default " + DEFAULT_PATH);
  }
  const unused = stages.filter((s) => !chain.includes(s));
  if (unused.length) {
    envComment.push(
      `stages not built: ${
        unused.map((s) => `${s.name ?? s.index} (line ${s.from.line})`).join(", ")
      }`,
    );
  }
  return {
    base,
    projectDir,
    env: { ...st.env },
    steps,
    cache,
    service,
    envComment,
    stage: target.name ?? String(target.index),
    envExtra,
    buildExtra,
    buildComment,
    entrypoint: st.entrypoint ? asArgv(st.entrypoint.v) : null,
    cmd: st.cmd ? asArgv(st.cmd.v) : null,
  };
}

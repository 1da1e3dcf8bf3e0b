/**
 * `hd dag show [HASH|REF] [--env] [--depth N]`: prints a DAG as an indented tree with short
 * hashes — an Env's files root, base, packages and steps; a step's inputs; a directory's entries.
 * Without a HASH (or with --env), compiles the project's hd.toml and shows its Env, recording
 * refs `envs/<name>` and `trees/<name>`.
 * @module
 */
import { pulledImageIds } from "../../runtime/step_cache.ts";
import { HdError } from "../../sys/errors.ts";
import type { Store } from "../../cas/store.ts";
import { getNode } from "../../dag/dag.ts";
import { type FileNode, isNodeEncoding, nodeId } from "../../dag/node.ts";
import { S_IFLNK, S_IFMT } from "../../sys/mode.ts";
import { compileEnv } from "../../env/compile.ts";
import { loadProjectSpec } from "../../config/parse.ts";
import { resolveName } from "../cas/resolve.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../output.ts";

/** One line of the shown tree, with its children. */
export interface ShowNode {
  /** What it is: env, dir, file, package, step, input, base, blob, more. */
  kind: string;
  label: string;
  id?: string;
  detail?: string;
  children?: ShowNode[];
  /** Children left out because of --depth. */
  hidden?: number;
}

function fileLeaf(name: string, f: FileNode): ShowNode {
  const link = (f.mode & S_IFMT) === S_IFLNK;
  return {
    kind: "file",
    label: name,
    id: nodeId(f),
    detail: link ? `-> ${f.target}` : formatBytes(f.size),
  };
}

/** Builds the tree shown for `id` with `depth` levels of children below it (0 = unlimited). */
export function showTree(store: Store, id: string, label: string, depth: number): ShowNode {
  return show(store, id, label, depth === 0 ? Infinity : depth);
}

function show(store: Store, id: string, label: string, depth: number): ShowNode {
  const bytes = store.getObject(id);
  if (!isNodeEncoding(bytes)) {
    const text = new TextDecoder().decode(bytes.subarray(0, 200));
    const base = /^hd-base-image 1\n(.*)\n$/.exec(text);
    return base
      ? { kind: "base", label: label || "base", id, detail: base[1] }
      : { kind: "blob", label: label || "blob", id, detail: formatBytes(bytes.length) };
  }
  const n = getNode(store, id);
  const deeper = depth <= 0 ? null : depth - 1;
  const kids = (make: () => ShowNode[], count: number): Partial<ShowNode> =>
    deeper === null ? (count ? { hidden: count } : {}) : { children: make() };
  switch (n.type) {
    case "env": {
      let step = 0;
      return {
        kind: "env",
        label: label || `env ${n.name}`,
        id,
        ...kids(() =>
          n.children.map((c) => {
            if (c.role === "step") return show(store, c.id, `step ${++step}`, deeper!);
            if (c.role === "files") return show(store, c.id, "files", deeper!);
            return show(store, c.id, c.role === "package" ? "" : c.role, deeper!);
          }), n.children.length),
      };
    }
    case "dir":
      return {
        kind: "dir",
        label: label || "dir",
        id,
        ...kids(
          () =>
            n.entries.map((e) =>
              e.dir !== undefined
                ? show(store, e.dir, `${e.name}/`, deeper!)
                : fileLeaf(e.name, e.file)
            ),
          n.entries.length,
        ),
      };
    case "file":
      return fileLeaf(label || "file", n);
    case "package":
      return {
        kind: "package",
        label: `${label ? label + " " : ""}${n.provider} ${n.name}@${n.version}`,
        id,
        detail: n.artifact.length > 40 ? n.artifact.slice(0, 40) + "…" : n.artifact,
      };
    case "buildstep":
      return {
        kind: "step",
        label: label || "step",
        id,
        detail: n.command,
        ...kids(
          () =>
            n.inputs.map((i) =>
              i.label === "previous"
                ? { kind: "input", label: "previous step", id: i.id }
                : i.label === "files"
                ? { kind: "input", label: "files (all tracked)", id: i.id }
                : show(store, i.id, i.label === "base" ? "base" : `input ${i.label}`, deeper!)
            ),
          n.inputs.length,
        ),
      };
  }
}

/** Renders a shown tree as indented lines with short hashes. */
export function renderTree(root: ShowNode): string {
  const lines: string[] = [];
  const line = (n: ShowNode) =>
    [
      n.label,
      n.id ? n.id.slice(0, 12) : "",
      n.detail ?? "",
      n.hidden ? `(${n.hidden} ${n.kind === "dir" ? "entries" : "children"} not shown)` : "",
    ]
      .filter((x) => x !== "").join("  ");
  const walk = (n: ShowNode, prefix: string) => {
    const kids = n.children ?? [];
    kids.forEach((c, i) => {
      const last = i === kids.length - 1;
      lines.push(`${prefix}${last ? "└─ " : "├─ "}${line(c)}`);
      walk(c, prefix + (last ? "   " : "│  "));
    });
  };
  lines.push(line(root));
  walk(root, "");
  return lines.join("\n");
}

/** `hd dag show`. */
export const dagShow: Command = {
  name: "dag show",
  summary: "print a DAG (default: the project's Env) as a tree",
  usage: "hd dag show [HASH|REF] [--env] [--depth N] [--file PATH]",
  options: {
    env: { type: "boolean", help: "show the project's Env (compiles hd.toml; the default)" },
    depth: { type: "string", help: "levels below the root to show (default 3, 0 = all)" },
    file: {
      type: "string",
      help: "path of hd.toml (default: found from the current directory up)",
    },
  },
  async run(ctx) {
    const depthText = (ctx.values.depth as string | undefined) ?? "3";
    if (!/^\d+$/.test(depthText)) {
      throw new HdError(
        `Cannot show the DAG: --depth must be a whole number, not "${depthText}"`,
        "e.g. --depth 2 (0 shows everything)",
        2,
      );
    }
    if (ctx.positionals.length > 1 || (ctx.positionals.length === 1 && ctx.values.env)) {
      throw new HdError(
        "Cannot show the DAG: give one HASH or --env",
        "usage: hd dag show [HASH|REF] [--env] [--depth N]",
        2,
      );
    }
    const depth = Number(depthText);
    let root: ShowNode;
    if (ctx.positionals.length === 1) {
      const store = ctx.store(false);
      const r = resolveName(store, ctx.positionals[0]);
      root = r.file ? fileLeaf(r.path, r.file) : showTree(store, r.id, "", depth);
    } else {
      const spec = loadProjectSpec(ctx.values.file as string | undefined);
      const store = ctx.store();
      // hashed as `hd up` hashes it: the pulled base image's manifest digest, when it is pulled
      const env = await compileEnv(store, spec, pulledImageIds(store, spec));
      root = showTree(store, env.envId, "", depth);
    }
    ctx.out.result(root, () => renderTree(root));
    return 0;
  },
};

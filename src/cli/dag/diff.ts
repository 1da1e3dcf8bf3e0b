/**
 * `hd dag diff A B`: the paths added, removed and changed between two trees. A and B are hashes,
 * unique prefixes or refs naming Dir or Env nodes (an Env compares its files root; two Envs also
 * compare their packages and build steps).
 * @module
 */
import { HdError } from "../../sys/errors.ts";
import type { Store } from "../../cas/store.ts";
import { getNode } from "../../dag/dag.ts";
import { diffTrees } from "../../dag/diff.ts";
import type { EnvNode } from "../../dag/node.ts";
import { resolveId } from "../cas/resolve.ts";
import type { Command } from "../command.ts";

function treeOf(store: Store, text: string): { id: string; root: string; env: EnvNode | null } {
  const id = resolveId(store, text);
  const n = getNode(store, id);
  if (n.type === "dir") return { id, root: id, env: null };
  if (n.type === "env") {
    const files = n.children.find((c) => c.role === "files");
    if (!files) throw new HdError(`Cannot diff ${text}: the Env has no files root`, "");
    return { id, root: files.id, env: n };
  }
  throw new HdError(
    `Cannot diff ${text}: it is a ${n.type} node, not a directory or an Env`,
    "pass the hash of a tree (`hd status` shows it) or a ref like envs/NAME or trees/NAME",
  );
}

function pkgLabel(store: Store, id: string): string {
  const n = getNode(store, id);
  return n.type === "package" ? `${n.provider} ${n.name}@${n.version}` : id;
}

/** `hd dag diff`. */
export const dagDiff: Command = {
  name: "dag diff",
  summary: "list paths added, removed and changed between two trees",
  usage: "hd dag diff A B   (hashes, prefixes, or refs such as envs/NAME, trees/NAME)",
  options: {},
  run(ctx) {
    if (ctx.positionals.length !== 2) {
      throw new HdError("Cannot diff: expected two trees A and B", "usage: hd dag diff A B", 2);
    }
    const store = ctx.store(false);
    const a = treeOf(store, ctx.positionals[0]);
    const b = treeOf(store, ctx.positionals[1]);
    const d = diffTrees(store, a.root, b.root);
    let packages: { added: string[]; removed: string[] } | undefined;
    let steps: { index: number; from: string | null; to: string | null }[] | undefined;
    if (a.env && b.env) {
      const pa = a.env.children.filter((c) => c.role === "package").map((c) => c.id);
      const pb = b.env.children.filter((c) => c.role === "package").map((c) => c.id);
      const sa = new Set(pa);
      const sb = new Set(pb);
      packages = {
        added: pb.filter((x) => !sa.has(x)).map((x) => pkgLabel(store, x)),
        removed: pa.filter((x) => !sb.has(x)).map((x) => pkgLabel(store, x)),
      };
      const ta = a.env.children.filter((c) => c.role === "step").map((c) => c.id);
      const tb = b.env.children.filter((c) => c.role === "step").map((c) => c.id);
      steps = [];
      for (let i = 0; i < Math.max(ta.length, tb.length); i++) {
        if (ta[i] !== tb[i]) steps.push({ index: i, from: ta[i] ?? null, to: tb[i] ?? null });
      }
    }
    const result = { a: a.id, b: b.id, ...d, ...(packages ? { packages, steps } : {}) };
    ctx.out.result(result, () => {
      const lines = [
        ...d.added.map((p) => `+ ${p}`),
        ...d.removed.map((p) => `- ${p}`),
        ...d.changed.map((p) => `~ ${p}`),
      ].sort((x, y) => (x.slice(2) < y.slice(2) ? -1 : x.slice(2) > y.slice(2) ? 1 : 0));
      for (const p of packages?.added ?? []) lines.push(`+ package ${p}`);
      for (const p of packages?.removed ?? []) lines.push(`- package ${p}`);
      for (const s of steps ?? []) {
        lines.push(
          `~ step ${s.index + 1} ${s.from ? s.from.slice(0, 12) : "(none)"} -> ${
            s.to ? s.to.slice(0, 12) : "(none)"
          }`,
        );
      }
      if (lines.length === 0) lines.push("no differences");
      else {
        lines.push(
          `${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed`,
        );
      }
      return lines.join("\n");
    });
    return 0;
  },
};

/**
 * `.dockerignore` as `[files].exclude`: the Dockerfile's own `<Dockerfile>.dockerignore` first,
 * else the context's `.dockerignore`; `!` exceptions cannot be expressed and are reported.
 *
 * @example
 * ```ts
 * import { dockerignoreExcludes } from "./dockerignore.ts";
 * import { currentFeatures, Translation } from "./model.ts";
 * dockerignoreExcludes(new Translation(currentFeatures()), ".dockerignore", "node_modules\n", "");
 * ```
 * @module
 */
import type { HdDoc, Translation } from "./model.ts";

/** `.dockerignore` patterns as `[files].exclude` globs; `!` exceptions are reported. */
export function dockerignoreExcludes(
  tr: Translation,
  file: string,
  text: string,
  prefix: string,
): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith("#")) return;
    if (l.startsWith("!")) {
      tr.report(
        { file, line: i + 1 },
        l,
        "not translated: [files].exclude has no exceptions; add the path to [files].include instead",
      );
      return;
    }
    let p = l.replace(/^\/+/, "").replace(/^\.\//, "").replace(/\/+$/, "");
    if (!p || p === "." || p.includes("..")) {
      tr.report(
        { file, line: i + 1 },
        l,
        "not translated: it names the whole context or leaves it",
      );
      return;
    }
    if (prefix) p = `${prefix}/${p}`;
    if (!out.includes(p)) out.push(p);
  });
  return out;
}

/** Reads the build context's ignore file (if any) into `doc.files.exclude`. */
export function applyDockerignore(
  tr: Translation,
  doc: HdDoc,
  read: (rel: string) => string | null,
  dockerfile: string,
  ctx: string,
): void {
  for (const ig of [`${dockerfile}.dockerignore`, `${ctx ? ctx + "/" : ""}.dockerignore`]) {
    const t = read(ig);
    if (t === null) continue;
    doc.files.exclude = dockerignoreExcludes(tr, ig, t, ctx);
    doc.files.comment.push(`from ${ig}`);
    return;
  }
}

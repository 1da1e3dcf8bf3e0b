/**
 * Fails when a module imports one above it in the layer order (scripts/layers.ts), or when
 * docs/architecture.md lists the layers in another order. Static imports, re-exports and
 * dynamic `import("…")` of relative paths are all checked. Run: `deno run -A scripts/check_layers.ts`.
 *
 * @example
 * ```ts
 * import { importsOf } from "./check_layers.ts";
 * console.log(importsOf('import { a } from "../cas/store.ts";')); // ["../cas/store.ts"]
 * ```
 * @module
 */
import { layerOf, LAYERS, mayImport } from "./layers.ts";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The relative specifiers a source text imports (static, re-export, dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm;
  for (const m of text.matchAll(re)) out.push(m[1]);
  return out;
}

function* walk(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile && /\.tsx?$/.test(e.name)) yield p;
  }
}

function normalize(parts: string[]): string {
  const out: string[] = [];
  for (const p of parts) {
    if (p === "..") out.pop();
    else if (p !== "." && p !== "") out.push(p);
  }
  return out.join("/");
}

/** Every violation in the repository: `file: imports X (layer a) from layer b`. */
export function violations(root = repo): string[] {
  const bad: string[] = [];
  for (const base of ["src", "ffi"]) {
    for (const abs of walk(`${root}/${base}`)) {
      const rel = abs.slice(root.length + 1);
      const dir = rel.split("/").slice(0, -1);
      for (const spec of importsOf(Deno.readTextFileSync(abs))) {
        const target = normalize([...dir, ...spec.split("/")]);
        if (!mayImport(rel, target)) {
          const to = layerOf(target);
          bad.push(
            `${rel}: imports ${target} (${to < 0 ? "outside src/" : LAYERS[to].dir}), ` +
              `above its layer ${LAYERS[layerOf(rel)].dir}`,
          );
        }
      }
    }
  }
  // docs/architecture.md must list the layers in the same order
  try {
    const doc = Deno.readTextFileSync(`${root}/docs/architecture.md`);
    const listed = [...doc.matchAll(/^\| *\d+ *\| *`([^`]+)`/gm)].map((m) =>
      m[1].replace(/\/$/, "")
    );
    const want = LAYERS.map((l) => l.dir);
    if (listed.join(",") !== want.join(",")) {
      bad.push(
        `docs/architecture.md: its layer table lists ${listed.join(", ") || "nothing"}; ` +
          `scripts/layers.ts says ${want.join(", ")}`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    bad.push("docs/architecture.md: missing (it holds the layer table)");
  }
  return bad;
}

if (import.meta.main) {
  const bad = violations();
  for (const b of bad) console.error(`layer order: ${b}`);
  if (bad.length > 0) {
    console.error(
      `Cannot pass the layer check: ${bad.length} problem(s) above\n` +
        "hint: move the shared code down a layer, or change the order in scripts/layers.ts and docs/architecture.md",
    );
    Deno.exit(1);
  }
  console.log(`layer order: ok (${LAYERS.length} layers)`);
}

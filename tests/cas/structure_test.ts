/**
 * The store's modules stay a layered set: no import circle inside src/cas (type-only imports
 * count: pack.ts once imported a type from store.ts while store.ts imported pack.ts), and the
 * encoding of object keys is spelled in key.ts only.
 */
import { assert, assertEquals } from "../_assert.ts";
import { importsOf } from "../../scripts/check_layers.ts";
import { REPO } from "../_helpers.ts";

/** Source text without comments (doc examples import their own module). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** The import graph of the .ts files of one directory (edges inside it only). */
function graphOf(dir: string): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const deps = importsOf(code(Deno.readTextFileSync(`${dir}/${e.name}`)))
      .filter((s) => s.startsWith("./") && !s.slice(2).includes("/"))
      .map((s) => s.slice(2));
    g.set(e.name, deps);
  }
  return g;
}

/** Every circle in `g`, each as the path that closes it. */
function circles(g: Map<string, string[]>): string[][] {
  const out: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (u: string, path: string[]) => {
    state.set(u, "open");
    for (const v of g.get(u) ?? []) {
      if (state.get(v) === "open") out.push([...path.slice(path.indexOf(v)), u, v]);
      else if (!state.has(v)) visit(v, [...path, u]);
    }
    state.set(u, "done");
  };
  for (const u of [...g.keys()].sort()) if (!state.has(u)) visit(u, []);
  return out;
}

Deno.test("circles() finds a circle, including a type-only one, and none in a chain", () => {
  assertEquals(circles(new Map([["a", ["b"]], ["b", ["c"]], ["c", []]])), []);
  assertEquals(circles(new Map([["a", ["b"]], ["b", ["a"]]])), [["a", "b", "a"]]);
  const text = '/**\n * import { S } from "./s.ts";\n */\nimport type { K } from "./store.ts";\n' +
    '// import { y } from "./y.ts";\nimport { x } from "./key.ts";';
  assertEquals(importsOf(code(text)), ["./store.ts", "./key.ts"]);
});

Deno.test("src/cas has no import circle", () => {
  const g = graphOf(`${REPO}/src/cas`);
  assert(g.has("store.ts") && g.get("store.ts")!.includes("pack.ts"), "graph read");
  assertEquals(circles(g).map((c) => c.join(" -> ")), []);
});

Deno.test('only src/cas/key.ts spells the object key encoding ("m" + id) anywhere in src/', () => {
  const bad: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) walk(p);
      else if (e.name.endsWith(".ts") && p !== `${REPO}/src/cas/key.ts`) {
        code(Deno.readTextFileSync(p)).split("\n").forEach((line, i) => {
          if (/"m"\s*\+|\.length\s*===\s*65\b/.test(line)) {
            bad.push(`${p.slice(REPO.length + 1)}:${i + 1}: ${line.trim()}`);
          }
        });
      }
    }
  };
  walk(`${REPO}/src`);
  assertEquals(bad, []);
});

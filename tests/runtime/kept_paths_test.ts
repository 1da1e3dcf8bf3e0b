/**
 * keptBelow as a table: which paths of a step layer's working directory are kept over the
 * project (bind mounts), so that an output in a subdirectory leaves the rest of it visible.
 */
import { assertEquals } from "../_assert.ts";
import { MemDir } from "../../src/dag/tree.ts";
import { keptBelow } from "../../src/runtime/sandbox_steps.ts";

/** A MemDir from a nested object: an object is a directory, null a file. */
function tree(spec: Record<string, unknown>): MemDir {
  const d = new MemDir();
  for (const [k, v] of Object.entries(spec)) {
    d.entries.set(
      k,
      v === null ? { type: "file", mode: 0o100644, size: 0, chunks: [] } : tree(v as never),
    );
  }
  return d;
}

Deno.test("keptBelow: what a layer keeps over the project", () => {
  const many = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`f${i}`, null]));
  const table: [string, Record<string, unknown>, string[], string[]][] = [
    ["a new top-level dir: whole", { node_modules: { a: null } }, [], ["node_modules"]],
    ["an output below a project dir", { web: { node_modules: { a: null } } }, ["web"], [
      "web/node_modules",
    ]],
    ["two levels", { a: { b: { out: {}, x: null } } }, ["a", "a/b"], ["a/b/out", "a/b/x"]],
    ["a dir the step replaced (opaque): whole", { web: { ".wh..wh..opq": null, n: {} } }, [
      "web",
    ], ["web"]],
    ["whiteouts are not kept", { web: { ".wh.old": null, n: {} } }, ["web"], ["web/n"]],
    ["a file at the top", { "c.txt": null }, [], ["c.txt"]],
    ["more than the limit below: the directory whole", { src: many }, ["src"], ["src"]],
  ];
  for (const [what, layer, projectDirs, want] of table) {
    assertEquals(keptBelow(tree(layer), (p) => projectDirs.includes(p)), want, what);
  }
});

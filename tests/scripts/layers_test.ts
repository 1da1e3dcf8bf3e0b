import { assertEquals } from "../_assert.ts";
import { layerOf, LAYERS, mayImport } from "../../scripts/layers.ts";
import { importsOf, violations } from "../../scripts/check_layers.ts";
import { tempDir } from "../_helpers.ts";

Deno.test("layers: who may import whom (table)", () => {
  const cases: [string, string, boolean][] = [
    ["src/dag/node.ts", "src/cas/store.ts", true],
    ["src/cas/store.ts", "src/dag/node.ts", false],
    ["src/cas/store.ts", "src/cas/pack.ts", true],
    ["src/cas/store.ts", "ffi/libzstd.ts", true],
    ["ffi/libc.ts", "src/cas/errors.ts", false],
    ["src/cli/up.ts", "src/services/loop.ts", true],
    ["src/services/loop.ts", "src/cli/up.ts", false],
    ["src/config/providers/npm.ts", "src/scan/ingest.ts", true],
    ["src/oci/image.ts", "src/mount/fuse.ts", false],
    ["src/cas/store.ts", "cli.ts", false],
    ["cli.ts", "src/cli/main.ts", true],
    ["tests/cas/store_test.ts", "src/services/loop.ts", true],
  ];
  for (const [from, to, want] of cases) assertEquals(mayImport(from, to), want, `${from} → ${to}`);
  assertEquals(
    layerOf("src/config/providers/apt.ts"),
    LAYERS.findIndex((l) => l.dir === "src/config"),
  );
});

Deno.test("layers: import forms found (static, re-export, dynamic)", () => {
  const text = [
    'import { a } from "../cas/store.ts";',
    'export { b } from "./b.ts";',
    'const m = await import("../services/loop.ts");',
    'import "./side.ts";',
    'import x from "npm:thing";',
  ].join("\n");
  assertEquals(importsOf(text), ["../cas/store.ts", "./b.ts", "../services/loop.ts", "./side.ts"]);
});

Deno.test("layers: an upward import in a copy of the tree is reported", () => {
  using dir = tempDir();
  const repo = new URL("../..", import.meta.url).pathname;
  Deno.mkdirSync(`${dir.path}/src/cas`, { recursive: true });
  Deno.mkdirSync(`${dir.path}/src/services`, { recursive: true });
  Deno.mkdirSync(`${dir.path}/ffi`, { recursive: true });
  Deno.mkdirSync(`${dir.path}/docs`, { recursive: true });
  Deno.copyFileSync(`${repo}docs/architecture.md`, `${dir.path}/docs/architecture.md`);
  Deno.writeTextFileSync(`${dir.path}/src/services/loop.ts`, "export const x = 1;\n");
  Deno.writeTextFileSync(`${dir.path}/src/cas/ok.ts`, 'import "../../ffi/libc.ts";\n');
  assertEquals(violations(dir.path), []);
  Deno.writeTextFileSync(
    `${dir.path}/src/cas/bad.ts`,
    'import { x } from "../services/loop.ts";\n',
  );
  const bad = violations(dir.path);
  assertEquals(bad.length, 1);
  assertEquals(bad[0].startsWith("src/cas/bad.ts: imports src/services/loop.ts"), true);
});

Deno.test("layers: the real tree follows the order", () => {
  assertEquals(violations(), []);
});

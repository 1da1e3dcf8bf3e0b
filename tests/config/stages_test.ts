/**
 * Build stages in hd.toml: step `stage`, `image` and `copy` (docs/hdtoml.md, [build]): what
 * parses, and each refusal located at its key with a hint.
 */
import { assert, assertEquals } from "../_assert.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { parseSpec } from "../../src/config/parse.ts";

const HEAD = '[environment]\nname = "a"\nbase = "debian:12"\n[build]\nsteps = [\n';
const BUILD = '  { run = "make", stage = "build", image = "golang:1.22" },\n';

Deno.test("a stage's steps and a copy from it parse; later steps of a stage take its image", () => {
  const spec = parseSpec(
    HEAD + BUILD + '  { run = "make test", stage = "build", inputs = ["go.mod"] },\n' +
      '  { copy = [{ from = "build", src = "/out/app", dst = "/usr/local/bin/" }] },\n' +
      '  "echo after",\n' +
      '  { stage = "t", image = "node:20", copy = [{ from = "build", src = "/o", dst = "/o" }] },\n' +
      '  { run = "ls /o", stage = "t" },\n]\n',
    "/p/hd.toml",
  );
  const [a, b, c, d] = spec.build.steps;
  assertEquals([a.stage, a.image, b.stage, b.image], [
    "build",
    "golang:1.22",
    "build",
    "golang:1.22",
  ]);
  assertEquals(b.inputs, ["go.mod"]);
  assertEquals(c.copy, [{ from: "build", src: "/out/app", dst: "/usr/local/bin/" }]);
  assertEquals([c.run, c.inputs, c.stage], [
    "# copy build:/out/app -> /usr/local/bin/",
    [],
    undefined,
  ]);
  assertEquals([d.stage, d.image, d.copy], [undefined, undefined, undefined]);
  // a stage may start with a copy (naming its image); its later steps take that image
  assertEquals(spec.build.steps.slice(4).map((s) => [s.stage, s.image]), [["t", "node:20"], [
    "t",
    "node:20",
  ]]);
});

Deno.test("stage, image and copy refusals name the line, the key and a fix", () => {
  const cases: [string, string, RegExp][] = [
    // [steps, text at the reported position, message]
    [
      '  { run = "x", image = "golang:1.22" },\n',
      'image = "golang',
      /step 1 names an image but no stage \(key build\.steps\[0\]\.image\)/,
    ],
    [
      '  { run = "x", stage = "build" },\n',
      '{ run = "x", stage',
      /step 1 starts stage "build" without an image/,
    ],
    [
      '  { run = "x", stage = "Build!", image = "i" },\n',
      '"Build!"',
      /stage name "Build!" is not valid/,
    ],
    [
      '  { run = "x", stage = "b", image = "has space" },\n',
      '"has space"',
      /image "has space" is not an image reference/,
    ],
    [
      BUILD + '  { run = "y", stage = "build", image = "alpine:3" },\n',
      '"alpine:3"',
      /step 2 of stage "build" names image "alpine:3", not "golang:1\.22"/,
    ],
    [
      '  { run = "x", stage = "b", image = "i", outputs = ["dist"] },\n',
      "outputs",
      /step 1 of stage "b" declares outputs/,
    ],
    [
      '  { copy = [{ from = "build", src = "/a", dst = "/b" }] },\n',
      '"build"',
      /no earlier step has stage "build"/,
    ],
    [
      '  { copy = [{ from = "build", src = "/a", dst = "/b" }] },\n' + BUILD,
      '"build"',
      /no earlier step has stage "build" \(key build\.steps\[0\]\.copy\[0\]\.from\)/,
    ],
    [
      BUILD + '  { stage = "build", copy = [{ from = "build", src = "/a", dst = "/b" }] },\n',
      '"build", src',
      /step 2 copies from its own stage "build"/,
    ],
    [
      BUILD + '  { copy = [{ from = "build", src = "out/app", dst = "/b" }] },\n',
      '"out/app"',
      /src "out\/app" is not an absolute, normalized path/,
    ],
    [
      BUILD + '  { copy = [{ from = "build", src = "/out/../etc", dst = "/b" }] },\n',
      '"/out/../etc"',
      /src "\/out\/\.\.\/etc" is not an absolute, normalized path/,
    ],
    [
      BUILD + '  { copy = [{ from = "build", src = "/a", dst = "/b//c" }] },\n',
      '"/b//c"',
      /dst "\/b\/\/c" is not an absolute, normalized path/,
    ],
    [
      BUILD + '  { copy = [{ from = "build", src = "/a" }] },\n',
      '{ from = "build", src = "/a" }',
      /copy item 1 needs dst/,
    ],
    [
      BUILD + '  { copy = [{ from = "build", src = "/a", dst = "/b", mode = 1 }] },\n',
      "mode",
      /unknown key "mode" in copy item 1 of step 2/,
    ],
    [
      BUILD + '  { run = "cp", copy = [{ from = "build", src = "/a", dst = "/b" }] },\n',
      'run = "cp"',
      /step 2 copies \(copy = …\): it cannot have run/,
    ],
    [BUILD + "  { copy = [] },\n", "[]", /copy must be a non-empty array of tables/],
    [
      BUILD + '  { image = "x", copy = [{ from = "build", src = "/a", dst = "/b" }] },\n',
      'image = "x"',
      /step 2 names an image but no stage/,
    ],
    [
      BUILD + '  { stage = "t", copy = [{ from = "build", src = "/a", dst = "/b" }] },\n',
      '{ stage = "t"',
      /step 2 starts stage "t" without an image/,
    ],
  ];
  for (const [steps, at, re] of cases) {
    const text = HEAD + steps + "]\n";
    const err = throwsHd(() => parseSpec(text, "/p/hd.toml"));
    assertMatch(err.message, re);
    const i = text.indexOf(at);
    assert(i >= 0, at);
    const line = text.slice(0, i).split("\n").length;
    assertMatch(err.message, new RegExp(`hd\\.toml:${line}:\\d+: `));
    assert(err.hint.length > 0);
  }
});

Deno.test("stages and copies need a base: on the host they are refused", () => {
  const text = '[environment]\nname = "a"\n[build]\nsteps = [\n' + BUILD + "]\n";
  const err = throwsHd(() => parseSpec(text, "/p/hd.toml"));
  assertMatch(err.message, /hd\.toml:5:\d+: step 1 uses stage, which needs the sandbox/);
});

/**
 * Writes the valid seed inputs of the fuzz corpus (`deno run -A tests/fuzz/make_seeds.ts`); the
 * files are committed, so this runs only when the seeds should change.
 * @module
 */
import { encodeNode, type Node } from "../../src/dag/node.ts";
import { makeTar } from "../oci/_fixtures.ts";
import { corpusDir } from "./_fuzz.ts";

const te = new TextEncoder();
const write = (target: string, name: string, bytes: Uint8Array) => {
  Deno.mkdirSync(corpusDir(target), { recursive: true });
  Deno.writeFileSync(corpusDir(target) + name, bytes);
};

write(
  "tar",
  "seed-files.tar",
  makeTar([
    { path: "etc/", type: "dir" },
    { path: "etc/hostname", data: "box\n", uid: 1000, gid: 1000, mtime: 1700000000 },
    { path: "bin/sh", type: "symlink", link: "busybox" },
    { path: "bin/ls", type: "hardlink", link: "bin/sh" },
    { path: "dev/null", type: "char", major: 1, minor: 3 },
  ]),
);
write(
  "tar",
  "seed-pax.tar",
  makeTar([
    { path: "a/".repeat(60) + "long-name.txt", data: "long" },
    { path: "cap", data: "x", xattrs: { "security.capability": new Uint8Array([1, 0, 0, 2]) } },
    { path: "lib", data: "y", pax: [["LIBARCHIVE.xattr.user.k", "dmFsdWU"]] },
    { path: "t", data: "z", pax: [["mtime", "1700000000.5"], ["uid", "5"], ["size", "1"]] },
  ]),
);
write(
  "tar",
  "seed-whiteout.tar",
  makeTar([
    { path: "d/.wh..wh..opq", data: "" },
    { path: ".wh.gone", data: "" },
    { path: "fifo", type: "fifo" },
  ]),
);

write(
  "toml",
  "seed-example.toml",
  Deno.readFileSync(new URL("../../examples/hello/hd.toml", import.meta.url)),
);
write(
  "toml",
  "seed-full.toml",
  te.encode(`[environment]
name = "app"
base = "debian:12"
workdir = "/app"
env = { A = "1" }

[dependencies]
apt = ["curl"]
node = "20"
npm = { file = "package-lock.json" }

[build]
steps = [
  "make",
  { run = "npm ci", inputs = ["package.json"], outputs = ["node_modules"], network = "none" },
]
cache = ["~/.npm"]

[services.db]
command = "db"
port = 5432

[services.web]
command = "node server.js"
watch = ["src/**"]
depends_on = ["db"]
restart_policy = "always"
workdir = "web"

[files]
include = ["src/**"]
exclude = ["**/*.log"]

[options]
restart_grace = "2s"
debounce = "50ms"
`),
);
write(
  "toml",
  "seed-tables.toml",
  te.encode(`[environment]
name = "x"
[[build.steps]]
run = """multi
line"""
inputs = ['a', "b"]
[services.a]
command = 'x' # comment
depends_on = [
  "b",
]
[services.b]
command = "y"
`),
);

const id = (c: string) => c.repeat(64);
const nodes: [string, Node][] = [
  ["file", {
    type: "file",
    mode: 0o100644,
    size: 3,
    chunks: [id("a")],
    uid: 1,
    gid: 2,
    mtime: -5,
    xattrs: [["user.a", new Uint8Array([1])]],
  }],
  ["dir", {
    type: "dir",
    mode: 0o40755,
    entries: [
      { name: "a", dir: id("b") },
      { name: "b", file: { type: "file", mode: 0o120777, size: 1, target: "a" } },
      { name: "c", file: { type: "file", mode: 0o100644, size: 9e6, manifest: id("c") } },
    ],
    mtime: 7,
  }],
  ["package", {
    type: "package",
    provider: "npm",
    name: "x",
    version: "1.0.0",
    artifact: "sha512-…",
    resolved: "https://r/x.tgz",
  }],
  ["buildstep", {
    type: "buildstep",
    command: "make",
    inputs: [{ label: "files", id: id("d") }],
    env: [["A", "1"]],
    outputs: ["out"],
    cache: ["~/.c"],
  }],
  ["env", { type: "env", name: "e", children: [{ role: "info", id: id("e") }] }],
];
for (const [name, n] of nodes) write("node", `seed-${name}.bin`, encodeNode(n));

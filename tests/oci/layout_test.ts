/**
 * An OCI layout's files are read as regular files inside the layout, bounded: a layout copied
 * from elsewhere whose index.json or blobs are symlinks out of it, devices or FIFOs is refused
 * with a one-line error (before: a blob linked to /dev/zero was read without end, a FIFO waited
 * on forever, a manifest linked to a host file was read), while a link to another file inside the
 * layout is followed as before. An export to a layout whose index.json cannot be read stops
 * instead of replacing it with an index naming only the new image (the images already there were
 * lost).
 * @module
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, tempDir } from "../_helpers.ts";
import { makeTar, writeLayout } from "./_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { unpackLayer } from "../../src/oci/unpack.ts";
import { exportImage } from "../../src/oci/export.ts";
import { HdError } from "../../src/sys/errors.ts";

const TAR = makeTar([{ path: "ok.txt", data: "fine" }]);

/** A layout at `dir` and the paths of its blobs: index, manifest, config, the one layer. */
function layout(dir: string): { manifest: string; config: string; layer: string } {
  const m = writeLayout(dir, "1", [{ tar: TAR }]);
  const blob = (d: string) => `${dir}/blobs/sha256/${d.slice(7)}`;
  const man = JSON.parse(Deno.readTextFileSync(blob(m)));
  return { manifest: blob(m), config: blob(man.config.digest), layer: blob(man.layers[0].digest) };
}

/** Puts a symlink to `target` in place of `path`. */
function relink(path: string, target: string): void {
  Deno.removeSync(path);
  Deno.symlinkSync(target, path);
}

Deno.test("an OCI layout's index and blobs: links inside followed, out of it or to devices and FIFOs refused", async () => {
  using tmp = tempDir("hd-oci-layout-");
  const secret = `${tmp.path}/secret.json`;
  Deno.writeTextFileSync(secret, '{"schemaVersion":2,"manifests":[],"secret":"s3cr3t"}');
  type Case = [string, (p: ReturnType<typeof layout>, dir: string) => void, string | null];
  const cases: Case[] = [
    ["as written", () => {}, null],
    ["a blob linked to another file inside the layout", (p, dir) => {
      Deno.renameSync(p.layer, `${dir}/layer.tar.gz`);
      Deno.symlinkSync("../../layer.tar.gz", p.layer);
    }, null],
    ["index.json linked out of the layout", (_p, dir) => {
      relink(`${dir}/index.json`, secret);
    }, "index.json leads outside"],
    ["index.json linked to /dev/zero", (_p, dir) => {
      relink(`${dir}/index.json`, "/dev/zero");
    }, "index.json leads outside"],
    ["the manifest linked out of the layout", (p) => {
      relink(p.manifest, secret);
    }, "leads outside"],
    ["the config linked to /dev/zero", (p) => {
      relink(p.config, "/dev/zero");
    }, "leads outside"],
    ["the layer a FIFO", (p) => {
      Deno.removeSync(p.layer);
      new Deno.Command("mkfifo", { args: [p.layer] }).outputSync();
    }, "is not a regular file"],
    ["the manifest a directory", (p) => {
      Deno.removeSync(p.manifest);
      Deno.mkdirSync(p.manifest);
    }, "is not a regular file"],
    ["a manifest over 4 MiB", (p) => {
      Deno.writeFileSync(p.manifest, new Uint8Array((4 << 20) + 1));
    }, "at most 4194304"],
  ];
  let i = 0;
  for (const [what, spoil, expect] of cases) {
    const dir = `${tmp.path}/l${i++}`;
    spoil(layout(dir), dir);
    const store = `${tmp.path}/store${i}`;
    const r = await hd(["pull", `oci:${dir}:1`, "--json"], { store });
    if (expect === null) {
      assertEquals(r.code, 0, `${what}: ${r.stderr}`);
      continue;
    }
    assertEquals(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert(r.stderr.includes(expect), `${what}: ${r.stderr}`);
    assert(r.stderr.includes("hint:"), `${what}: ${r.stderr}`);
    assertEquals(r.stderr.trim().split("\n").length, 2, `${what}: one line and a hint`);
    assert(!(r.stdout + r.stderr).includes("s3cr3t"), `${what}: the host file was read`);
    assertEquals(Store.open(store, { create: false }).listRefs(), [], `${what}: nothing recorded`);
  }
});

Deno.test("an export to a layout whose index.json cannot be read stops and keeps it", async () => {
  using tmp = tempDir("hd-oci-layout-export-");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const l = await unpackLayer(store, ReadableStream.from([TAR]), { compressedSize: TAR.length });
  const plan = { layers: [{ label: "app", tree: l.root! }], config: {}, epoch: 0 };
  const dir = `${tmp.path}/lay`;
  await exportImage(store, plan, `oci:${dir}:a`);
  await exportImage(store, plan, `oci:${dir}:b`);
  const tags = () =>
    JSON.parse(Deno.readTextFileSync(`${dir}/index.json`)).manifests.map((
      d: { annotations: Record<string, string> },
    ) => d.annotations["org.opencontainers.image.ref.name"]);
  assertEquals(tags(), ["a", "b"], "a second tag is added beside the first");
  const kept = Deno.readTextFileSync(`${dir}/index.json`);
  Deno.writeTextFileSync(`${dir}/index.json`, kept.slice(0, 20)); // cut short
  let msg = "";
  try {
    await exportImage(store, plan, `oci:${dir}:c`);
  } catch (e) {
    assert(e instanceof HdError, String(e));
    msg = e.message;
  }
  assertIncludes(msg, `Cannot export to ${dir}: its index.json cannot be read`);
  assertEquals(Deno.readTextFileSync(`${dir}/index.json`), kept.slice(0, 20), "left as it was");
});

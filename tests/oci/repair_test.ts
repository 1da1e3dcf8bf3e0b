/**
 * `hd cas verify --repair` re-fetches image layers: an image pushed to a real docker-registry on
 * 127.0.0.1 is pulled; objects of the store are damaged in place (a chunk of a layer's file, the
 * merged root directory, the config); the repair fetches again only what holds the damage,
 * unpacks it as a pull does, and says which image each object came from. With the registry
 * stopped, or --offline, the object stays damaged (exit 1) and the report says why.
 */
import { assert, assertEquals } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { getNode } from "../../src/dag/dag.ts";
import type { DirNode, EnvNode } from "../../src/dag/node.ts";
import { repairStore } from "../../src/cas/repair.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { pullImage } from "../../src/oci/image.ts";
import { imageSource } from "../../src/oci/repair.ts";
import { makeTar, run, startRegistry, writeLayout } from "./_fixtures.ts";

const skip = skipUnless({ commands: ["docker-registry", "skopeo"] });

/** Deterministic bytes that do not compress away (so a file has many chunks). */
function noise(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13, x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5, x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

const BASE = noise(700_000, 7);
const APP = noise(300_000, 11);

function layers(): Uint8Array[] {
  return [
    makeTar([
      { path: "etc/", type: "dir" },
      { path: "etc/motd", data: "base layer\n" },
      { path: "opt/", type: "dir" },
      { path: "opt/base.bin", data: BASE },
    ]),
    makeTar([
      { path: "app/", type: "dir" },
      { path: "app/data.bin", data: APP },
      { path: "etc/", type: "dir" },
      { path: "etc/app.conf", data: "port = 8080\n" },
    ]),
  ];
}

/** The chunks of file `path` in the tree `root`. */
function chunksOf(s: Store, root: string, path: string): string[] {
  let id = root;
  const parts = path.split("/");
  for (const [i, p] of parts.entries()) {
    const d = getNode(s, id) as DirNode;
    const e = d.entries.find((x) => x.name === p)!;
    if (i === parts.length - 1) {
      return e.file!.chunks ?? s.getManifest(e.file!.manifest!).chunks;
    }
    id = e.dir!;
  }
  throw new Error("unreachable");
}

/** Flips a byte in the middle of the stored copy (loose or packed) of object `id`. */
function corrupt(s: Store, id: string): void {
  const loc = s.location("objects", id)!;
  const [path, off] = loc.includes("@") ? loc.split("@") : [loc, "0"];
  const at = Number(off) + Math.floor(s.storedSize("objects", id) / 2);
  const f = Deno.openSync(path, { read: true, write: true });
  const b = new Uint8Array(1);
  f.seekSync(at, Deno.SeekMode.Start);
  f.readSync(b);
  b[0] ^= 0xff;
  f.seekSync(at, Deno.SeekMode.Start);
  f.writeSync(b);
  f.close();
}

interface Repaired {
  id: string;
  kind: string;
  from: string;
}

testIf(
  skip,
  "hd cas verify --repair re-fetches the damaged layer from the registry; says why when it cannot",
  async () => {
    using tmp = tempDir("hd-oci-repair-");
    const layout = `${tmp.path}/layout`;
    const [l1, l2] = layers();
    writeLayout(layout, "1", [{ tar: l1 }, { tar: l2 }]);
    const reg = await startRegistry(tmp.path);
    let stopped = false;
    try {
      await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        `oci:${layout}:1`,
        `docker://${reg.host}/app:1`,
      ]);
      const store = `${tmp.path}/store`;
      const ref = `${reg.host}/app:1`;
      const p = await hd(["pull", ref, "--json"], { store });
      assertEquals(p.code, 0, p.stderr);
      const img = JSON.parse(p.stdout);
      const s = Store.open(store, { create: false });

      // 1. a chunk of a file of layer 2: only that layer is fetched again
      const appChunk = chunksOf(s, img.layers[1].tree, "app/data.bin")[1];
      corrupt(s, appChunk);
      const v1 = await hd(["cas", "verify"], { store });
      assertEquals(v1.code, 1, v1.stdout);
      assert(v1.stdout.includes(`corrupt ${appChunk}`), v1.stdout);
      const r1 = await hd(["cas", "verify", "--repair", "--json"], { store });
      assertEquals(r1.code, 0, r1.stdout + r1.stderr);
      const j1 = JSON.parse(r1.stdout);
      assertEquals(j1.repaired.map((x: Repaired) => x.id), [appChunk]);
      const from = j1.repaired[0].from as string;
      assert(from.includes(`image ${ref}`), from);
      assert(from.includes(`layer ${img.layers[1].digest}`), from);
      assert(from.includes(`registry ${reg.host}`), from);
      const v2 = await hd(["cas", "verify"], { store });
      assertEquals(v2.code, 0, v2.stdout + v2.stderr);
      const out = `${tmp.path}/out`;
      assertEquals((await hd(["cas", "checkout", img.rootfs, out], { store })).code, 0);
      assertEquals(Deno.readFileSync(`${out}/app/data.bin`), APP);
      // the scratch store is gone
      assertEquals([...Deno.readDirSync(`${store}/tmp`)].filter((e) => e.isDirectory), []);

      // 2. the merged root directory and the config: only the whole image gives them back
      const record = getNode(s, s.getRef(`images/${ref}`)!) as EnvNode;
      const config = record.children.find((c) => c.role === "config")!.id;
      const s2 = Store.open(store, { create: false });
      corrupt(s2, img.rootfs);
      corrupt(s2, config);
      const r2 = await hd(["cas", "verify", "--repair", "--json"], { store });
      assertEquals(r2.code, 0, r2.stdout + r2.stderr);
      const j2 = JSON.parse(r2.stdout);
      assertEquals(j2.repaired.map((x: Repaired) => x.id).sort(), [img.rootfs, config].sort());
      for (const x of j2.repaired as Repaired[]) {
        assert(x.from.includes(`image ${ref} (pulled again from registry ${reg.host})`), x.from);
      }
      assertEquals((await hd(["cas", "verify"], { store })).code, 0);

      // 3. --offline: nothing fetched, the report names the image
      const s3 = Store.open(store, { create: false });
      const baseChunk = chunksOf(s3, img.layers[0].tree, "opt/base.bin")[2];
      corrupt(s3, baseChunk);
      const r3 = await hd(["cas", "verify", "--repair", "--offline", "--json"], { store });
      assertEquals(r3.code, 1, r3.stdout + r3.stderr);
      const j3 = JSON.parse(r3.stdout);
      assertEquals(j3.repaired, []);
      assertEquals(j3.unrepaired.map((x: { id: string }) => x.id), [baseChunk]);
      assert(j3.unrepaired[0].why.includes(`image ${ref} holds it`), j3.unrepaired[0].why);
      assert(j3.unrepaired[0].why.includes("--offline"), j3.unrepaired[0].why);

      // 4. the registry stopped: not repaired, exit 1, and why
      await reg.stop();
      stopped = true;
      const r4 = await hd(["cas", "verify", "--repair"], { store });
      assertEquals(r4.code, 1, r4.stdout + r4.stderr);
      const line = r4.stdout.split("\n").find((l) =>
        l.includes(`not repaired object ${baseChunk}`)
      );
      assert(line !== undefined, r4.stdout);
      assert(line.includes(`image ${ref} holds it`), line);
      assert(line.includes(`layer ${img.layers[0].digest} could not be fetched`), line);
      assert(line.includes(`registry ${reg.host}`), line);
      assert(line.includes("check that the registry is running"), line);
      assert(r4.stdout.includes("1 damaged before, 0 repaired, 1 remain"), r4.stdout);

      // 5. the image record's info object: in no registry; the report says to pull again
      const s5 = Store.open(store, { create: false });
      const info = record.children.find((c) => c.role === "info")!.id;
      corrupt(s5, info);
      const r5 = await hd(["cas", "verify", "--repair", "--json"], { store });
      assertEquals(r5.code, 1);
      const why = JSON.parse(r5.stdout).unrepaired.find((x: { id: string }) => x.id === info)?.why;
      assert(why?.includes(`run \`hd pull ${ref}\``), why);
    } finally {
      if (!stopped) await reg.stop();
    }
  },
);

Deno.test("image repair source: an image pulled from an OCI layout is repaired from the layout", async () => {
  using tmp = tempDir("hd-oci-repair-layout-");
  const layout = `${tmp.path}/layout`;
  const [l1, l2] = layers();
  writeLayout(layout, "1", [{ tar: l1 }, { tar: l2, compression: "zstd" }]);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const img = await pullImage(store, `oci:${layout}:1`);
  const base = chunksOf(store, img.layers[0].tree, "opt/base.bin")[0];
  const app = chunksOf(store, img.layers[1].tree, "app/data.bin")[0];
  corrupt(store, base);
  corrupt(store, app);
  const fetched: string[] = [];
  const r = await repairStore(Store.open(store.root), dagReferences, [
    imageSource(store, { onFetch: (w) => fetched.push(w) }),
  ]);
  assertEquals(r.unrepaired, []);
  assertEquals(r.repaired.map((x) => x.id).sort(), [base, app].sort());
  assertEquals(fetched.length, 2, fetched.join("\n")); // the two layers, not a whole pull
  assert(r.repaired.every((x) => x.from.includes(`OCI layout ${layout}`)));
  assertEquals(r.after.corrupt, []);
});

Deno.test("image repair source: missing objects and manifests (swept from their pack) come back", async () => {
  using tmp = tempDir("hd-oci-repair-missing-");
  const layout = `${tmp.path}/layout`;
  const [l1, l2] = layers();
  writeLayout(layout, "1", [{ tar: l1 }, { tar: l2 }]);
  const store = Store.open(`${tmp.path}/store`, { create: true });
  const img = await pullImage(store, `oci:${layout}:1`);
  const d = getNode(store, img.layers[0].tree) as DirNode;
  const opt = getNode(store, d.entries.find((e) => e.name === "opt")!.dir!) as DirNode;
  const manifest = opt.entries.find((e) => e.name === "base.bin")!.file!.manifest!;
  assert(manifest !== undefined, "base.bin has a manifest");
  const chunk = chunksOf(store, img.layers[1].tree, "app/data.bin")[1];
  store.removeObjects(new Set([chunk, "m" + manifest]));
  const s = Store.open(store.root);
  const before = verifyStore(s, dagReferences);
  assertEquals(before.missing.sort(), [chunk, manifest].sort());
  const r = await repairStore(s, dagReferences, [imageSource(s)]);
  assertEquals(r.unrepaired, []);
  assertEquals(
    r.repaired.map((x) => `${x.kind} ${x.id}`).sort(),
    [`objects ${chunk}`, `manifests ${manifest}`].sort(),
  );
  assertEquals(r.after.missing, []);
  assertEquals(r.after.corrupt, []);
});

/**
 * Image indexes (multi-platform images) resolve to the host's platform or `--platform`, through a
 * registry and from an OCI layout; digest references pull exactly that digest; a missing image is
 * a clear error.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { Tree } from "../../src/dag/tree.ts";
import { pullImage } from "../../src/oci/image.ts";
import { makeTar, run, sha256, startRegistry, writeLayout } from "./_fixtures.ts";

const te = new TextEncoder();

/** Makes tag `multi` of `layout` an index over tags amd and arm (already written). */
function writeIndex(layout: string): string {
  const idx = JSON.parse(Deno.readTextFileSync(`${layout}/index.json`));
  const byTag = (t: string) =>
    idx.manifests.find((d: { annotations: Record<string, string> }) =>
      d.annotations["org.opencontainers.image.ref.name"] === t
    );
  const strip = (d: Record<string, unknown>, arch: string) => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    platform: { os: "linux", architecture: arch },
  });
  const index = te.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [strip(byTag("arm"), "arm64"), strip(byTag("amd"), "amd64")],
  }));
  const digest = sha256(index);
  Deno.writeFileSync(`${layout}/blobs/sha256/${digest.slice(7)}`, index);
  idx.manifests.push({
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest,
    size: index.length,
    annotations: { "org.opencontainers.image.ref.name": "multi" },
  });
  Deno.writeTextFileSync(`${layout}/index.json`, JSON.stringify(idx));
  return digest;
}

testIf(
  skipUnless({ commands: ["docker-registry", "skopeo"] }),
  "indexes resolve by platform; digest references; missing images",
  async () => {
    using tmp = tempDir("hd-oci-index-");
    const layout = `${tmp.path}/layout`;
    writeLayout(layout, "amd", [{ tar: makeTar([{ path: "arch", data: "amd64\n" }]) }]);
    writeLayout(layout, "arm", [{ tar: makeTar([{ path: "arch", data: "arm64\n" }]) }]);
    const indexDigest = writeIndex(layout);
    const store = Store.open(`${tmp.path}/store`, { create: true });
    const arch = (id: string) => {
      const f = Tree.load(store, id).get("arch");
      assert(f !== undefined && !("entries" in f));
      return new TextDecoder().decode(store.getObject(f.chunks![0]));
    };

    const local = await pullImage(store, `oci:${layout}:multi`, { platform: "linux/amd64" });
    assertEquals(local.digest, indexDigest);
    assertEquals(local.platform, "linux/amd64");
    assertEquals(arch(local.rootfs), "amd64\n");
    const arm = await pullImage(store, `oci:${layout}:multi`, { platform: "linux/arm64" });
    assertEquals(arch(arm.rootfs), "arm64\n");

    const reg = await startRegistry(tmp.path);
    try {
      await run("skopeo", [
        "copy",
        "--all",
        "--dest-tls-verify=false",
        `oci:${layout}:multi`,
        `docker://${reg.host}/multi:1`,
      ]);
      const s = `${tmp.path}/store2`;
      const p = await hd(["pull", `${reg.host}/multi:1`, "--platform", "linux/arm64", "--json"], {
        store: s,
      });
      assertEquals(p.code, 0, p.stderr);
      const img = JSON.parse(p.stdout);
      assertEquals(img.platform, "linux/arm64");
      assertEquals(img.rootfs, arm.rootfs);

      // By digest: the platform manifest itself.
      const byDigest = await hd(["pull", `${reg.host}/multi@${img.manifestDigest}`, "--json"], {
        store: s,
      });
      assertEquals(byDigest.code, 0, byDigest.stderr);
      assertEquals(JSON.parse(byDigest.stdout).rootfs, arm.rootfs);

      const none = await hd(["pull", `${reg.host}/multi:nope`], { store: s });
      assertEquals(none.code, 1);
      assertIncludes(none.stderr, "HTTP 404");
      const badPlat = await hd(["pull", `${reg.host}/multi:1`, "--platform", "linux/s390x"], {
        store: s,
      });
      assertEquals(badPlat.code, 1);
      assertIncludes(badPlat.stderr, "linux/amd64");
      const usage = await hd(["pull", "Not/A/Ref"], { store: s });
      assertEquals(usage.code, 2);
    } finally {
      await reg.stop();
    }
  },
);

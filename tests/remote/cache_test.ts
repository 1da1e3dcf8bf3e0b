/**
 * The remote cache against real remotes on 127.0.0.1: Debian's docker-registry and s3rver. A
 * step result pushed from store A is fetched into a fresh store B (only what B lacks, verified),
 * a second push uploads nothing, a one-file edit uploads one small pack, and the artifact is an
 * OCI 1.1 manifest that skopeo reads.
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { checkoutTree } from "../../src/dag/checkout.ts";
import { openRemoteCache, restoreStep } from "../../src/remote/cache.ts";
import { missingFromTree, STEP_ARTIFACT } from "../../src/remote/wire.ts";
import { run, startRegistry } from "../oci/_fixtures.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { startS3, storeWithTree } from "./_fixtures.ts";

const STEP = "5e".repeat(32);
const STEP2 = "6f".repeat(32);

async function roundTrip(ref: string, root: string) {
  const a = storeWithTree(`${root}/a`);
  // 256 KiB packs: the 3 MiB file travels in several packs
  const ra = openRemoteCache(a.store, ref, { packTarget: 256 << 10 });
  const p1 = await ra.push(STEP, a.tree);
  assert(p1.uploaded >= 4, `several packs: ${JSON.stringify(p1)}`);
  const again = await ra.push(STEP, a.tree);
  assertEquals(again.uploaded, 0, "a second push uploads no pack");
  assertEquals(again.bytes, 0, "a second push sends no pack bytes");
  assert(again.metaBytes < 4096, `and only the manifest: ${again.metaBytes}`);

  // a one-file edit: one small pack (the changed file and the Dir nodes above it)
  Deno.writeTextFileSync(`${a.dir}/sub/a.txt`, "edited\n");
  const { ingestTree } = await import("../../src/scan/ingest.ts");
  const tree2 = ingestTree(a.store, a.dir).root;
  const p2 = await ra.push(STEP2, tree2);
  assertEquals(p2.uploaded, 1);
  assert(p2.bytes < 4096, `one-file edit uploads a pack of ${p2.bytes} bytes`);

  const b = Store.open(`${root}/b/store`, { create: true });
  const rb = openRemoteCache(b, ref);
  assertEquals(await rb.lookup("00".repeat(32)), null, "a miss is null");
  assertEquals((await rb.list()).sort(), [STEP, STEP2].sort());
  const got = await restoreStep(b, rb, STEP, (t) => b.setRef(`builds/${STEP}`, t));
  assertEquals(got?.tree, a.tree);
  assertEquals(missingFromTree(b, a.tree), []);
  checkoutTree(b, a.tree, `${root}/out`);
  assertEquals(
    Deno.readFileSync(`${root}/out/big.bin`),
    Deno.readFileSync(`${a.dir}/big.bin`),
  );
  // the second result shares all but one pack: B downloads only that one
  const got2 = await restoreStep(b, rb, STEP2, () => {});
  assertEquals(got2?.stats.packs, 1);
  return { p1, p2 };
}

const noReg = skipUnless({ commands: ["docker-registry"] });

testIf(noReg, "remote cache: push, lookup, fetch through a docker-registry", async () => {
  using tmp = tempDir();
  const reg = await startRegistry(tmp.path);
  try {
    const ref = `${reg.host}/team/hd-cache`;
    await roundTrip(ref, tmp.path);
    // the artifact as a registry client sees it: OCI 1.1, artifactType, the empty config
    const res = await fetch(`http://${reg.host}/v2/team/hd-cache/manifests/step-${STEP}`, {
      headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    const m = await res.json();
    assertEquals(m.artifactType, STEP_ARTIFACT);
    assertEquals(m.config.mediaType, "application/vnd.oci.empty.v1+json");
    assertEquals(m.layers[0].mediaType, "application/vnd.hd.step.index.v1+json");
    // the same result pushed to another repository of the registry: mounted, not uploaded
    const { store, tree } = storeWithTree(`${tmp.path}/m`);
    const m1 = openRemoteCache(store, `${reg.host}/team/one`, { packTarget: 256 << 10 });
    const first = await m1.push(STEP, tree);
    assert(first.uploaded >= 4);
    const second = await openRemoteCache(store, `${reg.host}/team/two`, { packTarget: 256 << 10 })
      .push(STEP, tree);
    assertEquals(second.uploaded, 0, JSON.stringify(second));
    assertEquals(second.mounted, first.uploaded, "every pack mounted from team/one");
    if (skipUnless({ commands: ["skopeo"] }) === null) {
      const raw = await run("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${reg.host}/team/hd-cache:step-${STEP}`,
      ]);
      assertEquals(JSON.parse(raw).artifactType, STEP_ARTIFACT);
    }
  } finally {
    await reg.stop();
  }
});

Deno.test("remote cache: push, lookup, fetch through s3rver (S3, SigV4, conditional PUT)", async () => {
  using tmp = tempDir();
  const s3 = await startS3(tmp.path);
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(s3.env)) (saved[k] = Deno.env.get(k), Deno.env.set(k, v));
  try {
    await roundTrip(`s3://${s3.bucket}/team/cache`, tmp.path);
    const list = await fetch(`${s3.endpoint}/${s3.bucket}?list-type=2&prefix=team/cache/`);
    const xml = await list.text();
    assert(xml.includes(`team/cache/steps/step-${STEP}`));
    assert(xml.includes("team/cache/blobs/sha256/"));
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
    await s3.stop();
  }
});

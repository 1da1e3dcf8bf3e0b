/**
 * Named volumes through a remote, below the CLI: a volume's snapshot pushed from store A is found
 * by its tag and pulled into store B (ref set, tree complete and verified); through a hostile
 * proxy that flips a byte of a pack the pull fails with one line and B has no ref and nothing
 * corrupt; a step tag is not taken for a volume (artifactType checked).
 * @module
 */
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { Store } from "../../src/cas/store.ts";
import { verifyStore } from "../../src/cas/verify.ts";
import { dagReferences } from "../../src/dag/refs.ts";
import { openRemoteCache } from "../../src/remote/cache.ts";
import { openBackend } from "../../src/remote/backend.ts";
import { volumeKey, volumeTag } from "../../src/remote/wire.ts";
import { pullVolumes, pushVolumes } from "../../src/runtime/remote_volumes.ts";
import { HdError } from "../../src/sys/errors.ts";
import { startRegistry } from "../oci/_fixtures.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { hostileProxy, type Hostility, storeWithTree } from "./_fixtures.ts";

testIf(
  skipUnless({ commands: ["docker-registry", "skopeo"] }),
  "volumes: push by tag, pull verified under its ref; a bad pack leaves no ref",
  async () => {
    using tmp = tempDir();
    const reg = await startRegistry(tmp.path);
    let mode: Hostility = null;
    const proxy = hostileProxy(reg.host, () => mode, false);
    try {
      const ref = `${proxy.host}/team/cache`;
      const a = storeWithTree(`${tmp.path}/a`);
      a.store.setRef("volumes/app/data", a.tree);
      a.store.setRef("volumes/app-x/data", a.tree); // another environment: not pushed
      const pushed = await pushVolumes(
        a.store,
        openRemoteCache(a.store, ref, { packTarget: 512 << 10 }),
        "app",
      );
      assertEquals(pushed.map((p) => [p.name, p.tag, p.tree]), [
        ["data", volumeTag("app", "data"), a.tree],
      ]);
      assert(pushed[0].uploaded > 1, `${pushed[0].uploaded} packs`);
      // the registry holds it as an OCI artifact under that tag
      const raw = await new Deno.Command("skopeo", {
        args: [
          "inspect",
          "--raw",
          "--tls-verify=false",
          `docker://${reg.host}/team/cache:${volumeTag("app", "data")}`,
        ],
      }).output();
      const man = JSON.parse(new TextDecoder().decode(raw.stdout));
      assertEquals(man.artifactType, "application/vnd.hd.volume.v1");
      assertEquals(man.annotations["dev.hd.volume"], "app/data");
      assertEquals(man.annotations["dev.hd.tree"], a.tree);

      // a flipped byte in a pack: one line, no ref, nothing corrupt
      mode = "flip";
      const bad = Store.open(`${tmp.path}/bad`, { create: true });
      const e = await assertRejects(() =>
        pullVolumes(bad, openRemoteCache(bad, ref), "app", ["data"])
      );
      assert(e instanceof HdError && e.message.startsWith("Cannot "), String(e));
      assert(/do not match its digest/.test(e.message) && !e.message.includes("\n"), e.message);
      assertEquals(bad.listRefs(), []);
      const v = verifyStore(bad, dagReferences);
      assertEquals([v.corrupt, v.missing], [[], []]);
      mode = null;

      // a good pull: ref set to the tree, every object present
      const b = Store.open(`${tmp.path}/b`, { create: true });
      const rc = openRemoteCache(b, ref);
      const got = await pullVolumes(b, rc, "app", ["data", "none"]);
      assertEquals(got.map((g) => [g.name, g.action]), [["data", "restore"], ["none", "missing"]]);
      assertEquals(b.getRef("volumes/app/data"), a.tree);
      const vb = verifyStore(b, dagReferences);
      assertEquals([vb.corrupt, vb.missing], [[], []]);

      // a step's result placed under a volume's tag is not taken for a volume (artifactType)
      const key = volumeKey("app", "other");
      await openRemoteCache(a.store, ref).push(key, a.tree);
      assertEquals(await rc.lookupVolume("app", "other"), null);
      const be = openBackend(ref);
      await be.putTagged(volumeTag("app", "other"), (await be.getStep(key))!, "a test entry");
      const f = await assertRejects(() => rc.lookupVolume("app", "other"));
      assert(/not an hd volume snapshot/.test((f as Error).message), String(f));
    } finally {
      await proxy.close();
      await reg.stop();
    }
  },
);

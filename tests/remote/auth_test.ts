/**
 * The remote cache with credentials "as for pulls": docker-registry with token auth, a token
 * service on 127.0.0.1 (JWTs signed with a throwaway certificate) that wants Basic credentials,
 * found in a Docker config.json. A push gets a `pull,push` token; a fetch from another store
 * works with the same credentials; without them the error says where credentials go.
 */
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { startTokenRegistry } from "../oci/_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { openRemoteCache, restoreStep } from "../../src/remote/cache.ts";
import { storeWithTree } from "./_fixtures.ts";

testIf(
  skipUnless({ commands: ["docker-registry", "openssl"] }),
  "remote cache: push and fetch with a bearer token got with config.json credentials",
  async () => {
    using tmp = tempDir("hd-remote-auth-");
    const tok = await startTokenRegistry(tmp.path, "s3cret pass");
    const { reg, user, pass } = tok;
    const old = Deno.env.get("DOCKER_CONFIG");
    const docker = `${tmp.path}/docker`;
    Deno.mkdirSync(docker);
    Deno.env.set("DOCKER_CONFIG", docker);
    try {
      const step = "9d".repeat(32);
      const ref = `${reg.host}/private/cache`;
      const a = storeWithTree(`${tmp.path}/a`, {}, 1 << 20);
      const e = await assertRejects(() => openRemoteCache(a.store, ref).push(step, a.tree));
      assert(/Cannot get a token/.test(e.message) && e.message.includes("HTTP 401"), e.message);
      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${pass}`) } } }),
      );
      const pushed = await openRemoteCache(a.store, ref).push(step, a.tree);
      assertEquals(pushed.uploaded, 1);
      const seen = tok.requests.map((s) => s[0] ?? "");
      assert(
        seen.some((s) => /^repository:private\/cache:(pull,push|push,pull)$/.test(s)),
        seen.join(" "),
      );
      const b = Store.open(`${tmp.path}/b`, { create: true });
      const got = await restoreStep(b, openRemoteCache(b, ref), step, () => {});
      assertEquals(got?.tree, a.tree);
    } finally {
      if (old === undefined) Deno.env.delete("DOCKER_CONFIG");
      else Deno.env.set("DOCKER_CONFIG", old);
      await tok.stop();
    }
  },
);

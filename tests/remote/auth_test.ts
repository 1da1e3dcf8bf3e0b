/**
 * The remote cache with credentials "as for pulls": docker-registry with token auth, a token
 * service on 127.0.0.1 (JWTs signed with a throwaway certificate) that wants Basic credentials,
 * found in a Docker config.json. A push gets a `pull,push` token; a fetch from another store
 * works with the same credentials; without them the error says where credentials go.
 */
import { createSign } from "node:crypto";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { run, startRegistry } from "../oci/_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { openRemoteCache, restoreStep } from "../../src/remote/cache.ts";
import { storeWithTree } from "./_fixtures.ts";

const b64url = (b: Uint8Array | string) =>
  (typeof b === "string" ? btoa(b) : btoa(String.fromCharCode(...b)))
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

testIf(
  skipUnless({ commands: ["docker-registry", "openssl"] }),
  "remote cache: push and fetch with a bearer token got with config.json credentials",
  async () => {
    using tmp = tempDir("hd-remote-auth-");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${tmp.path}/key.pem`,
      "-out",
      `${tmp.path}/cert.pem`,
      "-days",
      "1",
      "-subj",
      "/CN=hd-test-token",
    ]);
    const key = Deno.readTextFileSync(`${tmp.path}/key.pem`);
    const der = Deno.readTextFileSync(`${tmp.path}/cert.pem`)
      .replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
    const user = "hd";
    const pass = "s3cret pass";
    const basic = "Basic " + btoa(`${user}:${pass}`);
    const seen: string[] = [];
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const url = new URL(req.url);
      seen.push(url.searchParams.get("scope") ?? "");
      if (req.headers.get("authorization") !== basic) return new Response("no", { status: 401 });
      const access = url.searchParams.getAll("scope").map((s) => {
        const [type, name, actions] = s.split(":");
        return { type, name, actions: actions.split(",") };
      });
      const now = Math.floor(Date.now() / 1000);
      const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [der] }));
      const claims = b64url(JSON.stringify({
        iss: "hd-test-issuer",
        sub: user,
        aud: "hd-test",
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: crypto.randomUUID(),
        access,
      }));
      const sig = createSign("RSA-SHA256").update(`${head}.${claims}`).sign(key);
      return Response.json({ token: `${head}.${claims}.${b64url(new Uint8Array(sig))}` });
    });
    const realm = `http://127.0.0.1:${server.addr.port}/token`;
    const reg = await startRegistry(
      tmp.path,
      `auth:
    token:
      realm: ${realm}
      service: hd-test
      issuer: hd-test-issuer
      rootcertbundle: ${tmp.path}/cert.pem
  `,
    );
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
      await reg.stop();
      await server.shutdown();
    }
  },
);

/**
 * Bearer-token auth as Docker Hub and ghcr.io do it: docker-registry configured with token auth,
 * a token service on 127.0.0.1 (signing JWTs with a throwaway certificate) that wants Basic
 * credentials, and `hd pull` finding them in a Docker config.json.
 */
import { createSign } from "node:crypto";
import { assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startRegistry, writeLayout } from "./_fixtures.ts";

const skip = skipUnless({ commands: ["docker-registry", "skopeo", "openssl"] });

const b64url = (b: Uint8Array | string) =>
  (typeof b === "string" ? btoa(b) : btoa(String.fromCharCode(...b)))
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

testIf(skip, "pull with a bearer token got with config.json credentials", async () => {
  using tmp = tempDir("hd-oci-auth-");
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
  try {
    const layout = `${tmp.path}/layout`;
    writeLayout(layout, "1", [{ tar: makeTar([{ path: "etc/hello", data: "private\n" }]) }]);
    await run("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      "--dest-creds",
      `${user}:${pass}`,
      `oci:${layout}:1`,
      `docker://${reg.host}/private/app:1`,
    ]);
    const store = `${tmp.path}/store`;
    const docker = `${tmp.path}/docker`;
    Deno.mkdirSync(docker);
    const env = { DOCKER_CONFIG: docker };

    // No credentials: the token service refuses, and hd says how to fix it.
    const no = await hd(["pull", `${reg.host}/private/app:1`], { store, env });
    assertEquals(no.code, 1, no.stdout + no.stderr);
    assertIncludes(no.stderr, "Cannot get a token");
    assertIncludes(no.stderr, "config.json");

    Deno.writeTextFileSync(
      `${docker}/config.json`,
      JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${pass}`) } } }),
    );
    const ok = await hd(["pull", `${reg.host}/private/app:1`, "--json"], { store, env });
    assertEquals(ok.code, 0, ok.stderr);
    const img = JSON.parse(ok.stdout);
    const out = `${tmp.path}/out`;
    assertEquals((await hd(["cas", "checkout", img.rootfs, out], { store })).code, 0);
    assertEquals(Deno.readTextFileSync(`${out}/etc/hello`), "private\n");
    assertIncludes(seen.join(" "), "repository:private/app:pull");
  } finally {
    await reg.stop();
    await server.shutdown();
  }
});

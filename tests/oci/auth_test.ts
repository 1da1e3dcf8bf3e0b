/**
 * Bearer-token auth as Docker Hub and ghcr.io do it: docker-registry configured with token auth,
 * a token service on 127.0.0.1 (signing JWTs with a throwaway certificate) that wants Basic
 * credentials, and `hd pull` finding them in a Docker config.json.
 */
import { assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startTokenRegistry, writeLayout } from "./_fixtures.ts";

const skip = skipUnless({ commands: ["docker-registry", "skopeo", "openssl"] });

testIf(skip, "pull with a bearer token got with config.json credentials", async () => {
  using tmp = tempDir("hd-oci-auth-");
  const tok = await startTokenRegistry(tmp.path, "s3cret pass");
  const { reg, user, pass } = tok;
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
    const seen = tok.requests.map((s) => s[0] ?? "");
    assertIncludes(seen.join(" "), "repository:private/app:pull");
  } finally {
    await tok.stop();
  }
});

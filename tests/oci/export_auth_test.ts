/**
 * Pushing an export to a registry that wants bearer tokens (docker-registry with token auth and
 * a token service on 127.0.0.1 that wants Basic credentials, as Docker Hub and ghcr.io do):
 * without credentials a clear error and no manifest; with them in config.json the base layer is
 * mounted from its private repository (a token for both scopes), the rest uploaded, and skopeo
 * reads the image back with the same digest.
 */
import { createSign } from "node:crypto";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startRegistry, writeLayout } from "./_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { loadImage } from "../../src/oci/image.ts";
import { unpackLayer } from "../../src/oci/unpack.ts";
import { exportImage } from "../../src/oci/export.ts";

const skip = skipUnless({ commands: ["docker-registry", "skopeo", "openssl"] });

const b64url = (b: Uint8Array | string) =>
  (typeof b === "string" ? btoa(b) : btoa(String.fromCharCode(...b)))
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

testIf(
  skip,
  "export push with bearer tokens: refused without creds, mounts with them",
  async () => {
    using tmp = tempDir("hd-export-auth-");
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
    const pass = "push pass";
    const basic = "Basic " + btoa(`${user}:${pass}`);
    const seen: string[] = [];
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const url = new URL(req.url);
      seen.push(url.searchParams.getAll("scope").join(" "));
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
    const docker = `${tmp.path}/docker`;
    Deno.mkdirSync(docker);
    const prevDocker = Deno.env.get("DOCKER_CONFIG");
    Deno.env.set("DOCKER_CONFIG", docker);
    try {
      const layout = `${tmp.path}/layout`;
      writeLayout(layout, "1", [{
        tar: makeTar([{ path: "etc/", type: "dir" }, { path: "etc/base", data: "base\n" }]),
      }]);
      const baseRef = `${reg.host}/private/base:1`;
      await run("skopeo", [
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        `${user}:${pass}`,
        `oci:${layout}:1`,
        `docker://${baseRef}`,
      ]);
      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${pass}`) } } }),
      );
      const storeDir = `${tmp.path}/store`;
      const pulled = await hd(["pull", baseRef], {
        store: storeDir,
        env: { DOCKER_CONFIG: docker },
      });
      assertEquals(pulled.code, 0, pulled.stderr);
      const store = Store.open(storeDir, { create: false });
      const img = loadImage(store, baseRef)!;
      const app = makeTar([{ path: "app/", type: "dir" }, { path: "app/main", data: "app\n" }]);
      const appLayer = await unpackLayer(store, ReadableStream.from([app]), {
        compressedSize: app.length,
      });
      const manifest = JSON.parse(
        await run("skopeo", [
          "inspect",
          "--raw",
          "--creds",
          `${user}:${pass}`,
          "--tls-verify=false",
          `docker://${baseRef}`,
        ]),
      );
      const plan = {
        layers: [
          {
            label: "base",
            tree: img.layers[0].tree,
            base: {
              digest: img.layers[0].digest!,
              diffId: img.layers[0].diffId,
              size: img.layers[0].size,
              mediaType: manifest.layers[0].mediaType,
              source: baseRef,
            },
          },
          { label: "app", tree: appLayer.root! },
        ],
        config: { Env: ["PATH=/bin"], Cmd: ["/app/main"] },
        epoch: 0,
      };
      const dest = `${reg.host}/private/exp:1`;

      // without credentials: refused, said so, no manifest
      Deno.writeTextFileSync(`${docker}/config.json`, "{}");
      let err = "";
      try {
        await exportImage(store, plan, dest);
      } catch (e) {
        err = (e as Error).message;
      }
      assertIncludes(err, "Cannot get a push token");
      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${pass}`) } } }),
      );
      const r = await exportImage(store, plan, dest);
      assertEquals(r.layers.map((l) => l.push), ["mounted", "uploaded"]);
      assert(
        seen.some((s) =>
          /repository:private\/exp:(pull,push|push,pull)/.test(s) &&
          s.includes("repository:private/base:pull")
        ),
        `a token for the mount's two scopes: ${seen.join(" | ")}`,
      );
      const insp = JSON.parse(
        await run("skopeo", [
          "inspect",
          "--creds",
          `${user}:${pass}`,
          "--tls-verify=false",
          `docker://${dest}`,
        ]),
      );
      assertEquals(insp.Digest, r.digest);
      assertEquals(insp.Layers[0], img.layers[0].digest, "the base blob as it was");
    } finally {
      if (prevDocker === undefined) Deno.env.delete("DOCKER_CONFIG");
      else Deno.env.set("DOCKER_CONFIG", prevDocker);
      await reg.stop();
      await server.shutdown();
    }
  },
);

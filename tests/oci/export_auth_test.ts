/**
 * Pushing an export to a registry that wants bearer tokens (docker-registry with token auth and
 * a token service on 127.0.0.1 that wants Basic credentials, as Docker Hub and ghcr.io do):
 * without credentials a clear error and no manifest; with them in config.json the base layer is
 * mounted from its private repository (a token for both scopes), the rest uploaded, and skopeo
 * reads the image back with the same digest.
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startTokenRegistry, writeLayout } from "./_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { loadImage } from "../../src/oci/image.ts";
import { unpackLayer } from "../../src/oci/unpack.ts";
import { exportImage } from "../../src/oci/export.ts";

const skip = skipUnless({ commands: ["docker-registry", "skopeo", "openssl"] });

testIf(
  skip,
  "export push with bearer tokens: refused without creds, mounts with them",
  async () => {
    using tmp = tempDir("hd-export-auth-");
    const tok = await startTokenRegistry(tmp.path, "push pass");
    const { reg, user, pass } = tok;
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
      const seen = tok.requests.map((s) => s.join(" "));
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
      await tok.stop();
    }
  },
);

/**
 * `hd export` pushes the export helper's tests left out:
 * - a registry with Basic auth (docker-registry with an htpasswd file, as a small team's
 *   registry is often set up): without credentials, and with wrong ones, a one-line error and no
 *   tag; with `~/.docker/config.json` credentials the push lands and skopeo reads it back;
 * - a registry that rejects the manifest's media type (a proxy on 127.0.0.1 in front of a real
 *   docker-registry answering a manifest PUT with 400 MANIFEST_INVALID, or 415): a one-line
 *   error that says so, and no tag (the blobs that went up first are unreferenced, as after any
 *   cut push).
 * @module
 */
import { assert, assertEquals } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { makeTar, run, startRegistry } from "./_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { unpackLayer } from "../../src/oci/unpack.ts";
import { exportImage, type ExportPlan } from "../../src/oci/export.ts";
import { HdError } from "../../src/sys/errors.ts";
import { pushRefusal } from "../../src/oci/push.ts";

Deno.test("pushRefusal: the registry's code on one line, the hint for the case", () => {
  const M = "application/vnd.oci.image.manifest.v1+json";
  const j = (code: string) =>
    JSON.stringify({ errors: [{ code, message: "a\nb", detail: { x: 1 } }] }) + "\n";
  const table: [number, string, string | undefined, string, RegExp][] = [
    [400, j("MANIFEST_INVALID"), M, "HTTP 400 (MANIFEST_INVALID: a b)", /media type/],
    [400, j("UNSUPPORTED"), M, "HTTP 400 (UNSUPPORTED: a b)", /media type/],
    [415, "unsupported\n  media type\n", M, "HTTP 415 (unsupported media type)", /media type/],
    [400, j("NAME_INVALID"), M, "HTTP 400 (NAME_INVALID: a b)", /repository name/],
    [400, j("MANIFEST_INVALID"), undefined, "HTTP 400 (MANIFEST_INVALID: a b)", /repository/],
    [401, "", M, "HTTP 401", /log in/],
    [403, j("DENIED"), M, "HTTP 403 (DENIED: a b)", /log in/],
    [500, "x".repeat(500), M, `HTTP 500 (${"x".repeat(200)})`, /repository name/],
  ];
  for (const [status, text, media, msg, hint] of table) {
    const e = pushRefusal("Cannot push manifest 1 to h", status, text, media);
    assertEquals(e.message, `Cannot push manifest 1 to h: ${msg}`);
    assert(hint.test(e.hint), `${status} ${text}: ${e.hint}`);
  }
});

async function plan(store: Store): Promise<ExportPlan> {
  const tar = makeTar([
    { path: "bin/", type: "dir" },
    { path: "bin/hello", data: "#!/bin/sh\necho hello\n", mode: 0o755 },
  ]);
  const l = await unpackLayer(store, ReadableStream.from([tar]), { compressedSize: tar.length });
  return {
    layers: [{ label: "app", tree: l.root! }],
    config: { Env: ["PATH=/bin"], Cmd: ["/bin/hello"] },
    epoch: 0,
  };
}

/** The export's error (an HdError of one line starting "Cannot "), or a failure. */
async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof HdError, String(e));
    assert(e.message.startsWith("Cannot "), e.message);
    assert(!e.message.includes("\n") && !e.hint.includes("\n"), `one line: ${e.message}`);
    return `${e.message} | ${e.hint}`;
  }
  throw new Error("the push was not refused");
}

/** The HTTP status of the manifest `repo:tag` on `host`, asked with `auth`. */
async function manifestStatus(host: string, repo: string, tag: string, auth?: string) {
  const r = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: {
      accept: "application/vnd.oci.image.manifest.v1+json",
      ...(auth ? { authorization: auth } : {}),
    },
  });
  await r.body?.cancel();
  return r.status;
}

testIf(
  skipUnless({ commands: ["docker-registry", "skopeo", "htpasswd"] }),
  "export push with Basic auth (htpasswd): refused without or with wrong creds, lands with them",
  async () => {
    using tmp = tempDir("hd-export-basic-");
    const user = "team", pass = "s3cret pass";
    await run("htpasswd", ["-Bbc", `${tmp.path}/htpasswd`, user, pass]);
    const reg = await startRegistry(
      tmp.path,
      `auth:\n  htpasswd:\n    realm: hd-test\n    path: ${tmp.path}/htpasswd\n`,
    );
    const docker = `${tmp.path}/docker`;
    Deno.mkdirSync(docker);
    const prev = Deno.env.get("DOCKER_CONFIG");
    Deno.env.set("DOCKER_CONFIG", docker);
    const basic = "Basic " + btoa(`${user}:${pass}`);
    try {
      const store = Store.open(`${tmp.path}/store`, { create: true });
      const p = await plan(store);
      const dest = `${reg.host}/team/app:1`;
      // the registry does want credentials
      assertEquals(await manifestStatus(reg.host, "team/app", "1"), 401);

      Deno.writeTextFileSync(`${docker}/config.json`, "{}");
      let why = await refused(exportImage(store, p, dest));
      assert(/HTTP 401/.test(why) && /config\.json/.test(why), why);
      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:wrong`) } } }),
      );
      why = await refused(exportImage(store, p, dest));
      assert(/HTTP 401/.test(why), why);
      assertEquals(await manifestStatus(reg.host, "team/app", "1", basic), 404, "no tag");

      Deno.writeTextFileSync(
        `${docker}/config.json`,
        JSON.stringify({ auths: { [reg.host]: { auth: btoa(`${user}:${pass}`) } } }),
      );
      const r = await exportImage(store, p, dest);
      assertEquals(r.layers.map((l) => l.push), ["uploaded"]);
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
      // again: every blob is there, only the manifest goes up
      const again = await exportImage(store, p, dest);
      assertEquals(again.digest, r.digest);
      assertEquals(again.layers.map((l) => l.push), ["present"]);
    } finally {
      if (prev === undefined) Deno.env.delete("DOCKER_CONFIG");
      else Deno.env.set("DOCKER_CONFIG", prev);
      await reg.stop();
    }
  },
);

testIf(
  skipUnless({ commands: ["docker-registry"] }),
  "export push to a registry that rejects the media type: one line, no tag",
  async () => {
    using tmp = tempDir("hd-export-reject-");
    const reg = await startRegistry(tmp.path);
    let status = 400;
    const seen: string[] = [];
    // passes everything to the registry except a manifest PUT, refused as registries that do not
    // take OCI manifests (or this artifact's type) refuse it
    const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const u = new URL(req.url);
      if (req.method === "PUT" && u.pathname.includes("/manifests/")) {
        seen.push(req.headers.get("content-type") ?? "");
        await req.body?.cancel();
        return status === 400
          ? Response.json({
            errors: [{
              code: "MANIFEST_INVALID",
              message: "manifest invalid",
              detail: "unknown media type\napplication/vnd.oci.image.manifest.v1+json",
            }],
          }, { status: 400 })
          : new Response("unsupported media type\n", { status: 415 });
      }
      const body = req.method === "GET" || req.method === "HEAD"
        ? undefined
        : new Uint8Array(await req.arrayBuffer());
      const res = await fetch(`http://${reg.host}${u.pathname}${u.search}`, {
        method: req.method,
        headers: req.headers,
        body,
        redirect: "manual",
      });
      const headers = new Headers(res.headers);
      const loc = headers.get("location");
      if (loc) headers.set("location", loc.replace(reg.host, u.host));
      return new Response(res.body, { status: res.status, headers });
    });
    const host = `127.0.0.1:${proxy.addr.port}`;
    try {
      const store = Store.open(`${tmp.path}/store`, { create: true });
      const p = await plan(store);
      for (const s of [400, 415]) {
        status = s;
        const why = await refused(exportImage(store, p, `${host}/team/app:${s}`));
        assert(why.includes(`HTTP ${s}`), why);
        if (s === 400) assert(why.includes("MANIFEST_INVALID"), why);
        assert(/media type/.test(why), `says what was refused: ${why}`);
        assert(!/check the repository name/.test(why), why);
        assertEquals(await manifestStatus(reg.host, "team/app", `${s}`), 404, "no tag");
      }
      assertEquals(seen, [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
      ]);
    } finally {
      await proxy.shutdown();
      await reg.stop();
    }
  },
);

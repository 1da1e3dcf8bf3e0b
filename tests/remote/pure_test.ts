/**
 * The remote cache's pure decisions, as tables: which remote is in force, how a reference is
 * read, the SigV4 signature (AWS's documented GET Object example), and what index and manifest
 * bytes are refused.
 * @module
 */
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { remoteRef } from "../../src/runtime/remote_steps.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { parseRegistryRef } from "../../src/remote/registry.ts";
import { signV4 } from "../../src/remote/s3.ts";
import { manifestIndex, parseIndex, stepManifest } from "../../src/remote/wire.ts";

Deno.test("remoteRef: --cache, then HD_REMOTE_CACHE, then hd.toml; off turns it off", () => {
  const table: [Parameters<typeof remoteRef>[0], string | null][] = [
    [{}, null],
    [{ toml: "r:5000/t" }, "r:5000/t"],
    [{ env: "r:5000/e", toml: "r:5000/t" }, "r:5000/e"],
    [{ flag: "r:5000/f", env: "r:5000/e", toml: "r:5000/t" }, "r:5000/f"],
    [{ env: "off", toml: "r:5000/t" }, null],
    [{ env: "", toml: "r:5000/t" }, null],
    [{ flag: "off", env: "r:5000/e" }, null],
    [{ toml: null }, null],
  ];
  for (const [src, want] of table) assertEquals(remoteRef(src), want, JSON.stringify(src));
});

Deno.test("parseRegistryRef: HOST/REPO with a dotted or ported host", () => {
  assertEquals(parseRegistryRef("127.0.0.1:5000/team/cache"), {
    host: "127.0.0.1:5000",
    repo: "team/cache",
  });
  assertEquals(parseRegistryRef("ghcr.io/acme/hd-cache"), {
    host: "ghcr.io",
    repo: "acme/hd-cache",
  });
  for (const bad of ["cache", "team/cache", "ghcr.io/", "ghcr.io/UPPER", "ghcr.io/a b"]) {
    assertEquals(parseRegistryRef(bad), null, bad);
  }
});

Deno.test("signV4: AWS's documented GET Object example", () => {
  const url = new URL("https://examplebucket.s3.amazonaws.com/test.txt");
  const auth = signV4(
    {
      method: "GET",
      url,
      headers: {
        host: "examplebucket.s3.amazonaws.com",
        range: "bytes=0-9",
        "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date": "20130524T000000Z",
      },
      payloadHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    {
      accessKey: "AKIAIOSFODNN7EXAMPLE",
      secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      region: "us-east-1",
    },
    "20130524T000000Z",
  );
  assertEquals(
    auth,
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
});

Deno.test("parseIndex and manifestIndex refuse foreign or malformed entries", () => {
  const step = "ab".repeat(32);
  const id = "cd".repeat(32);
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const good = {
    version: 1,
    step,
    tree: id,
    packs: [{ digest: `sha256:${"0".repeat(64)}`, size: 10, objects: [id], manifests: [] }],
  };
  assertEquals(parseIndex(enc(good), step).tree, id);
  const bads: unknown[] = [
    { ...good, step: "ef".repeat(32) }, // another step's index
    { ...good, version: 2 },
    { ...good, tree: "../x" },
    { ...good, packs: [{ ...good.packs[0], digest: "md5:1" }] },
    { ...good, packs: [{ ...good.packs[0], size: 1e12 }] }, // larger than a pack may be
    { ...good, packs: [{ ...good.packs[0], objects: ["nothex"] }] },
    null,
  ];
  for (const b of bads) assertThrows(() => parseIndex(enc(b), step), /Cannot use/);
  assertThrows(() => parseIndex(new TextEncoder().encode("{"), step), /not JSON/);
  const m = stepManifest(step, id, { digest: `sha256:${"1".repeat(64)}`, size: 5 }, []);
  assertEquals(manifestIndex(m, step).size, 5);
  const other = enc({ ...JSON.parse(new TextDecoder().decode(m)), artifactType: "x" });
  assertThrows(() => manifestIndex(other, step), /not an hd step result/);
  assert(new TextDecoder().decode(m).includes('"application/vnd.oci.empty.v1+json"'));
});

Deno.test("hd.toml [remote] cache: read, checked, unknown keys named", () => {
  const base = `[environment]\nname = "x"\n`;
  assertEquals(
    parseSpec(`${base}[remote]\ncache = "ghcr.io/acme/cache"\n`, "/p/hd.toml").remote,
    { cache: "ghcr.io/acme/cache" },
  );
  assertEquals(
    parseSpec(`${base}[remote]\ncache = "s3://b/p"\n`, "/p/hd.toml").remote?.cache,
    "s3://b/p",
  );
  assertEquals(parseSpec(base, "/p/hd.toml").remote, undefined);
  assertThrows(() => parseSpec(`${base}[remote]\ncache = "nope"\n`, "/p/hd.toml"), /remote\.cache/);
  assertThrows(() => parseSpec(`${base}[remote]\ncahce = "a/b"\n`, "/p/hd.toml"), /cahce/);
});

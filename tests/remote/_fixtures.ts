/**
 * Fixtures of the remote cache tests: a real S3 server (npm `s3rver` 3.7.1, run by Deno's npm:
 * specifier, pinned here and used by nothing but tests), a hostile proxy in front of a real
 * remote, and a small tree in a fresh store.
 * @module
 */
import { freePort } from "../oci/_fixtures.ts";
import { Store } from "../../src/cas/store.ts";
import { ingestTree } from "../../src/scan/ingest.ts";
import { randomBytes } from "../_helpers.ts";

/** The s3rver release the tests run (pinned). */
export const S3RVER = "npm:s3rver@3.7.1";

/** A running s3rver with bucket `bucket`. */
export interface S3Server {
  endpoint: string;
  bucket: string;
  /** Environment a client needs (endpoint and s3rver's fixed keys). */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts s3rver on a free loopback port, data under `dir`, with one bucket. */
export async function startS3(dir: string, bucket = "hd-cache"): Promise<S3Server> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      S3RVER,
      "-d",
      `${dir}/s3-data`,
      "-a",
      "127.0.0.1",
      "-p",
      String(port),
      "-s",
      "--configure-bucket",
      bucket,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`${endpoint}/${bucket}?list-type=2`);
      await r.body?.cancel();
      if (r.ok) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    endpoint,
    bucket,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      AWS_REGION: "us-east-1",
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** How the hostile proxy misbehaves on a blob GET whose digest `which` accepts. */
export type Hostility =
  | "flip"
  | "truncate"
  | "short"
  | "gone"
  | "401"
  | "403"
  | "reject-manifest"
  | null;

/**
 * A proxy on 127.0.0.1 in front of `upstream` (a registry's `host:port`) that passes everything
 * through except what `mode()` says: a flipped byte or a truncated body (with a matching
 * Content-Length) for blobs, a body cut short of its Content-Length, a 404 for a blob the
 * manifest names (only packs are hit, from the second one served on unless `firstGood` is
 * false), 401 without a challenge,
 * 403, or a 400 for manifest PUTs (a registry rejecting the artifact's media type).
 */
export function hostileProxy(
  upstream: string,
  mode: () => Hostility,
  firstGood = true,
): { host: string; close(): Promise<void> } {
  let last: Hostility = null;
  let served = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    const m = mode();
    if (m === "401") return new Response("no", { status: 401 });
    if (m === "403") return new Response("no", { status: 403 });
    if (m === "reject-manifest" && req.method === "PUT" && u.pathname.includes("/manifests/")) {
      return Response.json({
        errors: [{ code: "MANIFEST_INVALID", message: "unknown media type" }],
      }, { status: 400 });
    }
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : new Uint8Array(await req.arrayBuffer());
    const res = await fetch(`http://${upstream}${u.pathname}${u.search}`, {
      method: req.method,
      headers: req.headers,
      body,
      redirect: "manual",
    });
    const headers = new Headers(res.headers);
    const loc = headers.get("location");
    if (loc) headers.set("location", loc.replace(upstream, u.host));
    if (req.method === "GET" && u.pathname.includes("/blobs/") && res.ok && m) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      // only packs ("HDP1"), and not the first one served since the mode changed: the fetch has
      // stored a verified pack when the bad one comes
      const isPack = bytes.length > 4 && new TextDecoder().decode(bytes.subarray(0, 4)) === "HDP1";
      if (m !== last) (last = m, served = 0);
      if (!isPack || (served++ === 0 && firstGood)) {
        return new Response(bytes, { status: res.status, headers });
      }
      if (m === "gone") {
        return Response.json({ errors: [{ code: "BLOB_UNKNOWN" }] }, { status: 404 });
      }
      if (m === "flip") bytes[bytes.length >> 1] ^= 0xff;
      if (m === "truncate" || m === "flip") {
        const out = m === "truncate" ? bytes.slice(0, bytes.length >> 1) : bytes;
        headers.set("content-length", String(out.length));
        return new Response(out, { status: 200, headers });
      }
      if (m === "short") {
        // promises the whole length, sends half, then ends the body
        const half = bytes.slice(0, bytes.length >> 1);
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(half);
              c.error(new Error("cut"));
            },
          }),
          { status: 200, headers },
        );
      }
    }
    return new Response(res.body, { status: res.status, headers });
  });
  return {
    host: `127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    close: () => server.shutdown(),
  };
}

/**
 * A store at `root` with a tree of a few files (one of `big` random bytes, chunked under a
 * manifest); returns the store and the tree root.
 */
export function storeWithTree(
  root: string,
  files: Record<string, string | Uint8Array> = {},
  big = 3 << 20,
): { store: Store; tree: string; dir: string } {
  const store = Store.open(`${root}/store`, { create: true });
  const dir = `${root}/tree`;
  Deno.mkdirSync(`${dir}/sub`, { recursive: true });
  Deno.writeFileSync(`${dir}/big.bin`, randomBytes(big, 7));
  Deno.writeTextFileSync(`${dir}/sub/a.txt`, "hello\n");
  for (const [p, c] of Object.entries(files)) {
    if (typeof c === "string") Deno.writeTextFileSync(`${dir}/${p}`, c);
    else Deno.writeFileSync(`${dir}/${p}`, c);
  }
  const tree = ingestTree(store, dir).root;
  return { store, tree, dir };
}

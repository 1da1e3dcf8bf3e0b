/**
 * The S3-compatible backend of the remote cache (`s3://BUCKET/PREFIX`): the same blobs and step
 * manifests as the registry backend, as objects `PREFIX/blobs/sha256/<hex>` and
 * `PREFIX/steps/step-<hash>`. Blobs are written with `If-None-Match: *` (a conditional PUT: a
 * blob already there is never rewritten; 412 means someone else wrote it first).
 *
 * Requests are signed with AWS Signature V4, written here (about 40 lines over node:crypto's
 * HMAC and SHA-256) rather than pulling in an SDK: the algorithm is small and stable, and the
 * SDKs are megabytes of code for the five calls hd makes. Settings come from the usual AWS
 * variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`
 * (default us-east-1) and `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (default AWS; path-style
 * requests, so MinIO, Ceph, R2 and s3rver work).
 *
 * @example
 * ```ts
 * import { S3Backend, signV4 } from "./s3.ts";
 * const b = new S3Backend("s3://bucket/hd");
 * console.log(b.describe);
 * ```
 * @module
 */
import { createRequire } from "node:module";

// node:crypto loads on first use (~15 ms of evaluation): every `hd up` imports this module
let cryptoMod: typeof import("node:crypto") | undefined;
const crypto = () => cryptoMod ??= createRequire(import.meta.url)("node:crypto");
const createHash: typeof import("node:crypto").createHash = (...a) => crypto().createHash(...a);
const createHmac: typeof import("node:crypto").createHmac = (...a) => crypto().createHmac(...a);
import { readCapped, refuseUrl, sha256Digest } from "../oci/registry.ts";
import { HdError } from "../sys/errors.ts";
import type { Backend } from "./backend.ts";

const hex = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const hmac = (k: Uint8Array | string, s: string) => createHmac("sha256", k).update(s).digest();

/** RFC 3986 encoding as SigV4 wants it (`/` kept in paths). */
function enc(s: string, slash = false): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  ).replace(slash ? /%2F/g : /$^/, "/");
}

/**
 * The `Authorization` header of a request under AWS Signature V4 (pure: the time is given).
 * `headers` must hold every header that is sent and signed (lower-case names).
 */
export function signV4(
  req: { method: string; url: URL; headers: Record<string, string>; payloadHash: string },
  cred: { accessKey: string; secretKey: string; region: string },
  amzDate: string,
): string {
  const date = amzDate.slice(0, 8);
  const names = Object.keys(req.headers).map((h) => h.toLowerCase()).sort();
  const lower: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) lower[k.toLowerCase()] = v.trim();
  const query = [...req.url.searchParams].map(([k, v]) => [enc(k), enc(v)])
    .sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1)
    .map(([k, v]) => `${k}=${v}`).join("&");
  const canonical = [
    req.method,
    req.url.pathname,
    query,
    names.map((n) => `${n}:${lower[n]}\n`).join(""),
    names.join(";"),
    req.payloadHash,
  ].join("\n");
  const scope = `${date}/${cred.region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${hex(canonical)}`;
  let k = hmac(`AWS4${cred.secretKey}`, date);
  for (const part of [cred.region, "s3", "aws4_request"]) k = hmac(k, part);
  const sig = createHmac("sha256", k).update(toSign).digest("hex");
  return `AWS4-HMAC-SHA256 Credential=${cred.accessKey}/${scope}, SignedHeaders=${
    names.join(";")
  }, Signature=${sig}`;
}

/** A remote cache in an S3-compatible bucket. */
export class S3Backend implements Backend {
  readonly describe: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpoint: URL;
  readonly #cred: { accessKey: string; secretKey: string; region: string; token?: string };

  /** `ref` is `s3://BUCKET[/PREFIX]`; the endpoint and keys come from the environment. */
  constructor(ref: string, env: (k: string) => string | undefined = (k) => Deno.env.get(k)) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(ref);
    if (!m) {
      throw new HdError(
        `Cannot use remote cache "${ref}": not s3://BUCKET/PREFIX`,
        "a bucket name is 3–63 lower-case letters, digits, dots and dashes",
      );
    }
    this.describe = ref;
    this.#bucket = m[1];
    this.#prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
    const ep = env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? "https://s3.amazonaws.com";
    try {
      this.#endpoint = new URL(ep);
    } catch {
      throw new HdError(
        `Cannot use remote cache ${ref}: AWS_ENDPOINT_URL "${ep}" is not a URL`,
        "",
      );
    }
    const why = refuseUrl(this.#endpoint, null, []);
    if (why) throw new HdError(`Cannot use remote cache ${ref}: ${why}`, "use an https endpoint");
    this.#cred = {
      accessKey: env("AWS_ACCESS_KEY_ID") ?? "",
      secretKey: env("AWS_SECRET_ACCESS_KEY") ?? "",
      region: env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? "us-east-1",
      token: env("AWS_SESSION_TOKEN"),
    };
  }

  #key(rel: string): string {
    return this.#prefix ? `${this.#prefix}/${rel}` : rel;
  }

  async #send(
    method: string,
    key: string | null,
    opts: { body?: Uint8Array; headers?: Record<string, string>; query?: Record<string, string> },
    what: string,
  ): Promise<Response> {
    const url = new URL(this.#endpoint);
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/${this.#bucket}${
      key === null ? "/" : "/" + enc(key, true)
    }`;
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const payloadHash = hex(opts.body ?? new Uint8Array(0));
    const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const headers: Record<string, string> = {
      host: url.host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": amzDate,
      ...opts.headers,
    };
    if (this.#cred.token) headers["x-amz-security-token"] = this.#cred.token;
    if (this.#cred.accessKey) {
      headers.authorization = signV4({ method, url, headers, payloadHash }, this.#cred, amzDate);
    }
    delete headers.host;
    try {
      return await fetch(url, {
        method,
        headers,
        body: opts.body as Uint8Array<ArrayBuffer> | undefined,
        redirect: "error",
        signal: AbortSignal.timeout(300_000),
      });
    } catch (e) {
      const err = e as Error & { cause?: { message?: string } };
      throw new HdError(
        `Cannot reach the remote cache ${this.describe} (${what}): ${
          err.cause?.message ?? err.message
        }`,
        `check that ${this.#endpoint.origin} is up (AWS_ENDPOINT_URL) and the network`,
      );
    }
  }

  async #fail(res: Response, what: string): Promise<never> {
    const text = (await res.text().catch(() => "")).slice(0, 2000);
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    throw new HdError(
      `Cannot ${what} in ${this.describe}: HTTP ${res.status}${code ? ` ${code}` : ""}`,
      res.status === 403 || res.status === 401
        ? "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's policy"
        : res.status === 404
        ? "check the bucket name (it must exist)"
        : "the object store answered with an error; try again later",
    );
  }

  async hasBlob(digest: string): Promise<boolean> {
    const key = this.#key(`blobs/${digest.replace(":", "/")}`);
    const res = await this.#send("HEAD", key, {}, "HEAD a blob");
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) await this.#fail(res, `look blob ${digest.slice(0, 19)} up`);
    return true;
  }

  async putBlob(digest: string, bytes: Uint8Array): Promise<"mounted" | "uploaded"> {
    const key = this.#key(`blobs/${digest.replace(":", "/")}`);
    const res = await this.#send("PUT", key, {
      body: bytes,
      headers: { "if-none-match": "*", "content-type": "application/octet-stream" },
    }, "upload a blob");
    await res.body?.cancel();
    if (res.status === 412) return "uploaded"; // someone wrote it first
    if (!res.ok) await this.#fail(res, `upload blob ${digest.slice(0, 19)}`);
    return "uploaded";
  }

  async #get(key: string, max: number, what: string): Promise<Uint8Array | null> {
    const res = await this.#send("GET", key, {}, what);
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    if (!res.ok) await this.#fail(res, what);
    const cl = res.headers.get("content-length");
    const body = await readCapped(res.body, max, (n) =>
      new HdError(
        `Cannot ${what} from ${this.describe}: more than ${max} bytes (${n})`,
        "the remote is misbehaving or hostile",
      ));
    if (cl !== null && Number(cl) !== body.length) {
      throw new HdError(
        `Cannot ${what} from ${this.describe}: got ${body.length} of ${cl} bytes`,
        "the connection was cut short; the step runs here instead",
      );
    }
    return body;
  }

  async getBlob(digest: string, max: number): Promise<Uint8Array> {
    const what = `fetch blob ${digest.slice(0, 19)}`;
    const b = await this.#get(this.#key(`blobs/${digest.replace(":", "/")}`), max, what);
    if (b === null) await this.#fail(new Response(null, { status: 404 }), what);
    if (sha256Digest(b!) !== digest) {
      throw new HdError(
        `Cannot use blob ${digest.slice(0, 19)} from ${this.describe}: its bytes do not match ` +
          `its digest`,
        "the remote holds damaged data; the step runs here instead",
      );
    }
    return b!;
  }

  getStep(step: string): Promise<Uint8Array | null> {
    return this.getTagged(`step-${step}`, `step ${step.slice(0, 12)}`);
  }

  putStep(step: string, manifest: Uint8Array): Promise<void> {
    return this.putTagged(`step-${step}`, manifest, `step ${step.slice(0, 12)}`);
  }

  /** `steps/step-<hash>` for a step, `volumes/volume-…` for a volume's snapshot. */
  #tagKey(tag: string): string {
    return this.#key(`${tag.startsWith("volume-") ? "volumes" : "steps"}/${tag}`);
  }

  getTagged(tag: string, what: string): Promise<Uint8Array | null> {
    return this.#get(this.#tagKey(tag), 4 << 20, `read ${what}`);
  }

  async putTagged(tag: string, manifest: Uint8Array, what: string): Promise<void> {
    const res = await this.#send("PUT", this.#tagKey(tag), {
      body: manifest,
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    }, `write ${what}`);
    if (!res.ok) await this.#fail(res, `write ${what}`);
    await res.body?.cancel();
  }

  async listSteps(): Promise<string[]> {
    return (await this.#list("steps/")).flatMap((k) => /step-([0-9a-f]{64})$/.exec(k)?.[1] ?? []);
  }

  async listVolumes(): Promise<string[]> {
    return (await this.#list("volumes/")).flatMap((k) =>
      /(volume-[a-z0-9._-]+)$/.exec(k)?.[1] ?? []
    );
  }

  /** The keys under `PREFIX/<dir>` (ListObjectsV2, paged). */
  async #list(dir: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const query: Record<string, string> = { "list-type": "2", prefix: this.#key(dir) };
      if (token) query["continuation-token"] = token;
      const res = await this.#send("GET", null, { query }, "list steps");
      if (!res.ok) await this.#fail(res, "list steps");
      const xml = new TextDecoder().decode(
        await readCapped(res.body, 16 << 20, () => new HdError("Cannot list: too large", "")),
      );
      for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) out.push(m[1]);
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
        ? /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ?? null
        : null;
      if (!token) return out;
    }
    return out;
  }
}

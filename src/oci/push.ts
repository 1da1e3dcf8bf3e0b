/**
 * Pushing to a registry (distribution API v2): `HEAD` of a blob, a cross-repository mount, a blob
 * upload (`POST` then one `PUT ?digest=`, the registry checking the digest), a manifest `PUT`.
 * Credentials and auth negotiation as for pulls (bearer tokens with `pull,push` scope, or Basic
 * from `~/.docker/config.json`); every URL the registry points at (an upload `Location`, a token
 * realm) is checked by {@link refuseUrl} like a pull's redirect.
 *
 * @example
 * ```ts
 * import { PushClient } from "./push.ts";
 * const c = new PushClient("127.0.0.1:5000");
 * if (!(await c.hasBlob("app", "sha256:…"))) {
 *   await c.uploadBlob("app", "sha256:…", 3, () => new Blob(["abc"]).stream());
 * }
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { isLoopbackHost } from "./reference.ts";
import { dockerCredentials, parseChallenge, refuseUrl } from "./registry.ts";

/** Options of a {@link PushClient}. */
export interface PushOptions {
  /** Hosts reached over plain http (loopback always is). */
  insecure?: string[];
  /** Docker config.json with credentials. */
  dockerConfig?: string;
}

/** A push client for one registry host. */
export class PushClient {
  /** Host (and port). */
  readonly host: string;
  /** `http` or `https`. */
  readonly scheme: string;
  #opts: PushOptions;
  #auth = new Map<string, string>();
  /** Blob bytes sent so far (bodies of blob uploads). */
  bytesSent = 0;
  /** Blob uploads done (PUTs that completed an upload). */
  blobsSent = 0;

  constructor(host: string, opts: PushOptions = {}) {
    this.host = host;
    this.#opts = opts;
    const insecure = opts.insecure ?? [];
    this.scheme = isLoopbackHost(host) || insecure.includes(host) ||
        insecure.includes(host.replace(/:[0-9]+$/, ""))
      ? "http"
      : "https";
  }

  #url(path: string): URL {
    return new URL(`${this.scheme}://${this.host}/v2/${path}`);
  }

  async #token(res: Response, scopeKey: string): Promise<boolean> {
    const h = res.headers.get("www-authenticate");
    if (!h) return false;
    const { scheme, params } = parseChallenge(h);
    const creds = dockerCredentials(this.host, this.#opts.dockerConfig);
    if (scheme === "basic") {
      if (!creds || this.#auth.has(scopeKey)) return false; // the credentials were refused
      this.#auth.set(scopeKey, "Basic " + btoa(`${creds.username}:${creds.password}`));
      return true;
    }
    if (scheme !== "bearer" || !params.realm) return false;
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new HdError(`Cannot push to ${this.host}: the token service is not a URL`, "");
    }
    const why = refuseUrl(url, this.#url(""), this.#opts.insecure ?? []);
    if (why) throw new HdError(`Cannot push to ${this.host}: token service ${why}`, "");
    if (params.service) url.searchParams.set("service", params.service);
    for (const s of (params.scope ?? scopeKey).split(" ")) url.searchParams.append("scope", s);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = "Basic " + btoa(`${creds.username}:${creds.password}`);
    const tr = await fetch(url, { headers, redirect: "error" });
    if (!tr.ok) {
      await tr.body?.cancel();
      throw new HdError(
        `Cannot get a push token from ${url.origin}: HTTP ${tr.status}`,
        "log in (`docker login` writes ~/.docker/config.json) with push rights",
      );
    }
    const body = await tr.json().catch(() => ({})) as { token?: string; access_token?: string };
    const t = body.token ?? body.access_token;
    if (typeof t !== "string" || !t) return false;
    this.#auth.set(scopeKey, `Bearer ${t}`);
    return true;
  }

  /** One request with auth; `body` is made anew for a retry after a 401. */
  async #send(
    method: string,
    url: URL,
    scope: string,
    headers: Record<string, string> = {},
    body?: () => BodyInit | Promise<BodyInit>,
  ): Promise<Response> {
    const why = refuseUrl(url, null, this.#opts.insecure ?? []);
    if (why) throw new HdError(`Cannot push to ${this.host}: ${why}`, "");
    for (let attempt = 0;; attempt++) {
      const h = { ...headers };
      // credentials go to the registry's own origin only (an upload Location may point elsewhere)
      const a = this.#auth.get(scope);
      if (a && url.origin === this.#url("").origin) h.authorization = a;
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: h,
          body: body ? await body() : undefined,
          redirect: "manual",
        });
      } catch (e) {
        throw new HdError(
          `Cannot push to ${this.scheme}://${this.host}: ${(e as Error).message}`,
          "check that the registry is running and the host and port are right",
        );
      }
      if (res.status === 401 && attempt < 2) {
        await res.body?.cancel();
        // another request (layers go up side by side) may have got a token meanwhile
        const now = this.#auth.get(scope);
        if (attempt === 0 && now !== undefined && now !== a) continue;
        if (await this.#token(res, scope)) continue;
        throw new HdError(
          `Cannot push to ${this.host}: HTTP 401`,
          "log in (`docker login` writes ~/.docker/config.json) with push rights",
        );
      }
      return res;
    }
  }

  #fail(what: string, res: Response, text: string, mediaType?: string): HdError {
    return pushRefusal(`Cannot push ${what} to ${this.host}`, res.status, text, mediaType);
  }

  /** True when repository `repo` has blob `digest`. */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const res = await this.#send(
      "HEAD",
      this.#url(`${repo}/blobs/${digest}`),
      `repository:${repo}:pull,push`,
    );
    await res.body?.cancel();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw this.#fail(`blob ${digest}`, res, "");
  }

  /** Mounts blob `digest` from repository `from` of the same registry; false when refused. */
  async mountBlob(repo: string, digest: string, from: string): Promise<boolean> {
    const url = this.#url(`${repo}/blobs/uploads/`);
    url.searchParams.set("mount", digest);
    url.searchParams.set("from", from);
    const res = await this.#send(
      "POST",
      url,
      `repository:${repo}:pull,push repository:${from}:pull`,
    );
    await res.body?.cancel();
    if (res.status === 201) return true;
    if (res.status === 202) {
      // an upload session was opened instead: close it
      const loc = res.headers.get("location");
      if (loc) {
        const r = await this.#send("DELETE", new URL(loc, url), `repository:${repo}:pull,push`);
        await r.body?.cancel();
      }
    }
    return false;
  }

  /** Uploads a blob of `size` bytes (the registry checks `digest`). */
  async uploadBlob(
    repo: string,
    digest: string,
    size: number,
    open: () =>
      | ReadableStream<Uint8Array>
      | Uint8Array
      | Promise<ReadableStream<Uint8Array> | Uint8Array>,
  ): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    const start = this.#url(`${repo}/blobs/uploads/`);
    const r0 = await this.#send("POST", start, scope);
    const t0 = await r0.text();
    if (r0.status !== 202) throw this.#fail(`blob ${digest}`, r0, t0);
    const loc = r0.headers.get("location");
    if (!loc) throw this.#fail(`blob ${digest}`, r0, "no upload Location");
    const put = new URL(loc, start);
    put.searchParams.set("digest", digest);
    const r1 = await this.#send("PUT", put, scope, {
      "content-type": "application/octet-stream",
      "content-length": String(size),
    }, async () => (await open()) as BodyInit);
    const t1 = await r1.text();
    if (r1.status !== 201) throw this.#fail(`blob ${digest}`, r1, t1);
    this.bytesSent += size;
    this.blobsSent++;
  }

  /** Puts a manifest under `reference` (a tag or its digest). */
  async putManifest(
    repo: string,
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<void> {
    const res = await this.#send(
      "PUT",
      this.#url(`${repo}/manifests/${reference}`),
      `repository:${repo}:pull,push`,
      { "content-type": mediaType },
      () => bytes as BodyInit,
    );
    const t = await res.text();
    if (res.status !== 201 && res.status !== 200) {
      throw this.#fail(`manifest ${reference}`, res, t, mediaType);
    }
  }
}

/**
 * The error for a registry's refusal (`status`, body `text`) of a push: the registry's error code
 * and message on one line (its JSON `errors`, else the body's first 200 characters, whitespace
 * folded), and a hint for the case — credentials for 401/403; for a manifest (`mediaType` given)
 * refused with 415 or a 400 `MANIFEST_INVALID`/`UNSUPPORTED`, that the registry does not take
 * that media type.
 */
export function pushRefusal(
  what: string,
  status: number,
  text: string,
  mediaType?: string,
): HdError {
  let said = text.replace(/\s+/g, " ").trim().slice(0, 200);
  let code = "";
  try {
    const e = (JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] })
      .errors?.[0];
    if (e && typeof e.code === "string") {
      code = e.code;
      said = [e.code, typeof e.message === "string" ? e.message : ""].filter(Boolean).join(": ")
        .replace(/\s+/g, " ").slice(0, 200);
    }
  } catch { /* not the registry's JSON */ }
  const mediaRefused = mediaType !== undefined &&
    (status === 415 || (status === 400 && /^(MANIFEST_INVALID|UNSUPPORTED)$/.test(code)));
  return new HdError(
    `${what}: HTTP ${status}${said ? ` (${said})` : ""}`,
    status === 401 || status === 403
      ? "the registry refused the push: log in with push rights (~/.docker/config.json)"
      : mediaRefused
      ? `the registry does not accept the media type ${mediaType}; push to a registry that ` +
        "takes OCI image manifests, or export to docker-archive:FILE"
      : "the registry refused it; check the repository name",
  );
}

/**
 * A client of the distribution API v2 (Docker Hub, ghcr.io, a local `docker-registry`):
 * manifests and blobs by digest, bearer-token auth negotiated from `WWW-Authenticate` (or Basic),
 * credentials from `~/.docker/config.json` (`auths.<host>.auth` or `username`/`password`).
 * Plain http is used for loopback hosts and for hosts named in `insecure`.
 *
 * @example
 * ```ts
 * import { RegistryClient } from "./registry.ts";
 * const c = new RegistryClient("127.0.0.1:5000");
 * const m = await c.manifest("test", "1");
 * const body = await c.blob("test", m.digest);
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import { HdError } from "../cas/errors.ts";
import { DEFAULT_API_HOST, DEFAULT_DOMAIN, isLoopbackHost } from "./reference.ts";

/** Media types of manifests and indexes hd reads. */
export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(
  ", ",
);

/** Options of a {@link RegistryClient}. */
export interface RegistryOptions {
  /** Hosts to reach over plain http (loopback hosts always are). */
  insecure?: string[];
  /** Path of a Docker config.json holding credentials (default ~/.docker/config.json). */
  dockerConfig?: string;
}

/** A manifest or index as fetched. */
export interface FetchedManifest {
  bytes: Uint8Array;
  mediaType: string;
  /** `sha256:<hex>` of `bytes`. */
  digest: string;
}

/** `sha256:<hex>` of bytes. */
export function sha256Digest(bytes: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** Credentials for `host` from a Docker config.json, or null. */
export function dockerCredentials(
  host: string,
  configPath?: string,
): { username: string; password: string } | null {
  const path = configPath ??
    `${
      Deno.env.get("DOCKER_CONFIG") ?? (Deno.env.get("HOME") ?? "/root") + "/.docker"
    }/config.json`;
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    cfg = JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return null;
  }
  const keys = host === DEFAULT_API_HOST || host === DEFAULT_DOMAIN
    ? ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
    : [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`];
  for (const k of keys) {
    const a = cfg.auths?.[k];
    if (!a) continue;
    if (a.auth) {
      const s = atob(a.auth);
      const i = s.indexOf(":");
      if (i > 0) return { username: s.slice(0, i), password: s.slice(i + 1) };
    }
    if (a.username && a.password) return { username: a.username, password: a.password };
  }
  return null;
}

function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/.exec(h);
  const params: Record<string, string> = {};
  if (!m) return { scheme: "", params };
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  let x: RegExpExecArray | null;
  while ((x = re.exec(m[2])) !== null) params[x[1].toLowerCase()] = x[2] ?? x[3];
  return { scheme: m[1].toLowerCase(), params };
}

/** A distribution-API client for one registry host. */
export class RegistryClient {
  /** Host (and port) of the registry API. */
  readonly host: string;
  /** `http` or `https`. */
  readonly scheme: string;
  #opts: RegistryOptions;
  #tokens = new Map<string, string>();
  #basic: string | null = null;

  constructor(host: string, opts: RegistryOptions = {}) {
    this.host = host;
    this.#opts = opts;
    const insecure = (opts.insecure ?? []).includes(host) ||
      (opts.insecure ?? []).includes(host.replace(/:[0-9]+$/, ""));
    this.scheme = insecure || isLoopbackHost(host) ? "http" : "https";
  }

  #url(path: string): string {
    return `${this.scheme}://${this.host}/v2/${path}`;
  }

  async #authenticate(res: Response, repo: string): Promise<boolean> {
    const h = res.headers.get("www-authenticate");
    await res.body?.cancel();
    if (!h) return false;
    const { scheme, params } = parseChallenge(h);
    const creds = dockerCredentials(this.host, this.#opts.dockerConfig);
    if (scheme === "basic") {
      if (!creds || this.#basic) return false;
      this.#basic = "Basic " + btoa(`${creds.username}:${creds.password}`);
      return true;
    }
    if (scheme !== "bearer" || !params.realm) return false;
    const scope = params.scope ?? `repository:${repo}:pull`;
    if (this.#tokens.has(scope)) return false; // the token we had was refused
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = "Basic " + btoa(`${creds.username}:${creds.password}`);
    let tr: Response;
    try {
      tr = await fetch(url, { headers });
    } catch (e) {
      throw new HdError(
        `Cannot get a token from ${url.origin}: ${(e as Error).message}`,
        "check the network and the registry's auth service",
      );
    }
    if (!tr.ok) {
      await tr.body?.cancel();
      throw new HdError(
        `Cannot get a token from ${url.origin} for ${scope}: HTTP ${tr.status}`,
        creds
          ? "check the credentials in ~/.docker/config.json"
          : "log in (`docker login` writes ~/.docker/config.json) if the image is private",
      );
    }
    const body = await tr.json() as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) return false;
    this.#tokens.set(scope, token);
    this.#tokens.set(`repository:${repo}:pull`, token);
    return true;
  }

  async #get(
    path: string,
    repo: string,
    headers: Record<string, string>,
    what: string,
  ): Promise<Response> {
    let busy = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const h: Record<string, string> = { ...headers };
      const token = this.#tokens.get(`repository:${repo}:pull`);
      if (token) h.authorization = `Bearer ${token}`;
      else if (this.#basic) h.authorization = this.#basic;
      let res: Response;
      try {
        res = await fetch(this.#url(path), { headers: h, redirect: "manual" });
        // Blobs are often redirected to a CDN or object store: follow without our credentials
        // when the redirect leaves the registry's origin (S3 refuses a second auth mechanism).
        for (let hops = 0; hops < 5 && res.status >= 300 && res.status < 400; hops++) {
          const loc = res.headers.get("location");
          await res.body?.cancel();
          if (!loc) break;
          const next = new URL(loc, res.url || this.#url(path));
          const same = next.origin === new URL(this.#url(path)).origin;
          res = await fetch(next, { headers: same ? h : {}, redirect: "manual" });
        }
      } catch (e) {
        const err = e as Error & { cause?: { message?: string } };
        const why = err.cause?.message ? `${err.message} (${err.cause.message})` : err.message;
        throw new HdError(
          `Cannot fetch ${what} from ${this.scheme}://${this.host}: ${why}`,
          this.host === DEFAULT_API_HOST
            ? "check the network: Docker Hub is served by registry-1.docker.io over https"
            : this.scheme === "https"
            ? "check the host name and network; for a plain-http registry pass " +
              `--insecure-registry ${this.host}`
            : "check that the registry is running and the host and port are right",
        );
      }
      if (res.status === 401 && attempt < 2 && await this.#authenticate(res, repo)) continue;
      if ((res.status === 429 || res.status >= 502) && busy++ < 2) {
        // Rate limited or a proxy hiccup: wait (Retry-After when it is short) and try again.
        await res.body?.cancel();
        const after = Number(res.headers.get("retry-after"));
        const wait = Number.isFinite(after) && after > 0 && after <= 10 ? after * 1000 : 500 * busy;
        await new Promise((r) => setTimeout(r, wait));
        attempt--;
        continue;
      }
      if (res.ok) return res;
      await res.body?.cancel();
      const hint = res.status === 404
        ? "check the repository name and tag (`hd pull` names like docker pull does)"
        : res.status === 401 || res.status === 403
        ? "the registry refused access: log in (~/.docker/config.json) or check the name"
        : "the registry answered with an error; try again later";
      throw new HdError(`Cannot fetch ${what} from ${this.host}: HTTP ${res.status}`, hint);
    }
    throw new HdError(`Cannot fetch ${what} from ${this.host}: authentication failed`, "");
  }

  /** Fetches a manifest or index by tag or digest, and checks a digest reference. */
  async manifest(repo: string, reference: string): Promise<FetchedManifest> {
    const res = await this.#get(
      `${repo}/manifests/${reference}`,
      repo,
      { accept: ACCEPT },
      `manifest ${repo}:${reference}`,
    );
    const bytes = new Uint8Array(await res.arrayBuffer());
    const digest = sha256Digest(bytes);
    if (reference.startsWith("sha256:") && reference !== digest) {
      throw new HdError(
        `Cannot use manifest ${repo}@${reference}: its bytes hash to ${digest}`,
        "the registry served something else than the digest names",
      );
    }
    let mediaType = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    try {
      const parsed = JSON.parse(new TextDecoder().decode(bytes));
      if (typeof parsed.mediaType === "string") mediaType = parsed.mediaType;
      else if (parsed.manifests) mediaType = MEDIA.ociIndex;
      else if (parsed.layers) mediaType = MEDIA.ociManifest;
    } catch { /* reported by the caller */ }
    return { bytes, mediaType, digest };
  }

  /** Opens a blob as a stream (the caller checks its digest as it reads). */
  async blob(repo: string, digest: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#get(`${repo}/blobs/${digest}`, repo, {}, `blob ${digest}`);
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }
}

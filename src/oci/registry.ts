/**
 * A client of the distribution API v2 (Docker Hub, ghcr.io, a local `docker-registry`):
 * manifests and blobs by digest, bearer-token auth negotiated from `WWW-Authenticate` (or Basic),
 * credentials from `~/.docker/config.json` (`auths.<host>.auth` or `username`/`password`).
 * Plain http is used for loopback hosts and for hosts named in `insecure`.
 *
 * A registry is not trusted: every URL hd fetches (the API, each redirect, a bearer realm) must be
 * http(s) — plain http only to a loopback host or one named in `insecure`, and never after https
 * except to loopback ({@link refuseUrl}); redirects are followed by hand, at most
 * {@link MAX_REDIRECTS}; manifests, indexes and token responses are capped while they stream
 * ({@link MAX_MANIFEST_BYTES}, {@link MAX_TOKEN_BYTES}); every request has a connect, an idle and a
 * total timeout ({@link Timeouts}); a body shorter than its Content-Length is reported as such.
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
import { createRequire } from "node:module";

// node:crypto loads on first use (~15 ms of evaluation): every `hd up` imports this module through
// the remote cache, and only a pull or a push hashes anything
let cryptoMod: typeof import("node:crypto") | undefined;
const createHash: typeof import("node:crypto").createHash = (...a) =>
  (cryptoMod ??= createRequire(import.meta.url)("node:crypto")).createHash(...a);
import { HdError } from "../sys/errors.ts";
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

/** Largest manifest or index hd reads (containerd's limit too). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Largest token response of a bearer realm. */
export const MAX_TOKEN_BYTES = 1 << 20;
/** Largest image config hd reads. */
export const MAX_CONFIG_BYTES = 16 << 20;
/** Most redirects followed for one request. */
export const MAX_REDIRECTS = 10;

/** Time limits of the requests of a pull, in milliseconds (0 = none). */
export interface Timeouts {
  /** From sending a request to its response headers (connecting included). */
  connectMs: number;
  /** Longest wait for the next byte of a body. */
  idleMs: number;
  /** The whole pull: every request and body of one client. */
  totalMs: number;
}

/** Defaults of {@link Timeouts}: 30 s to connect, 60 s without a byte, 1 h in all. */
export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 30_000, idleMs: 60_000, totalMs: 3_600_000 };

/** Options of a {@link RegistryClient}. */
export interface RegistryOptions {
  /** Hosts to reach over plain http (loopback hosts always are). */
  insecure?: string[];
  /** Path of a Docker config.json holding credentials (default ~/.docker/config.json). */
  dockerConfig?: string;
  /** Time limits (each defaults to {@link DEFAULT_TIMEOUTS}). */
  timeouts?: Partial<Timeouts>;
  /** What is being pulled, for messages (`Cannot pull <source>: …`); default the host. */
  source?: string;
}

function hostOf(u: URL): string {
  return u.host;
}

function isInsecure(host: string, insecure: readonly string[]): boolean {
  return insecure.includes(host) || insecure.includes(host.replace(/:[0-9]+$/, ""));
}

/**
 * Why hd refuses to fetch `to` (reached from `from`, null for the first request), or null when it
 * may. Only http and https are fetched; plain http only to a loopback host or one named in
 * `insecure`; and never http after https (a downgrade), except to a loopback host.
 */
export function refuseUrl(to: URL, from: URL | null, insecure: readonly string[]): string | null {
  if (to.protocol !== "https:" && to.protocol !== "http:") {
    return `${to.protocol.replace(/:$/, "")}: URLs are not fetched (only http and https)`;
  }
  if (to.username || to.password) return "URLs with credentials in them are not fetched";
  if (to.protocol === "https:") return null;
  const host = hostOf(to);
  if (isLoopbackHost(host)) return null;
  if (from?.protocol === "https:") return `it downgrades https to plain http (${to.origin})`;
  if (!isInsecure(host, insecure)) {
    return `plain http to ${host} is not allowed (only loopback or --insecure-registry hosts)`;
  }
  return null;
}

/** Reads a whole body, refusing it as soon as it passes `max` bytes. */
export async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  tooLarge: (n: number) => Error,
): Promise<Uint8Array> {
  if (!body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = body.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > max) throw tooLarge(n);
      parts.push(value);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
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

/** A URL for a message: no query (tokens), at most 120 characters. */
function shortUrl(u: URL): string {
  const s = `${u.protocol}//${u.host}${u.pathname}`;
  return s.length > 120 ? s.slice(0, 117) + "…" : s;
}

/** The scheme and parameters of a `WWW-Authenticate` challenge (`Bearer realm="…",service="…"`). */
export function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
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
  /** The time limits in force. */
  readonly timeouts: Timeouts;
  #opts: RegistryOptions;
  #tokens = new Map<string, string>();
  #basic: string | null = null;
  #source: string;
  /** performance.now() after which nothing more is fetched (Infinity: no total limit). */
  #deadline: number;

  constructor(host: string, opts: RegistryOptions = {}) {
    this.host = host;
    this.#opts = opts;
    this.#source = opts.source ?? host;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.#deadline = this.timeouts.totalMs > 0
      ? performance.now() + this.timeouts.totalMs
      : Infinity;
    const insecure = isInsecure(host, opts.insecure ?? []);
    this.scheme = insecure || isLoopbackHost(host) ? "http" : "https";
  }

  /**
   * One request, redirects followed by hand (each checked by {@link refuseUrl}; credentials kept
   * only within the first origin), under the connect and total timeouts. The body comes back
   * wrapped: idle and total timeouts, and a short body (fewer bytes than Content-Length) reported.
   */
  async #request(
    first: URL,
    from: URL | null,
    headers: Record<string, string>,
    what: string,
    init: { method?: string; body?: Uint8Array } = {},
  ): Promise<{ res: Response; url: URL; body: ReadableStream<Uint8Array> }> {
    const insecure = this.#opts.insecure ?? [];
    let url = first;
    let prev = from;
    for (let hops = 0;; hops++) {
      const why = refuseUrl(url, prev, insecure);
      if (why !== null) {
        throw new HdError(
          `Cannot pull ${this.#source}: ${
            hops > 0 ? "the registry redirects" : "the registry points"
          } ${what} to ${shortUrl(url)}: ${why}`,
          "the registry is misconfigured or hostile; hd fetches only http(s) URLs it may trust",
        );
      }
      const ctl = new AbortController();
      const res = await this.#timed(
        ctl,
        this.timeouts.connectMs,
        "connect",
        what,
        () =>
          fetch(url, {
            method: init.method ?? "GET",
            body: init.body as Uint8Array<ArrayBuffer> | undefined,
            headers: url.origin === first.origin ? headers : {},
            redirect: "manual",
            signal: ctl.signal,
          }),
      );
      if (res.status < 300 || res.status >= 400 || res.status === 304) {
        return { res, url, body: this.#guard(res, ctl, what) };
      }
      const loc = res.headers.get("location");
      await res.body?.cancel();
      if (!loc) return { res, url, body: new ReadableStream({ start: (c) => c.close() }) };
      if (hops >= MAX_REDIRECTS) {
        throw new HdError(
          `Cannot pull ${this.#source}: the registry redirects ${what} more than ` +
            `${MAX_REDIRECTS} times`,
          "the registry is misconfigured (a redirect loop?) or hostile",
        );
      }
      prev = url;
      try {
        url = new URL(loc, url);
      } catch {
        throw new HdError(
          `Cannot pull ${this.#source}: the registry redirects ${what} to "${
            loc.slice(0, 200)
          }", which is not a URL`,
          "the registry is misconfigured or hostile",
        );
      }
    }
  }

  /** Runs `op` (which uses `ctl`), aborting it after `ms` or at the deadline, whichever is first. */
  async #timed<T>(
    ctl: AbortController,
    ms: number,
    kind: "connect" | "idle",
    what: string,
    op: () => Promise<T>,
  ): Promise<T> {
    const left = this.#deadline - performance.now();
    const wait = Math.min(ms > 0 ? ms : Infinity, left);
    const total = left <= (ms > 0 ? ms : Infinity);
    if (wait <= 0) throw this.#timeout("total", what);
    let fired = false;
    const timer = Number.isFinite(wait)
      ? setTimeout(() => {
        fired = true;
        ctl.abort();
      }, wait)
      : undefined;
    try {
      return await op();
    } catch (e) {
      if (fired) throw this.#timeout(total ? "total" : kind, what);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  #timeout(kind: "connect" | "idle" | "total", what: string): HdError {
    const t = this.timeouts;
    const [why, flag, env] = kind === "connect"
      ? [
        `no answer for ${what} within ${t.connectMs / 1000} s`,
        "connect-timeout",
        "CONNECT_TIMEOUT",
      ]
      : kind === "idle"
      ? [
        `the registry sent nothing for ${t.idleMs / 1000} s while sending ${what}`,
        "idle-timeout",
        "IDLE_TIMEOUT",
      ]
      : [`the pull took longer than ${t.totalMs / 1000} s (at ${what})`, "timeout", "TIMEOUT"];
    return new HdError(
      `Cannot pull ${this.#source}: ${why}`,
      `the registry or the network stalls; try again, or raise --${flag} SECONDS ` +
        `(HD_PULL_${env} for commands that pull a base image)`,
    );
  }

  /** The body of `res`, with idle/total timeouts and a Content-Length check. */
  #guard(res: Response, ctl: AbortController, what: string): ReadableStream<Uint8Array> {
    const cl = res.headers.get("content-length");
    const expected = cl !== null && /^\d+$/.test(cl) ? Number(cl) : null;
    if (!res.body) return new ReadableStream({ start: (c) => c.close() });
    const reader = res.body.getReader();
    let got = 0;
    const short = (cause: string) =>
      new HdError(
        `Cannot pull ${this.#source}: the registry sent ${got} of ${expected} bytes for ${what}` +
          cause,
        "the connection was cut short (a flaky network or registry); pull again",
      );
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await this.#timed(ctl, this.timeouts.idleMs, "idle", what, () => reader.read());
        } catch (e) {
          if (e instanceof HdError) throw e;
          if (expected !== null && got < expected) throw short("");
          const err = e as Error & { cause?: { message?: string } };
          throw new HdError(
            `Cannot pull ${this.#source}: the connection broke after ${got} bytes of ${what} ` +
              `(${err.cause?.message ?? err.message})`,
            "a flaky network or registry; pull again",
          );
        }
        if (r.done) {
          if (expected !== null && got !== expected) throw short("");
          c.close();
          return;
        }
        got += r.value.length;
        if (expected !== null && got > expected) {
          throw new HdError(
            `Cannot pull ${this.#source}: the registry sent more than the ${expected} bytes its ` +
              `Content-Length says for ${what}`,
            "the registry is misbehaving or hostile",
          );
        }
        c.enqueue(r.value);
      },
      cancel: async (reason) => {
        await reader.cancel(reason).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  #url(path: string): string {
    return `${this.scheme}://${this.host}/v2/${path}`;
  }

  async #authenticate(res: Response, repo: string, push = false): Promise<boolean> {
    const h = res.headers.get("www-authenticate");
    if (!h) return false;
    const { scheme, params } = parseChallenge(h);
    const creds = dockerCredentials(this.host, this.#opts.dockerConfig);
    if (scheme === "basic") {
      if (!creds || this.#basic) return false;
      this.#basic = "Basic " + btoa(`${creds.username}:${creds.password}`);
      return true;
    }
    if (scheme !== "bearer" || !params.realm) return false;
    const scope = params.scope ?? `repository:${repo}:${push ? "pull,push" : "pull"}`;
    if (this.#tokens.has(scope)) return false; // the token we had was refused
    let url: URL;
    try {
      url = new URL(params.realm);
    } catch {
      throw new HdError(
        `Cannot pull ${this.#source}: the registry names the token service "${
          params.realm.slice(0, 200)
        }", which is not a URL`,
        "the registry is misconfigured or hostile",
      );
    }
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = "Basic " + btoa(`${creds.username}:${creds.password}`);
    // The realm is where the registry sends us (with our credentials): checked like a redirect.
    const tr = await this.#request(url, new URL(this.#url("")), headers, `a token for ${scope}`);
    if (!tr.res.ok) {
      await tr.body.cancel();
      throw new HdError(
        `Cannot get a token from ${tr.url.origin} for ${scope}: HTTP ${tr.res.status}`,
        creds
          ? "check the credentials in ~/.docker/config.json"
          : "log in (`docker login` writes ~/.docker/config.json) if the image is private",
      );
    }
    const raw = await readCapped(tr.body, MAX_TOKEN_BYTES, (n) =>
      new HdError(
        `Cannot pull ${this.#source}: the token response of ${tr.url.origin} is larger than ` +
          `${MAX_TOKEN_BYTES} bytes (${n} so far)`,
        "the registry's auth service is misbehaving or hostile",
      ));
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse(new TextDecoder().decode(raw));
    } catch {
      throw new HdError(
        `Cannot get a token from ${tr.url.origin} for ${scope}: the answer is not JSON`,
        "the registry's auth service is misbehaving",
      );
    }
    if (typeof body !== "object" || body === null) return false;
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token) return false;
    this.#tokens.set(scope, token);
    this.#tokens.set(`repository:${repo}:${push ? "push" : "pull"}`, token);
    return true;
  }

  async #get(
    path: string,
    repo: string,
    headers: Record<string, string>,
    what: string,
    init: { method?: string; body?: Uint8Array; pass?: number[]; push?: boolean } = {},
  ): Promise<{ res: Response; body: ReadableStream<Uint8Array> }> {
    let busy = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const h: Record<string, string> = { ...headers };
      const token = this.#tokens.get(`repository:${repo}:${init.push ? "push" : "pull"}`) ??
        this.#tokens.get(`repository:${repo}:pull`);
      if (token) h.authorization = `Bearer ${token}`;
      else if (this.#basic) h.authorization = this.#basic;
      let got: { res: Response; body: ReadableStream<Uint8Array> };
      try {
        // Blobs are often redirected to a CDN or object store: followed without our credentials
        // when the redirect leaves the registry's origin (S3 refuses a second auth mechanism).
        const url = /^https?:/.test(path) ? new URL(path) : new URL(this.#url(path));
        got = await this.#request(url, null, h, what, init);
      } catch (e) {
        if (e instanceof HdError) throw e;
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
      const res = got.res;
      if (res.status === 401 && attempt < 2) {
        await got.body.cancel();
        if (await this.#authenticate(res, repo, init.push === true)) continue;
      }
      if ((res.status === 429 || res.status >= 502) && busy++ < 2) {
        // Rate limited or a proxy hiccup: wait (Retry-After when it is short) and try again.
        await got.body.cancel();
        const after = Number(res.headers.get("retry-after"));
        const wait = Number.isFinite(after) && after > 0 && after <= 10 ? after * 1000 : 500 * busy;
        await new Promise((r) => setTimeout(r, wait));
        attempt--;
        continue;
      }
      if (res.ok || init.pass?.includes(res.status)) return got;
      const method = init.method ?? "GET";
      if (method !== "GET" && method !== "HEAD") {
        // a refused write: the registry's own error code says why (MANIFEST_INVALID, DENIED…)
        const raw = await readCapped(got.body, 64 << 10, () => new Error("large")).catch(() =>
          new Uint8Array(0)
        );
        let why = "";
        try {
          const e = JSON.parse(new TextDecoder().decode(raw)).errors?.[0];
          if (e?.code) {
            why = ` (${String(e.code).slice(0, 60)}: ${String(e.message).slice(0, 120)})`;
          }
        } catch { /* not the registry's JSON */ }
        throw new HdError(
          `Cannot push ${what} to ${this.host}: HTTP ${res.status}${why}`,
          res.status === 401 || res.status === 403
            ? "the registry refused the push: log in with push rights (~/.docker/config.json)"
            : res.status === 400 || res.status === 415
            ? "the registry refuses this upload (a registry without OCI 1.1 artifacts?); " +
              "use another registry or an s3:// remote"
            : "the registry answered with an error; try again later",
        );
      }
      await got.body.cancel();
      const hint = res.status === 404
        ? "check the repository name and tag (`hd pull` names like docker pull does)"
        : res.status === 401 || res.status === 403
        ? "the registry refused access: log in (~/.docker/config.json) or check the name"
        : res.status >= 300 && res.status < 400
        ? "the registry redirected without saying where (no Location)"
        : "the registry answered with an error; try again later";
      throw new HdError(`Cannot fetch ${what} from ${this.host}: HTTP ${res.status}`, hint);
    }
    throw new HdError(`Cannot fetch ${what} from ${this.host}: authentication failed`, "");
  }

  /** Fetches a manifest or index by tag or digest, and checks a digest reference. */
  async manifest(repo: string, reference: string): Promise<FetchedManifest> {
    const what = `manifest ${repo}${reference.startsWith("sha256:") ? "@" : ":"}${reference}`;
    const { res, body } = await this.#get(
      `${repo}/manifests/${reference}`,
      repo,
      { accept: ACCEPT },
      what,
    );
    const tooLarge = () =>
      new HdError(
        `Cannot pull ${this.#source}: the ${what} is larger than ${MAX_MANIFEST_BYTES} bytes`,
        "manifests and indexes are small JSON documents; the registry is misbehaving or hostile",
      );
    const cl = Number(res.headers.get("content-length") ?? "0");
    if (cl > MAX_MANIFEST_BYTES) {
      await body.cancel();
      throw tooLarge();
    }
    const bytes = await readCapped(body, MAX_MANIFEST_BYTES, tooLarge);
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
    const { body } = await this.#get(`${repo}/blobs/${digest}`, repo, {}, `blob ${digest}`);
    return body;
  }

  /**
   * One request of the distribution API (`path` under /v2/, or an absolute upload URL the
   * registry gave) with the client's auth, redirects, timeouts and retries. Statuses in `pass`
   * come back like successes (a HEAD's 404); any other failure throws `Cannot <what>: HTTP n`.
   * `push` asks the token service for push access.
   */
  send(
    method: string,
    path: string,
    repo: string,
    opts: {
      headers?: Record<string, string>;
      body?: Uint8Array;
      what?: string;
      pass?: number[];
      push?: boolean;
    } = {},
  ): Promise<{ res: Response; body: ReadableStream<Uint8Array> }> {
    return this.#get(path, repo, opts.headers ?? {}, opts.what ?? `${method} ${path}`, {
      method,
      body: opts.body,
      pass: opts.pass,
      push: opts.push,
    });
  }

  /** The origin requests go to (`http://127.0.0.1:5000`). */
  get origin(): string {
    return `${this.scheme}://${this.host}`;
  }
}

/**
 * The OCI registry backend of the remote cache: blobs under the repository, a step result as an
 * OCI 1.1 artifact manifest tagged `step-<hash>`, looked up by tag (the referrers API is missing
 * on Docker Hub, GHCR and Debian's registry). Everything goes through hd's registry client
 * (src/oci/registry.ts): its auth (~/.docker/config.json, bearer or basic), URL checks, caps and
 * timeouts.
 *
 * @example
 * ```ts
 * import { RegistryBackend } from "./registry.ts";
 * const b = new RegistryBackend("127.0.0.1:5000/team/cache");
 * console.log(await b.getStep("ab".repeat(32))); // null: not pushed
 * ```
 * @module
 */
import { MEDIA, readCapped, RegistryClient, sha256Digest } from "../oci/registry.ts";
import { HdError } from "../sys/errors.ts";
import type { Backend } from "./backend.ts";

/** Parses `HOST[:PORT]/REPO` (the host must have a dot, a colon or be localhost). */
export function parseRegistryRef(ref: string): { host: string; repo: string } | null {
  const i = ref.indexOf("/");
  if (i <= 0) return null;
  const host = ref.slice(0, i);
  const repo = ref.slice(i + 1).replace(/\/+$/, "");
  if (!/[.:]/.test(host) && host !== "localhost") return null;
  if (
    !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(
      repo,
    )
  ) {
    return null;
  }
  return { host, repo };
}

/** A remote cache in an OCI registry repository. */
export class RegistryBackend implements Backend {
  readonly describe: string;
  readonly #c: RegistryClient;
  readonly #repo: string;

  /** `ref` is `HOST[:PORT]/REPO`; `insecure` as for pulls. */
  constructor(ref: string, opts: { insecure?: string[]; dockerConfig?: string } = {}) {
    const p = parseRegistryRef(ref);
    if (!p) {
      throw new HdError(
        `Cannot use remote cache "${ref}": not REGISTRY/REPOSITORY or s3://BUCKET/PREFIX`,
        'write it like "registry.example.com/team/hd-cache" or "s3://bucket/prefix"',
      );
    }
    this.describe = ref;
    this.#repo = p.repo;
    this.#c = new RegistryClient(p.host, {
      insecure: opts.insecure,
      dockerConfig: opts.dockerConfig,
      source: `the remote cache ${ref}`,
      // a lookup stands between an edit and its step: a registry that does not answer in 10 s
      // is taken as down (hd up then runs the step)
      timeouts: { connectMs: 10_000, totalMs: 0 },
    });
  }

  async hasBlob(digest: string): Promise<boolean> {
    const { res, body } = await this.#c.send("HEAD", `${this.#repo}/blobs/${digest}`, this.#repo, {
      pass: [404],
      what: `blob ${digest.slice(0, 19)}`,
      push: true,
    });
    await body.cancel();
    return res.status === 200;
  }

  async putBlob(
    digest: string,
    bytes: Uint8Array,
    mountFrom?: string,
  ): Promise<"mounted" | "uploaded"> {
    const what = `upload of blob ${digest.slice(0, 19)} to ${this.describe}`;
    const mount = mountFrom ? `?mount=${digest}&from=${encodeURIComponent(mountFrom)}` : "";
    const start = await this.#c.send("POST", `${this.#repo}/blobs/uploads/${mount}`, this.#repo, {
      what,
      push: true,
      headers: { "content-length": "0" },
    });
    await start.body.cancel();
    const loc = start.res.headers.get("location");
    if (start.res.status === 201) return "mounted"; // mounted from the other repository
    if (!loc) {
      throw new HdError(
        `Cannot push to ${this.describe}: the registry started an upload without a Location`,
        "the registry is misconfigured",
      );
    }
    const url = new URL(loc, this.#c.origin + "/");
    url.searchParams.set("digest", digest);
    const put = await this.#c.send("PUT", url.toString(), this.#repo, {
      what,
      push: true,
      body: bytes,
      headers: { "content-type": "application/octet-stream" },
    });
    await put.body.cancel();
    return "uploaded";
  }

  /** The registry host (for cross-repo mounts between remotes of the same registry). */
  get host(): string {
    return this.#c.host;
  }

  async getBlob(digest: string, max: number): Promise<Uint8Array> {
    const { res, body } = await this.#c.send("GET", `${this.#repo}/blobs/${digest}`, this.#repo, {
      pass: [404],
      what: `blob ${digest.slice(0, 19)}`,
    });
    if (res.status === 404) {
      await body.cancel();
      throw new HdError(
        `Cannot fetch blob ${digest.slice(0, 19)} from ${this.describe}: HTTP 404, the registry ` +
          `no longer has it`,
        "the registry's gc or a retention policy removed it; push the step again from a machine " +
          "that has it (`hd cache push`)",
      );
    }
    const bytes = await readCapped(body, max, (n) =>
      new HdError(
        `Cannot fetch blob ${
          digest.slice(0, 19)
        } from ${this.describe}: more than ${max} bytes (${n})`,
        "the remote is misbehaving or hostile",
      ));
    if (sha256Digest(bytes) !== digest) {
      throw new HdError(
        `Cannot use blob ${digest.slice(0, 19)} from ${this.describe}: its bytes do not match ` +
          `its digest`,
        "the remote holds damaged data; the step runs here instead",
      );
    }
    return bytes;
  }

  getStep(step: string): Promise<Uint8Array | null> {
    return this.getTagged(`step-${step}`, `the cache entry of step ${step.slice(0, 12)}`);
  }

  putStep(step: string, manifest: Uint8Array): Promise<void> {
    return this.putTagged(
      `step-${step}`,
      manifest,
      `the cache entry of step ${step.slice(0, 12)} (an OCI artifact)`,
    );
  }

  async getTagged(tag: string, what: string): Promise<Uint8Array | null> {
    const { res, body } = await this.#c.send(
      "GET",
      `${this.#repo}/manifests/${tag}`,
      this.#repo,
      { pass: [404], headers: { accept: MEDIA.ociManifest }, what },
    );
    if (res.status === 404) {
      await body.cancel();
      return null;
    }
    return await readCapped(body, 4 << 20, () =>
      new HdError(
        `Cannot read ${what}: larger than 4 MiB`,
        "the remote is misbehaving or hostile",
      ));
  }

  async putTagged(tag: string, manifest: Uint8Array, what: string): Promise<void> {
    const empty = new TextEncoder().encode("{}");
    const ed = sha256Digest(empty);
    if (!await this.hasBlob(ed)) await this.putBlob(ed, empty);
    const r = await this.#c.send("PUT", `${this.#repo}/manifests/${tag}`, this.#repo, {
      what,
      push: true,
      body: manifest,
      headers: { "content-type": MEDIA.ociManifest },
    });
    await r.body.cancel();
  }

  async listSteps(): Promise<string[]> {
    return (await this.#tags()).flatMap((t) => /^step-([0-9a-f]{64})$/.exec(t)?.[1] ?? []);
  }

  async listVolumes(): Promise<string[]> {
    return (await this.#tags()).filter((t) => /^volume-[a-z0-9._-]+$/.test(t));
  }

  /** Every tag of the repository (paged). */
  async #tags(): Promise<string[]> {
    const out: string[] = [];
    let path = `${this.#repo}/tags/list?n=1000`;
    for (let page = 0; page < 100; page++) {
      const { res, body } = await this.#c.send("GET", path, this.#repo, {
        pass: [404],
        what: "the tag list",
      });
      if (res.status === 404) {
        await body.cancel();
        return out;
      }
      const raw = await readCapped(
        body,
        16 << 20,
        () => new HdError(`Cannot list ${this.describe}: the tag list is too large`, ""),
      );
      const j = JSON.parse(new TextDecoder().decode(raw)) as { tags?: string[] | null };
      for (const t of j.tags ?? []) if (typeof t === "string") out.push(t);
      const link = res.headers.get("link");
      const next = link ? /<([^>]+)>/.exec(link)?.[1] : undefined;
      if (!next) return out;
      path = next.replace(/^\/v2\//, "");
    }
    return out;
  }
}

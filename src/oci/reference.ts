/**
 * Image references as Docker and OCI tools read them: `node:20`, `library/node`,
 * `ghcr.io/o/r:tag`, `localhost:5000/x@sha256:…`. A reference without a registry names Docker Hub
 * (`docker.io`, served by `registry-1.docker.io`), a one-word Hub name lives under `library/`,
 * and a reference with neither tag nor digest means `:latest`.
 *
 * @example
 * ```ts
 * import { parseReference } from "./reference.ts";
 * const r = parseReference("node:20");
 * r.normalized; // "docker.io/library/node:20"
 * r.apiHost;    // "registry-1.docker.io"
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/** The registry a reference without a domain names. */
export const DEFAULT_DOMAIN = "docker.io";
/** The host that serves the API of {@link DEFAULT_DOMAIN}. */
export const DEFAULT_API_HOST = "registry-1.docker.io";
/** The tag of a reference that names neither tag nor digest. */
export const DEFAULT_TAG = "latest";

/** A parsed image reference. */
export interface ImageReference {
  /** Registry domain as written (normalized: `docker.io` for Hub), with any port. */
  domain: string;
  /** Repository path inside the registry (`library/node`). */
  repository: string;
  /** Tag, when given or defaulted (null when only a digest was given). */
  tag: string | null;
  /** `sha256:<hex>` when the reference pins a digest. */
  digest: string | null;
  /** `domain/repository[:tag][@digest]`. */
  normalized: string;
  /** Host (and port) of the registry API. */
  apiHost: string;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

function bad(ref: string, why: string): HdError {
  return new HdError(
    `Cannot parse image reference "${ref}": ${why}`,
    "write it as [REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. node:20 or ghcr.io/o/r:1",
    2,
  );
}

/** Parses an image reference the way `docker pull` does; throws an HdError (usage) when invalid. */
export function parseReference(ref: string): ImageReference {
  let rest = ref.trim();
  if (rest.startsWith("docker://")) rest = rest.slice("docker://".length);
  if (rest.startsWith("//")) rest = rest.slice(2);
  if (rest === "") throw bad(ref, "it is empty");
  let digest: string | null = null;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(ref, `"${digest}" is not a digest (algorithm:hex)`);
    if (digest.startsWith("sha256:") && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
      throw bad(ref, "a sha256 digest has 64 lowercase hex digits");
    }
  }
  let tag: string | null = null;
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, `"${tag}" is not a valid tag`);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const first = rest.indexOf("/");
  if (first >= 0) {
    const head = rest.slice(0, first);
    if (head.includes(".") || head.includes(":") || head === "localhost" || /[A-Z]/.test(head)) {
      domain = head;
      path = rest.slice(first + 1);
    }
  }
  if (domain === "index.docker.io" || domain === "registry-1.docker.io") domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  if (path === "") throw bad(ref, "the repository name is empty");
  for (const c of path.split("/")) {
    if (!PATH_COMPONENT.test(c)) {
      throw bad(
        ref,
        /[A-Z]/.test(c)
          ? `repository names must be lowercase ("${c}")`
          : `"${c}" is not a valid repository path component`,
      );
    }
  }
  if (!/^[A-Za-z0-9.-]+(:[0-9]+)?$|^\[[0-9a-fA-F:]+\](:[0-9]+)?$/.test(domain)) {
    throw bad(ref, `"${domain}" is not a registry host`);
  }
  if (tag === null && digest === null) tag = DEFAULT_TAG;
  const normalized = `${domain}/${path}${tag !== null ? ":" + tag : ""}${
    digest !== null ? "@" + digest : ""
  }`;
  return {
    domain,
    repository: path,
    tag,
    digest,
    normalized,
    apiHost: domain === DEFAULT_DOMAIN ? DEFAULT_API_HOST : domain,
  };
}

/** True when `host` (with or without port) is this machine, where plain http is allowed. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Pulling images into the store and finding pulled ones.
 *
 * `pullImage` resolves a reference (a registry, `oci:DIR[:TAG]` or `docker-archive:FILE[:REF]`)
 * to one linux image (an index or manifest list is resolved to the host's platform), stores each
 * layer's tree (ref `layers/sha256-<diff_id hex>`, skipped when already there), lays the layers
 * over each other into the root filesystem tree, and records the image under
 * `images/<name>` as an Env node:
 * `{name, children: [info, (index), manifest, config, layer…, rootfs]}` — `info` is a small JSON
 * object (reference, digest, sizes, time), `manifest`/`config`/`index` the raw bytes as fetched.
 * Everything the record names is kept by gc through it.
 *
 * @example
 * ```ts
 * import { pullImage, loadImage } from "./image.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const img = await pullImage(store, "127.0.0.1:5000/test:1");
 * img.rootfs; // id of the merged root Dir node
 * loadImage(store, "127.0.0.1:5000/test:1")?.digest;
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { getNode, putNode } from "../dag/dag.ts";
import { Tree } from "../dag/tree.ts";
import { DockerArchive, OciLayout } from "./layout.ts";
import { parseReference } from "./reference.ts";
import {
  DEFAULT_TIMEOUTS,
  type FetchedManifest,
  MAX_CONFIG_BYTES,
  MEDIA,
  readCapped,
  RegistryClient,
  sha256Digest,
  type Timeouts,
} from "./registry.ts";
import {
  DEFAULT_MAX_RATIO,
  DEFAULT_MAX_UNPACKED,
  mergeLayer,
  resolvePendingLinks,
  type UnpackedLayer,
  unpackLayer,
} from "./unpack.ts";

/** How many layers are fetched and unpacked at once. */
export const LAYER_CONCURRENCY = 3;

/** The parts of an image config hd reads (the rest is kept in the raw bytes). */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    Env?: string[];
    Cmd?: string[];
    Entrypoint?: string[];
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, unknown>;
    Labels?: Record<string, string>;
  };
  rootfs?: { type: string; diff_ids: string[] };
  [k: string]: unknown;
}

/** One layer of a pulled image. */
export interface ImageLayer {
  /** `sha256:` digest of the blob as the source serves it (null for docker-archive). */
  digest: string | null;
  /** `sha256:` digest of the uncompressed tar (the config's diff_id). */
  diffId: string;
  /** Id of the layer's own tree (whiteouts kept as `.wh.*` files). */
  tree: string;
  /** Bytes of the blob as served. */
  size: number;
}

/** A pulled image. */
export interface PulledImage {
  /** Name of the record: `images/<name>`. */
  name: string;
  /** What the user asked for. */
  source: string;
  /** Digest the reference resolved to (the index's when it was an index; for a docker
   * archive, the config's — the image id). */
  digest: string;
  /** Digest of the platform manifest. */
  manifestDigest: string;
  /** `os/arch[/variant]`. */
  platform: string;
  /** Id of the merged root filesystem tree. */
  rootfs: string;
  layers: ImageLayer[];
  config: ImageConfig;
  /** Sum of the layer blob sizes. */
  size: number;
  /** ISO time of the pull that recorded it. */
  pulledAt: string;
  /** Id of the Env node recorded under `images/<name>`. */
  record: string;
  /** True when nothing needed fetching (the record was current). */
  upToDate?: boolean;
}

/** A progress event of a pull. */
export interface PullProgress {
  /** 0-based layer index, and how many there are. */
  layer: number;
  layers: number;
  diffId: string;
  /** "fetch" while streaming, "cached" when the layer was in the store, "done". */
  state: "fetch" | "cached" | "done";
  compressed: number;
  uncompressed: number;
  /** Size of the blob as served. */
  total: number;
}

/** Options of {@link pullImage}. */
export interface PullOptions {
  /** Registry hosts to reach over plain http (loopback always is). */
  insecure?: string[];
  /** Docker config.json with credentials (default ~/.docker/config.json). */
  dockerConfig?: string;
  /** `os/arch[/variant]` to pick from an index (default linux and the host's architecture). */
  platform?: string;
  /** Decompressed/compressed ratio cap per layer (0 = none). */
  maxRatio?: number;
  /** Absolute cap of a layer's decompressed bytes. */
  maxUnpacked?: number;
  /** Time limits of registry requests (unset ones come from the environment, see
   * {@link pullEnvOptions}, then {@link DEFAULT_TIMEOUTS}). */
  timeouts?: Partial<Timeouts>;
  /** Re-fetch and re-unpack layers even when their trees are in the store. */
  force?: boolean;
  onProgress?: (p: PullProgress) => void;
}

/** Environment variables that set pull limits for every command that pulls (seconds / bytes). */
export const PULL_ENV = {
  connectTimeout: "HD_PULL_CONNECT_TIMEOUT",
  idleTimeout: "HD_PULL_IDLE_TIMEOUT",
  timeout: "HD_PULL_TIMEOUT",
  maxRatio: "HD_PULL_MAX_RATIO",
  maxUnpacked: "HD_PULL_MAX_UNPACKED",
} as const;

/**
 * A size like `64G`, `512M`, `1.5GiB` or `1000` (bytes), or null when it is not one. Units are
 * binary (K = 1024).
 */
export function parseSize(s: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) return null;
  const mul = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()]!;
  const n = Math.floor(Number(m[1]) * mul);
  return Number.isSafeInteger(n) ? n : null;
}

/** A number of seconds ≥ 0 (0 = no limit) as milliseconds, or null. */
export function parseSeconds(s: string): number | null {
  if (!/^\s*\d+(\.\d+)?\s*$/.test(s)) return null;
  const ms = Math.round(Number(s) * 1000);
  return Number.isSafeInteger(ms) ? ms : null;
}

/** Pull limits set by {@link PULL_ENV} variables; throws on a malformed value. */
export function pullEnvOptions(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Pick<PullOptions, "timeouts" | "maxRatio" | "maxUnpacked"> {
  const out: Pick<PullOptions, "timeouts" | "maxRatio" | "maxUnpacked"> = { timeouts: {} };
  const bad = (name: string, v: string, want: string) =>
    new HdError(
      `Cannot use ${name}=${v}: not ${want}`,
      `unset it or write e.g. ${name}=${want === "a size" ? "32G" : "60"}`,
    );
  const secs: [string, keyof Timeouts][] = [
    [PULL_ENV.connectTimeout, "connectMs"],
    [PULL_ENV.idleTimeout, "idleMs"],
    [PULL_ENV.timeout, "totalMs"],
  ];
  for (const [name, key] of secs) {
    const v = env(name);
    if (v === undefined || v === "") continue;
    const ms = parseSeconds(v);
    if (ms === null) throw bad(name, v, "a number of seconds");
    out.timeouts![key] = ms;
  }
  const r = env(PULL_ENV.maxRatio);
  if (r !== undefined && r !== "") {
    const n = Number(r);
    if (!Number.isFinite(n) || n < 0) throw bad(PULL_ENV.maxRatio, r, "a number ≥ 0");
    out.maxRatio = n;
  }
  const u = env(PULL_ENV.maxUnpacked);
  if (u !== undefined && u !== "") {
    const n = parseSize(u);
    if (n === null || n <= 0) throw bad(PULL_ENV.maxUnpacked, u, "a size");
    out.maxUnpacked = n;
  }
  return out;
}

/** The platform of this host in OCI terms. */
export function hostPlatform(): string {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  return `linux/${arch}`;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

interface ManifestJson {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** A source of manifests and blobs (a registry repository or an OCI layout). */
interface BlobSource {
  root(): Promise<FetchedManifest>;
  manifest(digest: string): Promise<FetchedManifest>;
  blob(digest: string): Promise<ReadableStream<Uint8Array>>;
}

/** Where an image comes from, after parsing what the user wrote. */
type Origin =
  | { kind: "registry"; name: string; host: string; repo: string; reference: string }
  | { kind: "oci"; name: string; dir: string; tag: string | null }
  | { kind: "archive"; name: string; file: string; ref: string | null };

function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9._@:+/-]/g, "_").replace(/\/+/g, "/").replace(/^\/|\/$/g, "")
    .split("/").map((p) => (p === "." || p === ".." ? "_" : p)).join("/");
}

function absolute(p: string): string {
  try {
    return Deno.realPathSync(p);
  } catch {
    return p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
  }
}

/** Parses what `hd pull` accepts: a registry reference, `oci:DIR[:TAG]`, `docker-archive:FILE`. */
export function parseSource(source: string): Origin {
  if (source.startsWith("oci:")) {
    const rest = source.slice(4);
    let dir = rest;
    let tag: string | null = null;
    const c = rest.lastIndexOf(":");
    if (c > rest.lastIndexOf("/") && c >= 0) {
      dir = rest.slice(0, c);
      tag = rest.slice(c + 1);
    }
    if (!dir) throw new HdError(`Cannot parse "${source}": no directory`, "write oci:DIR[:TAG]", 2);
    dir = absolute(dir);
    return { kind: "oci", dir, tag, name: sanitize(`oci/${dir}`) + (tag ? `:${tag}` : "") };
  }
  if (source.startsWith("docker-archive:")) {
    const rest = source.slice("docker-archive:".length);
    let file = rest;
    let ref: string | null = null;
    let exists = false;
    try {
      exists = Deno.statSync(rest).isFile;
    } catch { /* maybe FILE:REF */ }
    if (!exists && rest.includes(":")) {
      const c = rest.indexOf(":");
      file = rest.slice(0, c);
      ref = rest.slice(c + 1);
    }
    if (!file) {
      throw new HdError(`Cannot parse "${source}": no file`, "write docker-archive:FILE", 2);
    }
    file = absolute(file);
    return {
      kind: "archive",
      file,
      ref,
      name: sanitize(`docker-archive/${file}`) + (ref ? `:${sanitize(ref)}` : ""),
    };
  }
  const r = parseReference(source);
  return {
    kind: "registry",
    name: r.normalized,
    host: r.apiHost,
    repo: r.repository,
    reference: r.digest ?? r.tag!,
  };
}

/** The `images/…` record name for what the user wrote. */
export function imageName(source: string): string {
  return parseSource(source).name;
}

function json<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (e) {
    throw new HdError(`Cannot read ${what}: not JSON (${(e as Error).message})`, "");
  }
}

function platformOf(d: Descriptor): string {
  const p = d.platform ?? {};
  return `${p.os ?? "?"}/${p.architecture ?? "?"}${p.variant ? "/" + p.variant : ""}`;
}

/** Picks the platform manifest of an index. */
function pickPlatform(index: ManifestJson, want: string, what: string): Descriptor {
  const ms = (index.manifests ?? []).filter((d) =>
    d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest"
  );
  const [os, arch, variant] = want.split("/");
  const hit = ms.find((d) =>
    d.platform?.os === os && d.platform?.architecture === arch &&
    (variant === undefined || d.platform?.variant === variant)
  );
  if (hit) return hit;
  throw new HdError(
    `Cannot pick ${want} from ${what}: it offers ${ms.map(platformOf).join(", ") || "nothing"}`,
    "pass --platform OS/ARCH for one of those, or pull an image built for this machine",
  );
}

interface Resolved {
  digest: string;
  index: FetchedManifest | null;
  manifest: FetchedManifest;
  config: Uint8Array;
  layers: {
    digest: string | null;
    diffId: string;
    size: number;
    open: () => Promise<ReadableStream<Uint8Array>>;
  }[];
  platform: string;
}

async function resolveTop(src: BlobSource, top: FetchedManifest, opts: PullOptions, what: string) {
  let index: FetchedManifest | null = null;
  let manifest = top;
  let m = json<ManifestJson>(top.bytes, `manifest of ${what}`);
  let platform = "";
  if (top.mediaType === MEDIA.dockerSchema1 || m.schemaVersion === 1) {
    throw new HdError(
      `Cannot pull ${what}: it uses Docker's schema 1 manifest, which is deprecated`,
      "push the image again with a current tool (it writes schema 2 or OCI)",
    );
  }
  if (m.manifests) {
    index = top;
    const d = pickPlatform(m, opts.platform ?? hostPlatform(), what);
    platform = platformOf(d);
    manifest = await src.manifest(d.digest);
    m = json<ManifestJson>(manifest.bytes, `manifest ${d.digest}`);
    if (m.manifests) throw new HdError(`Cannot pull ${what}: nested indexes`, "");
  }
  if (!m.config || !m.layers) {
    throw new HdError(`Cannot pull ${what}: the manifest has no config or layers`, "");
  }
  return { index, manifest, m, platform };
}

async function resolve(origin: Origin, opts: PullOptions, source: string): Promise<Resolved> {
  if (origin.kind === "archive") {
    const a = DockerArchive.open(origin.file);
    const img = a.image(origin.ref);
    const cfg = json<ImageConfig>(img.config, `config of ${source}`);
    const diffIds = cfg.rootfs?.diff_ids ?? [];
    if (diffIds.length !== img.layers.length) {
      throw new HdError(
        `Cannot pull ${source}: the config lists ${diffIds.length} layers, the archive ${img.layers.length}`,
        "the archive is damaged",
      );
    }
    const configDigest = sha256Digest(img.config);
    const manifestJson = {
      schemaVersion: 2,
      mediaType: MEDIA.dockerManifest,
      config: {
        mediaType: "application/vnd.docker.container.image.v1+json",
        size: img.config.length,
        digest: configDigest,
      },
      layers: img.layers.map((l, i) => ({
        mediaType: "application/vnd.docker.image.rootfs.diff.tar",
        size: l.size,
        digest: diffIds[i],
      })),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(manifestJson));
    return {
      digest: configDigest,
      index: null,
      manifest: { bytes, mediaType: MEDIA.dockerManifest, digest: sha256Digest(bytes) },
      config: img.config,
      layers: img.layers.map((l, i) => ({
        digest: null,
        diffId: diffIds[i],
        size: l.size,
        open: () => Promise.resolve(a.stream(l)),
      })),
      platform: `${cfg.os ?? "linux"}/${cfg.architecture ?? "?"}`,
    };
  }
  let src: BlobSource;
  if (origin.kind === "oci") {
    src = new OciLayout(origin.dir, origin.tag);
  } else {
    const client = new RegistryClient(origin.host, {
      insecure: opts.insecure,
      dockerConfig: opts.dockerConfig,
      timeouts: opts.timeouts,
      source,
    });
    src = {
      root: () => client.manifest(origin.repo, origin.reference),
      manifest: (d) => client.manifest(origin.repo, d),
      blob: (d) => client.blob(origin.repo, d),
    };
  }
  const top = await src.root();
  const { index, manifest, m, platform } = await resolveTop(src, top, opts, source);
  const configBytes = await readCapped(
    await src.blob(m.config!.digest),
    MAX_CONFIG_BYTES,
    () =>
      new HdError(
        `Cannot pull ${source}: its config ${
          m.config!.digest
        } is larger than ${MAX_CONFIG_BYTES} bytes`,
        "image configs are small JSON documents; the source is damaged or hostile",
      ),
  );
  if (sha256Digest(configBytes) !== m.config!.digest) {
    throw new HdError(
      `Cannot pull ${source}: the config blob does not hash to ${m.config!.digest}`,
      "the source is damaged; pull again",
    );
  }
  const cfg = json<ImageConfig>(configBytes, `config of ${source}`);
  const diffIds = cfg.rootfs?.diff_ids ?? [];
  if (diffIds.length !== m.layers!.length) {
    throw new HdError(
      `Cannot pull ${source}: the config lists ${diffIds.length} layers, the manifest ${
        m.layers!.length
      }`,
      "the image is damaged",
    );
  }
  return {
    digest: top.digest,
    index,
    manifest,
    config: configBytes,
    layers: m.layers!.map((l, i) => ({
      digest: l.digest,
      diffId: diffIds[i],
      size: l.size,
      open: () => src.blob(l.digest),
    })),
    platform: platform || `${cfg.os ?? "linux"}/${cfg.architecture ?? "?"}`,
  };
}

/** The ref name of a layer's tree. */
export function layerRef(diffId: string): string {
  return `layers/${diffId.replace(":", "-")}`;
}

interface Info {
  name: string;
  source: string;
  digest: string;
  manifestDigest: string;
  platform: string;
  layers: { digest: string | null; diffId: string; size: number }[];
  size: number;
  pulledAt: string;
}

/**
 * Pulls an image into the store (see the module doc) and returns it. A pull whose reference still
 * resolves to the recorded digest returns the record without fetching layers.
 */
export async function pullImage(
  store: Store,
  source: string,
  opts: PullOptions = {},
): Promise<PulledImage> {
  const origin = parseSource(source);
  using _lease = store.lease(`pull ${source}`);
  // Limits not given explicitly come from HD_PULL_* (so `hd up` pulling a base obeys them too).
  const env = pullEnvOptions();
  opts = {
    ...opts,
    timeouts: { ...DEFAULT_TIMEOUTS, ...env.timeouts, ...opts.timeouts },
    maxRatio: opts.maxRatio ?? env.maxRatio ?? DEFAULT_MAX_RATIO,
    maxUnpacked: opts.maxUnpacked ?? env.maxUnpacked ?? DEFAULT_MAX_UNPACKED,
  };
  return await store.withLock("shared", async () => {
    const r = await resolve(origin, opts, source);
    const prev = loadImage(store, source);
    if (
      prev && !opts.force && prev.digest === r.digest &&
      prev.manifestDigest === r.manifest.digest &&
      store.has(prev.rootfs)
    ) {
      return { ...prev, upToDate: true };
    }
    // Objects go into pack files (a few large writes instead of one file per chunk); the refs
    // are set only after the batch is flushed, so a ref never names an unwritten object.
    const done = await store.batchAsync(() => unpackAll(store, r, origin, source, opts));
    for (const l of done.layers) store.setRef(layerRef(l.diffId), l.tree);
    store.setRef(`images/${origin.name}`, done.record);
    return done;
  });
}

async function unpackAll(
  store: Store,
  r: Resolved,
  origin: Origin,
  source: string,
  opts: PullOptions,
): Promise<PulledImage> {
  const rootfs = new Tree();
  const layers: ImageLayer[] = [];
  const abort = new AbortController();
  let firstError: unknown = undefined;
  const n = r.layers.length;
  const event = (i: number, state: PullProgress["state"], c = 0, u = 0) =>
    opts.onProgress?.({
      layer: i,
      layers: n,
      diffId: r.layers[i].diffId,
      state,
      compressed: c,
      uncompressed: u,
      total: r.layers[i].size,
    });
  // Up to LAYER_CONCURRENCY layers stream at once (their trees are independent; hardlinks into
  // lower layers wait for the merge below); a layer listed twice is unpacked once.
  const byDiffId = new Map<string, Promise<UnpackedLayer | Tree>>();
  const started: (Promise<UnpackedLayer | Tree> | undefined)[] = [];
  const start = (i: number) => {
    if (i >= n || started[i] !== undefined) return;
    const l = r.layers[i];
    let p = byDiffId.get(l.diffId);
    if (!p) {
      const have = opts.force ? null : store.getRef(layerRef(l.diffId));
      if (have && store.has(have)) {
        event(i, "cached");
        p = Promise.resolve(Tree.load(store, have));
      } else {
        p = (async () => {
          const u = await unpackLayer(store, await l.open(), {
            label: l.digest ?? l.diffId,
            digest: l.digest,
            diffId: l.diffId,
            compressedSize: l.size,
            maxRatio: opts.maxRatio,
            maxUnpacked: opts.maxUnpacked,
            signal: abort.signal,
            onProgress: (c, u) => event(i, "fetch", c, u),
          });
          event(i, "done", u.compressedBytes, u.uncompressedBytes);
          return u;
        })();
      }
      p.catch((e) => {
        firstError ??= e; // the cause, not the "stopped" of the layers aborted because of it
        abort.abort();
      });
      byDiffId.set(l.diffId, p);
    }
    started[i] = p;
  };
  try {
    for (let i = 0; i < n; i++) {
      for (let k = i; k < i + LAYER_CONCURRENCY; k++) start(k);
      const l = r.layers[i];
      const label = l.digest ?? l.diffId;
      const got = (await started[i])!;
      let tree: Tree;
      let treeId: string;
      if (got instanceof Tree) {
        tree = got;
        treeId = got.root.id!;
      } else {
        tree = got.tree;
        treeId = got.root ?? resolvePendingLinks(store, got, rootfs, label);
      }
      mergeLayer(store, rootfs, tree, label);
      layers.push({ digest: l.digest, diffId: l.diffId, tree: treeId, size: l.size });
    }
  } catch (e) {
    abort.abort();
    await Promise.allSettled(started);
    throw firstError ?? e;
  }
  const rootId = rootfs.commit(store);
  const enc = new TextEncoder();
  const info: Info = {
    name: origin.name,
    source,
    digest: r.digest,
    manifestDigest: r.manifest.digest,
    platform: r.platform,
    layers: layers.map(({ digest, diffId, size }) => ({ digest, diffId, size })),
    size: layers.reduce((n, l) => n + l.size, 0),
    pulledAt: new Date().toISOString(),
  };
  const children = [{ role: "info", id: store.putObject(enc.encode(JSON.stringify(info))) }];
  if (r.index) children.push({ role: "index", id: store.putObject(r.index.bytes) });
  children.push({ role: "manifest", id: store.putObject(r.manifest.bytes) });
  children.push({ role: "config", id: store.putObject(r.config) });
  for (const l of layers) children.push({ role: "layer", id: l.tree });
  children.push({ role: "rootfs", id: rootId });
  const record = putNode(store, { type: "env", name: origin.name, children });
  return {
    ...info,
    rootfs: rootId,
    layers,
    config: json<ImageConfig>(r.config, "config"),
    record,
  };
}

function fromRecord(store: Store, id: string): PulledImage {
  const node = getNode(store, id);
  if (node.type !== "env") {
    throw new HdError(`Cannot read image record ${id}: it is a ${node.type} node`, "");
  }
  const role = (r: string) => node.children.filter((c) => c.role === r).map((c) => c.id);
  const infoId = role("info")[0];
  const info = json<Info>(store.getObject(infoId), "image info");
  const trees = role("layer");
  return {
    ...info,
    rootfs: role("rootfs")[0],
    layers: info.layers.map((l, i) => ({ ...l, tree: trees[i] })),
    config: json<ImageConfig>(store.getObject(role("config")[0]), "image config"),
    record: id,
  };
}

/** The pulled image recorded for `source` (as `hd pull` was given it), or null. */
export function loadImage(store: Store, source: string): PulledImage | null {
  const id = store.getRef(`images/${imageName(source)}`);
  if (!id) return null;
  return fromRecord(store, id);
}

/** Every pulled image, by name. */
export function listImages(store: Store): PulledImage[] {
  const out: PulledImage[] = [];
  for (const [name, id] of store.listRefs()) {
    if (!name.startsWith("images/")) continue;
    try {
      out.push(fromRecord(store, id));
    } catch { /* a damaged record: `hd cas verify` reports it */ }
  }
  return out;
}

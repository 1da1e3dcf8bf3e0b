/**
 * Exporting an environment as an OCI image: layers from CAS trees (written by
 * {@link layerTar} and gzip-compressed with fixed settings) or base-image layers reused as they
 * are, an image config, an OCI manifest — to an OCI layout (`oci:DIR[:TAG]`), a `docker save`
 * archive (`docker-archive:FILE[:REF]`) or a registry (push).
 *
 * Reproducible: the same layers, config and epoch give the same manifest digest. Trees are written
 * deterministically (src/oci/tar_write.ts); gzip runs with level 6, no file name and mtime 0 in the
 * header (node:zlib's defaults for a stream), so the bytes depend only on the tar and the zlib
 * build. A re-emitted layer's descriptor is remembered under `<store>/export/` by tree, epoch and
 * form, so a later export skips writing it when the destination already has that blob.
 *
 * Base layers keep their original blob (digest, diff_id, media type) when the image came from a
 * registry or an OCI layout: a push skips it when the registry has it (HEAD), mounts it from the
 * source repository on the same registry, or streams it from the source; a layout copies it from
 * the source. A docker archive holds uncompressed tars: the original blob is gunzipped (its
 * diff_id is checked). Base layers of a docker-archive source (no blob digest) are re-emitted.
 *
 * @example
 * ```ts
 * import { exportImage } from "./export.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const r = await exportImage(store, {
 *   layers: [{ label: "project", tree: "…", prefix: "app/" }],
 *   config: { Env: ["PATH=/bin"], WorkingDir: "/app" },
 *   epoch: 0,
 * }, "oci:/tmp/out:1");
 * console.log(r.digest);
 * ```
 * @module
 */
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { entryHeader, layerTar } from "./tar_write.ts";
import { getNode } from "../dag/dag.ts";
import type { DirNode } from "../dag/node.ts";
import { fileRange, OciLayout } from "./layout.ts";
import { parseReference } from "./reference.ts";
import { MAX_MANIFEST_BYTES, MEDIA, RegistryClient, sha256Digest } from "./registry.ts";
import { readBeneath } from "../sys/nofollow.ts";
import { PushClient } from "./push.ts";
import { parseSource } from "./image.ts";

/** How many layers are written or uploaded at once. */
export const EXPORT_CONCURRENCY = 3;

/** OCI media types written. */
export const EXPORT_MEDIA = {
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  layerTar: "application/vnd.oci.image.layer.v1.tar",
} as const;

/** A base-image layer whose original blob may be reused. */
export interface BaseBlob {
  /** `sha256:` digest of the blob as the source serves it. */
  digest: string;
  /** `sha256:` of the uncompressed tar. */
  diffId: string;
  size: number;
  /** Media type in the source's manifest. */
  mediaType: string;
  /** What the image was pulled from (`hd pull`'s source). */
  source: string;
}

/** One layer of the image, lowest first. */
export interface ExportLayer {
  /** What it is, for history and messages ("base layer 1", "step 2: npm ci", "project"). */
  label: string;
  /** The layer tree (whiteouts as `.wh.` files). */
  tree: string;
  /** A path prefix (e.g. `app/`): the tree is placed there, the prefix's dirs written 0755 root. */
  prefix?: string;
  /** The original blob of a base layer. */
  base?: BaseBlob;
  /**
   * A named volume mounted at `prefix` (`hd export --volumes`): only the mount point is written
   * (with the tree root's mode, owner and xattrs; its parents are the lower layers' own), and an
   * opaque whiteout (`.wh..wh..opq`) in it hides what lower layers hold there, as the mount hid
   * the image's directory from the service.
   */
  volume?: boolean;
}

/** The `config` part of an image config (the runtime settings). */
export interface RuntimeConfig {
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Entrypoint?: string[];
  Cmd?: string[];
  Labels?: Record<string, string>;
}

/** What to export. */
export interface ExportPlan {
  layers: ExportLayer[];
  config: RuntimeConfig;
  /** Seconds: every mtime in re-emitted layers and the config's `created` (SOURCE_DATE_EPOCH). */
  epoch: number;
  /** `amd64`, `arm64` (default: the host's). */
  architecture?: string;
}

/** Where to export: parsed from `--to`. */
export type ExportDest =
  | { kind: "oci"; dir: string; tag: string | null }
  | { kind: "archive"; file: string; ref: string | null }
  | { kind: "registry"; host: string; repo: string; tag: string; normalized: string };

/** Parses a destination: `oci:DIR[:TAG]`, `docker-archive:FILE[:REF]`, or a registry reference. */
export function parseDest(to: string): ExportDest {
  if (to.startsWith("oci:")) {
    const rest = to.slice(4);
    const c = rest.lastIndexOf(":");
    const [dir, tag] = c > rest.lastIndexOf("/") && c >= 0
      ? [rest.slice(0, c), rest.slice(c + 1)]
      : [rest, null];
    if (!dir) throw new HdError(`Cannot parse "${to}": no directory`, "write oci:DIR[:TAG]", 2);
    if (tag !== null && !/^[\w][\w.-]{0,127}$/.test(tag)) {
      throw new HdError(`Cannot parse "${to}": "${tag}" is not a tag`, "write oci:DIR[:TAG]", 2);
    }
    return { kind: "oci", dir, tag };
  }
  if (to.startsWith("docker-archive:")) {
    const rest = to.slice("docker-archive:".length);
    const c = rest.indexOf(":");
    const [file, ref] = c > 0 ? [rest.slice(0, c), rest.slice(c + 1)] : [rest, null];
    if (!file) {
      throw new HdError(`Cannot parse "${to}": no file`, "write docker-archive:FILE[:REF]", 2);
    }
    return { kind: "archive", file, ref };
  }
  const r = parseReference(to);
  if (r.digest) {
    throw new HdError(
      `Cannot push to "${to}": a digest cannot be pushed to`,
      "name a tag (REGISTRY/REPO:TAG)",
      2,
    );
  }
  return { kind: "registry", host: r.apiHost, repo: r.repository, tag: r.tag!, normalized: to };
}

/** What an export did. */
export interface ExportResult {
  dest: string;
  /** Manifest digest. */
  digest: string;
  configDigest: string;
  layers: {
    label: string;
    digest: string;
    diffId: string;
    size: number;
    /** `reused` original base blob, `built` now, `cached` (descriptor known, blob present). */
    how: "reused" | "built" | "cached";
    /** For a push: `present` (HEAD), `mounted`, `uploaded`. */
    push?: "present" | "mounted" | "uploaded";
    /** Why a base layer was written from its tree instead of reused. */
    note?: string;
  }[];
  /** Blob bytes uploaded (pushes) or written (files). */
  bytesWritten: number;
  blobsUploaded: number;
  ms: number;
}

/** Progress of an export. */
export type ExportProgress = (text: string) => void;

interface Built {
  digest: string;
  diffId: string;
  size: number;
  /** Where the blob's bytes are (a temp file), when written now. */
  path?: string;
}

/** The prefix's own directories, root-owned 0755. */
function dirHeaders(prefix: string, epoch: number): Uint8Array[] {
  const parts = prefix.split("/").filter(Boolean);
  return parts.map((_, i) => tarDirHeader(parts.slice(0, i + 1).join("/") + "/", epoch));
}

function tarDirHeader(path: string, epoch: number): Uint8Array {
  return entryHeader({
    path,
    flag: "5",
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    link: "",
    devmajor: 0,
    devminor: 0,
  }, epoch);
}

/** The mount point of a volume layer (its tree root's metadata) and its opaque whiteout. */
function volumeHeaders(store: Store, l: ExportLayer, epoch: number): Uint8Array[] {
  const root = getNode(store, l.tree);
  if (root.type !== "dir" || !l.prefix) {
    throw new HdError(`Cannot write volume layer ${l.label}: not a directory tree`, "");
  }
  const d = root as DirNode;
  const none = { size: 0, link: "", devmajor: 0, devminor: 0 };
  return [
    entryHeader({
      ...none,
      path: l.prefix,
      flag: "5",
      mode: d.mode,
      uid: d.uid ?? 0,
      gid: d.gid ?? 0,
      xattrs: d.xattrs,
    }, epoch),
    entryHeader(
      { ...none, path: `${l.prefix}.wh..wh..opq`, flag: "0", mode: 0, uid: 0, gid: 0 },
      epoch,
    ),
  ];
}

function* layerPieces(store: Store, l: ExportLayer, epoch: number): Generator<Uint8Array> {
  if (l.volume) yield* volumeHeaders(store, l, epoch);
  else if (l.prefix) yield* dirHeaders(l.prefix, epoch);
  yield* layerTar(store, l.tree, { mtime: epoch, prefix: l.prefix });
}

/**
 * Writes layer `l` as a blob into `dir` (a temp file named by its digest afterwards): gzip level 6
 * (or uncompressed), hashing the tar and the blob on the way.
 */
async function buildLayer(
  store: Store,
  l: ExportLayer,
  epoch: number,
  gzip: boolean,
  dir: string,
): Promise<Built> {
  const tmp = await Deno.makeTempFile({ dir, prefix: ".layer-" });
  const file = await Deno.open(tmp, { write: true, truncate: true });
  const diff = createHash("sha256");
  const blob = createHash("sha256");
  let size = 0;
  let writeChain: Promise<unknown> = Promise.resolve();
  let queued = 0; // bytes handed to writeChain and not yet on disk
  const write = (b: Uint8Array) => {
    blob.update(b);
    size += b.length;
    const copy = b.slice();
    queued += copy.length;
    writeChain = writeChain.then(async () => {
      let o = 0;
      while (o < copy.length) o += await file.write(copy.subarray(o));
      queued -= copy.length;
    });
  };
  /** Waits for the disk when more than 16 MiB wait to be written. */
  const settle = async () => {
    if (queued > 16 << 20) await writeChain;
  };
  try {
    if (!gzip) {
      for (const p of layerPieces(store, l, epoch)) {
        diff.update(p);
        write(p);
        await settle();
      }
    } else {
      const gz = zlib.createGzip({ level: 6, memLevel: 8 });
      const done = new Promise<void>((res, rej) => {
        gz.on("data", (c: Uint8Array) => write(c));
        gz.on("end", () => res());
        gz.on("error", rej);
      });
      for (const p of layerPieces(store, l, epoch)) {
        diff.update(p);
        if (!gz.write(p)) await new Promise((r) => gz.once("drain", r));
        await settle();
      }
      gz.end();
      await done;
    }
    await writeChain;
  } finally {
    file.close();
  }
  const digest = "sha256:" + blob.digest("hex");
  return { digest, diffId: "sha256:" + diff.digest("hex"), size, path: tmp };
}

function cacheKey(l: ExportLayer, epoch: number, gzip: boolean): string {
  return createHash("sha256").update(
    JSON.stringify([
      l.tree,
      l.prefix ?? "",
      epoch,
      gzip ? "gzip6" : "tar",
      1,
      ...(l.volume ? ["volume"] : []),
    ]),
  ).digest("hex");
}

function readCache(store: Store, key: string): Built | null {
  try {
    const j = JSON.parse(Deno.readTextFileSync(`${store.root}/export/${key}.json`));
    if (
      typeof j.digest === "string" && typeof j.diffId === "string" && Number.isSafeInteger(j.size)
    ) {
      return { digest: j.digest, diffId: j.diffId, size: j.size };
    }
  } catch { /* not known */ }
  return null;
}

function writeCache(store: Store, key: string, b: Built): void {
  Deno.mkdirSync(`${store.root}/export`, { recursive: true });
  store.writeAtomic(
    `${store.root}/export/${key}.json`,
    new TextEncoder().encode(JSON.stringify({ digest: b.digest, diffId: b.diffId, size: b.size })),
  );
}

/** The OCI media type of a base layer's original media type (docker's gzip is the same bytes). */
export function ociLayerType(mediaType: string): string {
  if (mediaType.endsWith("zstd")) return EXPORT_MEDIA.layerZstd;
  if (mediaType.endsWith("gzip")) return EXPORT_MEDIA.layerGzip;
  if (mediaType.endsWith(".tar") || mediaType.endsWith("tar")) return EXPORT_MEDIA.layerTar;
  return mediaType;
}

/** Opens a base layer's original blob from where the image was pulled. */
async function openBase(b: BaseBlob): Promise<ReadableStream<Uint8Array>> {
  const o = parseSource(b.source);
  if (o.kind === "registry") return await new RegistryClient(o.host).blob(o.repo, b.digest);
  if (o.kind === "oci") return await new OciLayout(o.dir, o.tag).blob(b.digest);
  throw new HdError(`Cannot reuse base layer ${b.digest}: ${b.source} has no blobs`, "");
}

/** True when a base layer's original blob can still be read (a registry is assumed reachable). */
function baseReachable(b: BaseBlob): boolean {
  let o;
  try {
    o = parseSource(b.source);
  } catch {
    return false;
  }
  if (o.kind === "registry") return true;
  if (o.kind === "oci") {
    try {
      return Deno.statSync(`${o.dir}/blobs/sha256/${b.digest.slice(7)}`).isFile;
    } catch {
      return false;
    }
  }
  return false;
}

/** Copies a stream into a file, hashing it; returns the digest and size. */
async function streamToFile(
  s: ReadableStream<Uint8Array>,
  path: string,
): Promise<{ digest: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for await (const c of s) {
      h.update(c);
      size += c.length;
      let o = 0;
      while (o < c.length) o += await f.write(c.subarray(o));
    }
  } finally {
    f.close();
  }
  return { digest: "sha256:" + h.digest("hex"), size };
}

function isoEpoch(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z");
}

/** The image config JSON (deterministic key order). */
export function imageConfig(plan: ExportPlan, diffIds: string[]): Uint8Array {
  const c = plan.config;
  const config: RuntimeConfig = {};
  if (c.User !== undefined) config.User = c.User;
  if (c.ExposedPorts && Object.keys(c.ExposedPorts).length) {
    config.ExposedPorts = Object.fromEntries(
      Object.keys(c.ExposedPorts).sort().map((k) => [k, {}]),
    );
  }
  if (c.Env) config.Env = c.Env;
  if (c.Entrypoint) config.Entrypoint = c.Entrypoint;
  if (c.Cmd) config.Cmd = c.Cmd;
  if (c.WorkingDir) config.WorkingDir = c.WorkingDir;
  if (c.Labels && Object.keys(c.Labels).length) {
    config.Labels = Object.fromEntries(Object.entries(c.Labels).sort(([a], [b]) => a < b ? -1 : 1));
  }
  const cfg = {
    created: isoEpoch(plan.epoch),
    architecture: plan.architecture ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64"),
    os: "linux",
    config,
    rootfs: { type: "layers", diff_ids: diffIds },
    history: plan.layers.map((l) => ({
      created: isoEpoch(plan.epoch),
      created_by: l.label,
      comment: "hd export",
    })),
  };
  return new TextEncoder().encode(JSON.stringify(cfg));
}

/** Writes `bytes` to `path` through a temp file and a rename. */
function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${Deno.pid}`;
  Deno.writeFileSync(tmp, bytes);
  Deno.renameSync(tmp, path);
}

/**
 * Exports `plan` to `to` (see {@link parseDest}). Nothing half-written: layout blobs are renamed
 * into place (by digest) before index.json is replaced, an archive is written to a temp file and
 * renamed, a pushed manifest goes up after every blob.
 */
export async function exportImage(
  store: Store,
  plan: ExportPlan,
  to: string,
  opts: { onProgress?: ExportProgress; insecure?: string[] } = {},
): Promise<ExportResult> {
  const t0 = performance.now();
  const dest = parseDest(to);
  const gzip = dest.kind !== "archive";
  const say = opts.onProgress ?? (() => {});
  // temp files sit next to where they end (a rename never crosses file systems)
  const work = dest.kind === "oci"
    ? dest.dir
    : dest.kind === "archive"
    ? (dest.file.includes("/") ? dest.file.slice(0, dest.file.lastIndexOf("/")) || "/" : ".")
    : `${store.root}/tmp`;
  Deno.mkdirSync(work, { recursive: true });
  const tmpDir = await Deno.makeTempDir({ dir: work, prefix: ".hd-export-" });
  const result: ExportResult = {
    dest: to,
    digest: "",
    configDigest: "",
    layers: [],
    bytesWritten: 0,
    blobsUploaded: 0,
    ms: 0,
  };
  const push = dest.kind === "registry"
    ? new PushClient(dest.host, { insecure: opts.insecure })
    : null;
  let layoutDir = "";
  if (dest.kind === "oci") {
    layoutDir = dest.dir;
    Deno.mkdirSync(`${layoutDir}/blobs/sha256`, { recursive: true });
  }
  /** Whether the destination already holds blob `digest`. */
  const destHas = async (digest: string): Promise<boolean> => {
    if (dest.kind === "oci") {
      try {
        return Deno.statSync(`${layoutDir}/blobs/sha256/${digest.slice(7)}`).isFile;
      } catch {
        return false;
      }
    }
    if (push) return await push.hasBlob((dest as { repo: string }).repo, digest);
    return false;
  };
  /** Places a blob held in a temp file at the destination (layouts: by rename). */
  const putFile = async (digest: string, size: number, path: string) => {
    if (dest.kind === "oci") {
      Deno.renameSync(path, `${layoutDir}/blobs/sha256/${digest.slice(7)}`);
      result.bytesWritten += size;
    } else if (push) {
      await push.uploadBlob(
        (dest as { repo: string }).repo,
        digest,
        size,
        () => fileRange(path),
      );
    }
  };
  type Desc = { mediaType: string; digest: string; size: number };
  const descs: Desc[] = [];
  const diffIds: string[] = [];
  const archiveLayers: { diffId: string; path: string; size: number }[] = [];
  /** One layer: its blob at the destination, its descriptor and diff_id at index `i`. */
  const one = async (i: number, l: ExportLayer): Promise<void> => {
    say(`layer ${i + 1}/${plan.layers.length}: ${l.label}`);
    const b = l.base && baseReachable(l.base) ? l.base : undefined;
    let fallback: string | undefined;
    try {
      if (b && dest.kind !== "archive") {
        const mediaType = ociLayerType(b.mediaType);
        const entry: ExportResult["layers"][number] = {
          label: l.label,
          digest: b.digest,
          diffId: b.diffId,
          size: b.size,
          how: "reused",
        };
        if (await destHas(b.digest)) entry.push = push ? "present" : undefined;
        else {
          const o = parseSource(b.source);
          if (
            push && dest.kind === "registry" && o.kind === "registry" && o.host === dest.host &&
            await push.mountBlob((dest as { repo: string }).repo, b.digest, o.repo)
          ) entry.push = "mounted";
          else if (push && dest.kind === "registry") {
            // streamed from the source straight up: the registry checks the digest
            await push.uploadBlob(dest.repo, b.digest, b.size, () => openBase(b));
            entry.push = "uploaded";
          } else {
            const p = `${tmpDir}/base-${i}`;
            const got = await streamToFile(await openBase(b), p);
            if (got.digest !== b.digest) {
              throw new HdError(
                `Cannot export base layer ${
                  i + 1
                }: the source served bytes hashing to ${got.digest}, not ${b.digest}`,
                "the source changed or is damaged; `hd pull` the base image again",
              );
            }
            await putFile(b.digest, got.size, p);
            if (push) entry.push = "uploaded";
          }
        }
        descs[i] = { mediaType, digest: b.digest, size: b.size };
        diffIds[i] = b.diffId;
        result.layers[i] = entry;
        return;
      }
      if (b && dest.kind === "archive" && ociLayerType(b.mediaType) === EXPORT_MEDIA.layerGzip) {
        // the original bytes, uncompressed: the tar whose digest is the diff_id
        const p = `${tmpDir}/base-${i}.tar`;
        const s = (await openBase(b)).pipeThrough(
          new DecompressionStream("gzip") as unknown as ReadableWritablePair<
            Uint8Array,
            Uint8Array
          >,
        );
        const got = await streamToFile(s, p);
        if (got.digest !== b.diffId) {
          throw new HdError(
            `Cannot export base layer ${
              i + 1
            }: it unpacks to ${got.digest}, not its diff_id ${b.diffId}`,
            "`hd pull` the base image again",
          );
        }
        archiveLayers[i] = { diffId: b.diffId, path: p, size: got.size };
        diffIds[i] = b.diffId;
        result.layers[i] = {
          label: l.label,
          digest: b.diffId,
          diffId: b.diffId,
          size: got.size,
          how: "reused",
        };
        return;
      }
    } catch (e) {
      // the original blob cannot be had (the source is gone, unreachable or changed): the
      // layer is written from its tree instead, which the store verified when it was pulled
      if (!(e instanceof HdError)) throw e;
      fallback = `original blob unavailable (${e.message}); written from the store`;
      say(`layer ${i + 1}: ${fallback}`);
    }
    const key = cacheKey(l, plan.epoch, gzip);
    const known = readCache(store, key);
    if (known && dest.kind !== "archive" && await destHas(known.digest)) {
      descs[i] = { mediaType: EXPORT_MEDIA.layerGzip, digest: known.digest, size: known.size };
      diffIds[i] = known.diffId;
      result.layers[i] = {
        label: l.label,
        ...known,
        how: "cached",
        push: push ? "present" : undefined,
      };
      return;
    }
    const built = await buildLayer(store, l, plan.epoch, gzip, tmpDir);
    writeCache(store, key, built);
    diffIds[i] = built.diffId;
    const entry: ExportResult["layers"][number] = {
      label: l.label,
      digest: built.digest,
      diffId: built.diffId,
      size: built.size,
      how: "built",
      ...(fallback ? { note: fallback } : {}),
    };
    if (dest.kind === "archive") {
      archiveLayers[i] = { diffId: built.diffId, path: built.path!, size: built.size };
    } else {
      descs[i] = { mediaType: EXPORT_MEDIA.layerGzip, digest: built.digest, size: built.size };
      if (await destHas(built.digest)) entry.push = push ? "present" : undefined;
      else {
        await putFile(built.digest, built.size, built.path!);
        if (push) entry.push = "uploaded";
      }
    }
    result.layers[i] = entry;
  };
  try {
    // a few layers at once: compressing one overlaps uploading another
    let next = 0;
    let failure: unknown = null;
    const worker = async () => {
      while (next < plan.layers.length && failure === null) {
        const i = next++;
        try {
          await one(i, plan.layers[i]);
        } catch (e) {
          failure ??= e; // the others finish what they started, then stop
        }
      }
    };
    const n = Math.min(EXPORT_CONCURRENCY, plan.layers.length);
    await Promise.all(Array.from({ length: n }, worker));
    if (failure !== null) throw failure;
    const config = imageConfig(plan, diffIds);
    const configDigest = sha256Digest(config);
    result.configDigest = configDigest;
    if (dest.kind === "archive") {
      result.digest = configDigest; // docker's image id
      await writeArchive(dest, config, configDigest, archiveLayers, tmpDir);
      result.bytesWritten = Deno.statSync(dest.file).size;
    } else {
      const manifest = new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.ociManifest,
        config: { mediaType: EXPORT_MEDIA.config, digest: configDigest, size: config.length },
        layers: descs,
      }));
      const digest = sha256Digest(manifest);
      result.digest = digest;
      if (dest.kind === "oci") {
        for (const [d, bytes] of [[configDigest, config], [digest, manifest]] as const) {
          const p = `${layoutDir}/blobs/sha256/${d.slice(7)}`;
          writeFileAtomic(p, bytes);
        }
        writeFileAtomic(
          `${layoutDir}/oci-layout`,
          new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}'),
        );
        writeIndex(layoutDir, dest.tag, { digest, size: manifest.length });
      } else if (push) {
        const repo = (dest as { repo: string }).repo;
        if (!(await push.hasBlob(repo, configDigest))) {
          await push.uploadBlob(repo, configDigest, config.length, () => config);
        }
        await push.putManifest(repo, (dest as { tag: string }).tag, manifest, MEDIA.ociManifest);
        result.bytesWritten = push.bytesSent;
        result.blobsUploaded = push.blobsSent;
      }
    }
  } finally {
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
  result.ms = performance.now() - t0;
  return result;
}

function writeIndex(dir: string, tag: string | null, m: { digest: string; size: number }): void {
  type D = {
    mediaType: string;
    digest: string;
    size: number;
    annotations?: Record<string, string>;
  };
  let index: { schemaVersion: number; mediaType?: string; manifests: D[] } = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [],
  };
  // the images already there are kept: an index.json that cannot be read stops the export
  // instead of being replaced by one that names only this image
  let prev: { manifests?: unknown } | null = null;
  try {
    const bytes = readBeneath(dir, "index.json", MAX_MANIFEST_BYTES);
    if (bytes !== null) prev = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new HdError(
      `Cannot export to ${dir}: its index.json cannot be read (${(e as Error).message})`,
      "export to a new directory, or mend or remove index.json (the blobs written are kept)",
    );
  }
  if (prev !== null && Array.isArray(prev.manifests)) {
    index = { ...index, manifests: prev.manifests as D[] };
  }
  const name = "org.opencontainers.image.ref.name";
  index.manifests = index.manifests.filter((d) =>
    typeof d !== "object" || d === null || (d.annotations?.[name] ?? null) !== tag
  );
  index.manifests.push({
    mediaType: MEDIA.ociManifest,
    digest: m.digest,
    size: m.size,
    ...(tag !== null ? { annotations: { [name]: tag } } : {}),
  });
  writeFileAtomic(`${dir}/index.json`, new TextEncoder().encode(JSON.stringify(index)));
}

/** A `docker save` archive: manifest.json, the config, one `<diff_id hex>/layer.tar` per layer. */
async function writeArchive(
  dest: { file: string; ref: string | null },
  config: Uint8Array,
  configDigest: string,
  layers: { diffId: string; path: string; size: number }[],
  tmpDir: string,
): Promise<void> {
  const te = new TextEncoder();
  const cfgName = `${configDigest.slice(7)}.json`;
  const names = layers.map((l) => `${l.diffId.slice(7)}/layer.tar`);
  const manifest = te.encode(JSON.stringify([{
    Config: cfgName,
    RepoTags: dest.ref ? [dest.ref] : [],
    Layers: names,
  }]));
  const tmp = `${tmpDir}/archive.tar`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true });
  const put = async (b: Uint8Array) => {
    let o = 0;
    while (o < b.length) o += await f.write(b.subarray(o));
  };
  const file = async (name: string, size: number, body: () => AsyncIterable<Uint8Array>) => {
    await put(entryHeader({
      path: name,
      flag: "0",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size,
      link: "",
      devmajor: 0,
      devminor: 0,
    }, 0));
    for await (const c of body()) await put(c);
    const pad = (512 - (size % 512)) % 512;
    if (pad) await put(new Uint8Array(pad));
  };
  const bytes = (b: Uint8Array) =>
    async function* () {
      yield b;
    };
  try {
    const seen = new Set<string>();
    for (const [i, l] of layers.entries()) {
      if (seen.has(names[i])) continue;
      seen.add(names[i]);
      await put(tarDirHeader(`${l.diffId.slice(7)}/`, 0));
      await file(names[i], l.size, () => fileRange(l.path));
    }
    await file(cfgName, config.length, bytes(config));
    await file("manifest.json", manifest.length, bytes(manifest));
    await put(new Uint8Array(1024));
  } finally {
    f.close();
  }
  Deno.renameSync(tmp, dest.file);
}

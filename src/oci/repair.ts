/**
 * A repair source for `hd cas verify --repair` (cas/repair.ts): pulled images. An object that
 * belongs to a pulled image can be made again from where the image came from, as recorded in its
 * `images/<name>` record when it was pulled: the registry repository (blobs by digest, so a tag
 * that moved since does not matter), the OCI layout or the `docker save` archive.
 *
 * For each image whose record reaches a wanted id, the source
 *  1. re-fetches only the layers whose trees reach a wanted id and unpacks each one exactly as a
 *     pull does (unpack.ts), into a scratch store under the store's `tmp/`;
 *  2. if wanted ids remain that only the whole image reaches (the merged root filesystem's
 *     directories, the manifest, config or index, a layer whose hardlinks point into the layers
 *     below), pulls the whole image — pinned to the recorded digest — into the scratch store;
 * and offers the scratch store's copies of the wanted ids. Nothing offered is trusted: the repair
 * writes only bytes that hash to a wanted id.
 *
 * What cannot be made again: the record itself and its `info` object (they hold the time of the
 * pull); for those, and when the origin cannot be reached, the source explains why and what to do.
 *
 * @example
 * ```ts
 * import { imageSource } from "./repair.ts";
 * import { repairStore } from "../cas/repair.ts";
 * import { dagReferences } from "../dag/refs.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * const r = await repairStore(store, dagReferences, [imageSource(store)]);
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { encodeManifest } from "../cas/manifest.ts";
import type { Explain, Offer, RepairSource } from "../cas/repair.ts";
import { keyKind, objectKey, type ObjectKind, toObjectKey } from "../cas/key.ts";
import { Store } from "../cas/store.ts";
import { getNode } from "../dag/dag.ts";
import type { FileNode } from "../dag/node.ts";
import { type ImageLayer, parseSource, pullImage } from "./image.ts";
import { DockerArchive, OciLayout } from "./layout.ts";
import { RegistryClient } from "./registry.ts";
import { unpackLayer } from "./unpack.ts";

/** Options of {@link imageSource}. */
export interface ImageSourceOptions {
  /** Registry hosts to reach over plain http (loopback always is). */
  insecure?: string[];
  /** Docker config.json with credentials (default ~/.docker/config.json). */
  dockerConfig?: string;
  /** Decompressed/compressed ratio cap per layer, as for a pull. */
  maxRatio?: number;
  /** Fetch nothing: only say which image holds what is damaged. */
  offline?: boolean;
  /** Told what is being fetched (for progress output). */
  onFetch?: (what: string) => void;
}

/**
 * What repairing needs of an image record: where it came from and what it names. Read from the
 * record's Env node and its `info` object only, so that a damaged config or manifest (which the
 * repair may give back) does not hide the rest.
 */
export interface ImageRecordView {
  /** What `hd pull` was given. */
  source: string;
  /** Digest the reference resolved to, and of the platform manifest. */
  digest: string;
  manifestDigest: string;
  /** `os/arch[/variant]`. */
  platform: string;
  layers: ImageLayer[];
  /** Id of the merged root filesystem tree. */
  rootfs: string;
}

/** Reads what {@link ImageRecordView} holds from the record `id`; throws when it cannot. */
export function readRecordView(store: Store, id: string): ImageRecordView {
  const node = getNode(store, id);
  if (node.type !== "env") throw new Error(`record ${id} is a ${node.type} node`);
  const role = (r: string) => node.children.filter((c) => c.role === r).map((c) => c.id);
  const info = JSON.parse(new TextDecoder().decode(store.getObject(role("info")[0])));
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const trees = role("layer");
  const layers = Array.isArray(info?.layers) ? info.layers : [];
  const source = str(info?.source);
  const digest = str(info?.digest);
  const manifestDigest = str(info?.manifestDigest);
  if (
    source === null || digest === null || manifestDigest === null ||
    layers.length !== trees.length || role("rootfs").length !== 1
  ) throw new Error(`record ${id} does not describe an image`);
  return {
    source,
    digest,
    manifestDigest,
    platform: str(info.platform) ?? "",
    rootfs: role("rootfs")[0],
    layers: layers.map((l: Record<string, unknown>, i: number) => {
      const diffId = str(l?.diffId);
      if (diffId === null || typeof l.size !== "number") {
        throw new Error(`record ${id}: layer ${i} has no diff id or size`);
      }
      return { digest: str(l.digest), diffId, size: l.size, tree: trees[i] };
    }),
  };
}

/** Which wanted keys (src/cas/key.ts) each part of one pulled image reaches. */
export interface ImageDamage {
  /** The record's name (`images/<name>`). */
  name: string;
  /** The record, or null when it (or its info object) is damaged. */
  image: ImageRecordView | null;
  /** Wanted keys that are the record itself or its info object: no origin has those bytes. */
  record: string[];
  /** Per layer (as in `image.layers`): wanted keys its tree reaches. */
  layers: Set<string>[];
  /** Wanted keys only the whole image gives back: merged rootfs dirs, manifest, config, index. */
  whole: Set<string>;
}

const isManifestKey = (k: string) => keyKind(toObjectKey(k)) === "manifests";

/**
 * Walks trees in `store` and says which wanted keys each reaches, reading Dir nodes and
 * manifests only (a chunk is named by its file, never read). Damaged nodes reach only themselves.
 */
export class Reach {
  #store: Store;
  #wanted: ReadonlySet<string>;
  #memo = new Map<string, ReadonlySet<string>>();
  static readonly #none: ReadonlySet<string> = new Set();

  constructor(store: Store, wanted: ReadonlySet<string>) {
    this.#store = store;
    this.#wanted = wanted;
  }

  /** Wanted keys reached from the Dir node `id` (itself included). */
  of(id: string): ReadonlySet<string> {
    const m = this.#memo.get(id);
    if (m) return m;
    const out = new Set<string>();
    if (this.#wanted.has(id)) out.add(id);
    let node;
    try {
      node = getNode(this.#store, id);
    } catch {
      node = null; // damaged or missing: reported as wanted when it is
    }
    if (node?.type === "dir") {
      for (const e of node.entries) {
        if (e.dir !== undefined) { for (const k of this.of(e.dir)) out.add(k); }
        else this.#file(e.file, out);
      }
    }
    const r = out.size ? out : Reach.#none;
    this.#memo.set(id, r);
    return r;
  }

  #file(f: FileNode, out: Set<string>): void {
    for (const c of f.chunks ?? []) if (this.#wanted.has(c)) out.add(c);
    if (!f.manifest) return;
    const mk = objectKey("manifests", f.manifest);
    if (this.#wanted.has(mk)) out.add(mk);
    try {
      for (const c of this.#store.getManifest(f.manifest).chunks) {
        if (this.#wanted.has(c)) out.add(c);
      }
    } catch { /* damaged manifest: wanted itself */ }
  }
}

/** Sorts the wanted keys one image record reaches by what can give them back. */
export function imageDamage(
  store: Store,
  reach: Reach,
  wanted: ReadonlySet<string>,
  name: string,
  recordId: string,
): ImageDamage {
  const d: ImageDamage = { name, image: null, record: [], layers: [], whole: new Set() };
  if (wanted.has(recordId)) d.record.push(recordId);
  let children: { role: string; id: string }[] = [];
  try {
    const node = getNode(store, recordId);
    if (node.type === "env") children = node.children;
  } catch { /* the record is damaged: nothing below it can be attributed */ }
  for (const c of children) if (c.role === "info" && wanted.has(c.id)) d.record.push(c.id);
  try {
    d.image = readRecordView(store, recordId);
  } catch {
    return d;
  }
  const inLayers = new Set<string>();
  for (const l of d.image.layers) {
    const s = new Set(reach.of(l.tree));
    d.layers.push(s);
    for (const k of s) inLayers.add(k);
  }
  for (const c of children) {
    if (c.role === "index" || c.role === "manifest" || c.role === "config") {
      if (wanted.has(c.id)) d.whole.add(c.id);
    }
  }
  for (const k of reach.of(d.image.rootfs)) if (!inLayers.has(k)) d.whole.add(k);
  return d;
}

/** Where a pulled image's bytes can be fetched again. */
interface Refetch {
  /** For messages: "registry 127.0.0.1:5000", "OCI layout /x", "archive /y.tar". */
  where: string;
  /** Opens the blob of layer `i`. */
  blob(i: number, l: ImageLayer): Promise<ReadableStream<Uint8Array>>;
  /** A source string that pulls the same image again (pinned to its digest where possible). */
  pinned: string;
}

function refetchFor(img: ImageRecordView, opts: ImageSourceOptions): Refetch {
  const o = parseSource(img.source);
  if (o.kind === "registry") {
    const client = new RegistryClient(o.host, {
      insecure: opts.insecure,
      dockerConfig: opts.dockerConfig,
    });
    return {
      where: `registry ${o.host}`,
      blob: (_i, l) => {
        if (!l.digest) throw new HdError(`Cannot fetch layer ${l.diffId}: no blob digest`, "");
        return client.blob(o.repo, l.digest);
      },
      pinned: `${o.host}/${o.repo}@${img.digest}`,
    };
  }
  if (o.kind === "oci") {
    const layout = new OciLayout(o.dir, o.tag);
    return {
      where: `OCI layout ${o.dir}`,
      blob: (_i, l) => {
        if (!l.digest) throw new HdError(`Cannot read layer ${l.diffId}: no blob digest`, "");
        return layout.blob(l.digest);
      },
      pinned: `oci:${o.dir}${o.tag !== null ? ":" + o.tag : ""}`,
    };
  }
  let archive: DockerArchive | null = null;
  return {
    where: `archive ${o.file}`,
    blob: (i) => {
      archive ??= DockerArchive.open(o.file);
      return Promise.resolve(archive.stream(archive.image(o.ref).layers[i]));
    },
    pinned: `docker-archive:${o.file}${o.ref !== null ? ":" + o.ref : ""}`,
  };
}

function message(e: unknown): string {
  const err = e as Error;
  const hint = e instanceof HdError && e.hint ? ` (${e.hint})` : "";
  return `${err.message}${hint}`;
}

/**
 * The repair source of pulled images (see the module doc). `store` is the store being repaired:
 * its image records are read, and its `tmp/` holds the scratch store (removed afterwards).
 */
export function imageSource(store: Store, opts: ImageSourceOptions = {}): RepairSource {
  return {
    name: "pulled images",
    async supply(wanted: ReadonlySet<string>, offer: Offer, explain: Explain) {
      const images = store.listRefs().filter(([n]) => n.startsWith("images/"));
      if (images.length === 0 || wanted.size === 0) return;
      const reach = new Reach(store, wanted);
      let scratch: Store | null = null;
      let scratchDir = "";
      const fetched = new Set<string>(); // diff ids unpacked into the scratch store
      const give = (keys: Iterable<string>, from: string) => {
        for (const k of keys) {
          if (!wanted.has(k) || scratch === null) continue;
          const kind: ObjectKind = isManifestKey(k) ? "manifests" : "objects";
          const id = kind === "manifests" ? k.slice(1) : k;
          if (!scratch.has(id, kind)) continue;
          try {
            const bytes = kind === "objects"
              ? scratch.getObject(id)
              : encodeManifest(scratch.getManifest(id));
            offer(kind, bytes, from);
          } catch { /* the scratch copy is bad too: not offered */ }
        }
      };
      try {
        for (const [ref, recordId] of images) {
          if (wanted.size === 0) break;
          const name = ref.slice("images/".length);
          const d = imageDamage(store, reach, wanted, name, recordId);
          const source = d.image?.source ?? name;
          for (const k of d.record) {
            explain(
              k,
              `it is the record of image ${name}, which holds the time of its pull and so is in ` +
                `no registry: run \`hd pull ${source}\` to record the image again`,
            );
          }
          if (d.image === null) continue;
          const img = d.image;
          const live = () => {
            const all = new Set(d.whole);
            for (const s of d.layers) for (const k of s) all.add(k);
            return [...all].filter((k) => wanted.has(k));
          };
          if (live().length === 0) continue;
          if (opts.offline) {
            for (const k of live()) {
              explain(k, `image ${name} holds it; not fetched again (--offline)`);
            }
            continue;
          }
          let origin: Refetch;
          try {
            origin = refetchFor(img, opts);
          } catch (e) {
            for (const k of live()) {
              explain(k, `image ${name} holds it, but its source is unusable: ${message(e)}`);
            }
            continue;
          }
          if (scratch === null) {
            Deno.mkdirSync(`${store.root}/tmp`, { recursive: true });
            scratchDir = Deno.makeTempDirSync({ dir: `${store.root}/tmp`, prefix: "repair-" });
            scratch = Store.open(scratchDir, { create: true });
          }
          const s: Store = scratch;
          let failure: string | null = null;
          // 1. only the layers that reach a wanted id
          for (let i = 0; i < img.layers.length && failure === null; i++) {
            const l = img.layers[i];
            if (![...d.layers[i]].some((k) => wanted.has(k))) continue;
            const label = l.digest ?? l.diffId;
            if (!fetched.has(l.diffId)) {
              opts.onFetch?.(`fetching layer ${label} of ${name} from ${origin.where}`);
              try {
                await s.withLock(
                  "shared",
                  () =>
                    s.batchAsync(async () =>
                      unpackLayer(s, await origin.blob(i, l), {
                        label,
                        digest: l.digest,
                        diffId: l.diffId,
                        compressedSize: l.size,
                        maxRatio: opts.maxRatio,
                      })
                    ),
                );
                fetched.add(l.diffId);
              } catch (e) {
                failure = `layer ${label} could not be fetched from ${origin.where}: ${message(e)}`;
                break;
              }
            }
            give(d.layers[i], `image ${name} (layer ${label} from ${origin.where})`);
          }
          // 2. what only the whole image gives back
          if (failure === null && live().length) {
            opts.onFetch?.(`pulling ${origin.pinned} again (for ${name})`);
            try {
              const again = await pullImage(s, origin.pinned, {
                insecure: opts.insecure,
                dockerConfig: opts.dockerConfig,
                platform: img.platform || undefined,
                maxRatio: opts.maxRatio,
              });
              if (again.digest !== img.digest || again.manifestDigest !== img.manifestDigest) {
                failure = `${origin.where} now holds another image (${again.manifestDigest}, ` +
                  `pulled ${img.manifestDigest})`;
              }
              give(live(), `image ${name} (pulled again from ${origin.where})`);
            } catch (e) {
              failure = `it could not be pulled again from ${origin.where}: ${message(e)}`;
            }
          }
          for (const k of live()) {
            explain(
              k,
              `image ${name} holds it, but ${
                failure ?? `fetching it again from ${origin.where} did not give these bytes`
              }`,
            );
          }
        }
      } finally {
        if (scratchDir) {
          try {
            Deno.removeSync(scratchDir, { recursive: true });
          } catch { /* gc removes old temp entries */ }
        }
      }
    },
  };
}

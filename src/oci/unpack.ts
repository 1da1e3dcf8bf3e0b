/**
 * Layers into the CAS: a layer blob (tar, tar+gzip or tar+zstd) is streamed — downloaded bytes are
 * digested, decompressed, parsed and chunked as they arrive, never written to disk as a whole —
 * into File and Dir nodes that keep modes, owners, mtimes, symlinks, hardlinks (the same File node
 * twice) and device numbers. Each layer keeps its own tree, OCI whiteouts (`.wh.NAME`,
 * `.wh..wh..opq`) included as plain files; {@link mergeLayer} applies them when it lays a layer
 * over the image's root tree.
 *
 * Extended attributes (pax `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*`, e.g. `security.capability`)
 * are kept on the File and Dir nodes.
 *
 * Hostile archives are refused before anything is recorded: absolute paths, `..`, entries written
 * through a symlink, hardlinks to nothing, xattrs without a namespace or over 64 KiB, and
 * decompression bombs: more than {@link DEFAULT_MAX_RATIO}× the compressed bytes actually received
 * (above a {@link RATIO_FLOOR} floor), or more than {@link DEFAULT_MAX_UNPACKED} bytes in all,
 * whichever comes first — the size a descriptor declares is never the base of a limit.
 *
 * @example
 * ```ts
 * import { mergeLayer, unpackLayer } from "./unpack.ts";
 * import { Tree } from "../dag/tree.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const blobStream: ReadableStream<Uint8Array>;
 * declare const diffId: string, compressedSize: number;
 * const layer = await unpackLayer(store, blobStream, { diffId, compressedSize });
 * const rootfs = new Tree();
 * mergeLayer(store, rootfs, layer.tree);
 * rootfs.commit(store);
 * ```
 * @module
 */
import { createRequire } from "node:module";
import type zlib from "node:zlib";

// node:zlib and node:crypto load on first use (~6-14 ms of evaluation together): every `hd up`
// imports this module through the step cache, and only a pull or a layer unpack uses them
const nodeRequire = createRequire(import.meta.url);
let cryptoMod: typeof import("node:crypto") | undefined;
const createHash: typeof import("node:crypto").createHash = (...a) =>
  (cryptoMod ??= nodeRequire("node:crypto")).createHash(...a);
let zlibMod: typeof zlib | undefined;
const lazyZlib = (): typeof zlib => (zlibMod ??= nodeRequire("node:zlib"));
import { MAX_CHUNK, nextCut } from "../cas/chunk.ts";
import { HdError } from "../sys/errors.ts";
import type { Store } from "../cas/store.ts";
import { type FileNode, INLINE_CHUNKS, sortXattrs, XATTR_VALUE_MAX } from "../dag/node.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from "../sys/mode.ts";
import { MemDir, Tree } from "../dag/tree.ts";
import { type TarHeader, TarReader } from "./tar.ts";

/** A layer may decompress to at most this many times its compressed size… */
export const DEFAULT_MAX_RATIO = 100;
/** …once it is past this many decompressed bytes. */
export const RATIO_FLOOR = 64 << 20;
/** A layer may never decompress to more than this many bytes (nor be larger compressed). */
export const DEFAULT_MAX_UNPACKED = 64 * 1024 ** 3;

/** Prefix of an OCI whiteout entry. */
export const WHITEOUT_PREFIX = ".wh.";
/** Name of the OCI opaque-directory marker. */
export const OPAQUE_MARKER = ".wh..wh..opq";

/** Options of {@link unpackLayer}. */
export interface UnpackOptions {
  /** Label used in messages (`sha256:…`). */
  label?: string;
  /** Expected `sha256:<hex>` of the blob as sent (compressed); checked when given. */
  digest?: string | null;
  /** Expected `sha256:<hex>` of the uncompressed tar (the config's diff_id); checked when given. */
  diffId?: string | null;
  /** Size of the blob as sent: checked, and the base of the decompression-ratio cap. */
  compressedSize: number;
  /**
   * Decompressed/compressed ratio cap over the compressed bytes received so far (default
   * {@link DEFAULT_MAX_RATIO}; 0 = no ratio cap).
   */
  maxRatio?: number;
  /** Absolute cap of decompressed (and compressed) bytes (default {@link DEFAULT_MAX_UNPACKED}). */
  maxUnpacked?: number;
  /**
   * The merged tree of the layers below, to resolve hardlinks that point into them. Without it,
   * such hardlinks are returned in `pendingLinks` and the tree is left uncommitted until
   * {@link resolvePendingLinks} (so layers can be unpacked concurrently).
   */
  lower?: Tree | null;
  /** Stops the unpack (the blob stream is cancelled and the call rejects). */
  signal?: AbortSignal;
  /** Called as bytes arrive: compressed bytes read, uncompressed bytes unpacked. */
  onProgress?: (compressed: number, uncompressed: number) => void;
}

/** A hardlink whose target was not in its own layer (resolved against the layers below). */
export interface PendingLink {
  path: string;
  target: string;
}

/** What {@link unpackLayer} produced. */
export interface UnpackedLayer {
  /** Id of the layer's root Dir node (whiteouts kept as files); null while links are pending. */
  root: string | null;
  /** Hardlinks into lower layers still to resolve (only when no `lower` tree was given). */
  pendingLinks: PendingLink[];
  /** The layer's tree (in memory). */
  tree: Tree;
  /** `sha256:<hex>` of the blob as sent. */
  digest: string;
  /** `sha256:<hex>` of the uncompressed tar. */
  diffId: string;
  /** Compression detected from the blob's first bytes. */
  compression: "none" | "gzip" | "zstd";
  compressedBytes: number;
  uncompressedBytes: number;
  entries: number;
}

function hostile(label: string, why: string): HdError {
  return new HdError(
    `Cannot unpack layer ${label}: ${why}`,
    "the image is damaged or hostile; nothing was recorded for it",
  );
}

/**
 * Most components a path in a layer may have. Linux's PATH_MAX (4096 bytes) allows at most 2048
 * in one path; real images stay far below 100. Deeper entries are refused before any tree is
 * built from them.
 */
export const MAX_PATH_DEPTH = 1024;

/** Splits a tar path into clean components; refuses absolute paths, `..` and deep paths. */
export function cleanTarPath(label: string, path: string): string[] {
  const parts: string[] = [];
  const shown = path.length > 120 ? `${path.slice(0, 60)}…${path.slice(-40)}` : path;
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw hostile(label, `entry "${path}" leaves the root (..)`);
    if (p.includes("\0")) throw hostile(label, `entry "${path}" has a NUL byte`);
    parts.push(p);
  }
  if (parts.length > MAX_PATH_DEPTH) {
    throw hostile(label, `entry "${shown}" is deeper than the ${MAX_PATH_DEPTH}-component limit`);
  }
  // "/" alone names the root (umoci writes it so); anything else absolute is refused.
  if (path.startsWith("/") && parts.length > 0) {
    throw hostile(label, `entry "${path}" is an absolute path`);
  }
  return parts;
}

/** Longest xattr name Linux accepts (XATTR_NAME_MAX). */
const XATTR_NAME_MAX = 255;

/** Checks an entry's xattrs and returns them in canonical order (undefined when none). */
export function checkXattrs(
  label: string,
  path: string,
  xattrs: [string, Uint8Array][] | undefined,
): [string, Uint8Array][] | undefined {
  if (!xattrs || xattrs.length === 0) return undefined;
  for (const [name, value] of xattrs) {
    const dot = name.indexOf(".");
    if (dot <= 0 || dot === name.length - 1) {
      throw hostile(
        label,
        `entry "${path}" has the xattr "${name}", which has no namespace (like "user." or ` +
          `"security.")`,
      );
    }
    if (name.includes("\0") || new TextEncoder().encode(name).length > XATTR_NAME_MAX) {
      throw hostile(label, `entry "${path}" has an xattr name that is too long or has a NUL byte`);
    }
    if (name.startsWith("trusted.overlay.")) {
      throw hostile(
        label,
        `entry "${path}" has the xattr "${name}", which would steer overlayfs when the layer is ` +
          `mounted`,
      );
    }
    if (value.length > XATTR_VALUE_MAX) {
      throw hostile(
        label,
        `entry "${path}" has the xattr "${name}" of ${value.length} bytes, over the ` +
          `${XATTR_VALUE_MAX}-byte limit`,
      );
    }
  }
  return sortXattrs(xattrs);
}

function makedev(major: number, minor: number): number {
  // glibc's encoding, as st_rdev holds it.
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) * 0x1000) +
      (major & ~0xfff) * 0x100000000) >>> 0;
}

/** Cuts a file's bytes, pushed piece by piece, into FastCDC chunks stored in the CAS. */
class FileSink {
  #store: Store;
  #scratch: Uint8Array;
  #have = 0;
  ids: string[] = [];
  size = 0;

  /** `scratch` (4 × MAX_CHUNK bytes) is reused from file to file of one layer. */
  constructor(store: Store, scratch: Uint8Array) {
    this.#store = store;
    this.#scratch = scratch;
  }

  push(data: Uint8Array): void {
    const buf = this.#scratch;
    let off = 0;
    this.size += data.length;
    while (off < data.length) {
      if (this.#have === buf.length) {
        let pos = 0;
        while (true) {
          const cut = nextCut(buf, pos, this.#have, false);
          if (cut < 0) break;
          this.ids.push(this.#store.putObject(buf.subarray(pos, pos + cut)));
          pos += cut;
        }
        buf.copyWithin(0, pos, this.#have);
        this.#have -= pos;
      }
      const take = Math.min(data.length - off, buf.length - this.#have);
      buf.set(data.subarray(off, off + take), this.#have);
      this.#have += take;
      off += take;
    }
  }

  finish(mode: number): FileNode {
    const buf = this.#scratch;
    let pos = 0;
    while (pos < this.#have) {
      const cut = nextCut(buf, pos, this.#have, true);
      this.ids.push(this.#store.putObject(buf.subarray(pos, pos + cut)));
      pos += cut;
    }
    this.#have = 0;
    const f: FileNode = { type: "file", mode, size: this.size };
    if (this.ids.length <= INLINE_CHUNKS) f.chunks = this.ids;
    else f.manifest = this.#store.putManifest({ size: this.size, chunks: this.ids });
    return f;
  }
}

/** Builds one layer's tree from tar entries. */
class LayerBuilder {
  tree = new Tree(new MemDir());
  #store: Store;
  #label: string;
  #lower: Tree | null;
  #scratch = new Uint8Array(4 * MAX_CHUNK);
  #sink: FileSink | null = null;
  pending: PendingLink[] = [];
  #defer: boolean;
  #pending: { parent: MemDir; name: string; h: TarHeader } | null = null;
  /** Hardlink groups numbered so far (FileNode.link). */
  #links = 0;

  constructor(store: Store, label: string, lower: Tree | null, defer: boolean) {
    this.#store = store;
    this.#label = label;
    this.#lower = lower;
    this.#defer = defer;
  }

  #parentDir(parts: string[], path: string): MemDir {
    let d = this.tree.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const c = d.entries.get(parts[i]);
      if (c === undefined) {
        const nd = new MemDir();
        d.entries.set(parts[i], nd);
        d = nd;
      } else if (c instanceof MemDir) {
        d = c;
      } else if ((c.mode & S_IFMT) === S_IFLNK) {
        throw hostile(
          this.#label,
          `entry "${path}" is written through the symlink "${
            parts.slice(0, i + 1).join("/")
          }" → "${c.target}"`,
        );
      } else {
        throw hostile(
          this.#label,
          `entry "${path}" is below "${parts.slice(0, i + 1).join("/")}", which is not a directory`,
        );
      }
    }
    return d;
  }

  entry(h: TarHeader): void {
    const parts = cleanTarPath(this.#label, h.path);
    const xattrs = checkXattrs(this.#label, h.path, h.xattrs);
    const meta: { uid: number; gid: number; mtime: number; xattrs?: [string, Uint8Array][] } = {
      uid: h.uid,
      gid: h.gid,
      mtime: h.mtime,
    };
    if (xattrs) meta.xattrs = xattrs;
    if (parts.length === 0) {
      if (h.type !== "dir") throw hostile(this.#label, `entry "${h.path}" replaces the root`);
      this.tree.root.mode = S_IFDIR | h.mode;
      this.tree.root.meta = meta;
      return;
    }
    const parent = this.#parentDir(parts, h.path);
    const name = parts[parts.length - 1];
    switch (h.type) {
      case "dir": {
        const cur = parent.entries.get(name);
        const d = cur instanceof MemDir ? cur : new MemDir();
        d.mode = S_IFDIR | h.mode;
        d.meta = meta;
        parent.entries.set(name, d);
        return;
      }
      case "file":
        this.#sink = new FileSink(this.#store, this.#scratch);
        this.#pending = { parent, name, h };
        return;
      case "symlink": {
        const target = h.linkname;
        parent.entries.set(name, {
          type: "file",
          mode: S_IFLNK | 0o777,
          size: new TextEncoder().encode(target).length,
          target,
          ...meta,
        });
        return;
      }
      case "hardlink": {
        const tparts = cleanTarPath(this.#label, h.linkname);
        const path = tparts.join("/");
        let target = tparts.length ? this.tree.get(path) : undefined;
        if (target === undefined && this.#lower && tparts.length) target = this.#lower.get(path);
        if (target === undefined && this.#defer && tparts.length) {
          // Maybe a file of a lower layer: resolved once those are merged.
          this.pending.push({ path: parts.join("/"), target: path });
          return;
        }
        if (target === undefined || target instanceof MemDir) {
          throw hostile(
            this.#label,
            `hardlink "${h.path}" points at "${h.linkname}", which is ${
              target ? "a directory" : "not in the image"
            }`,
          );
        }
        // one inode in the tar: the same File node under both names, marked as a link group
        // (a target of this layer; one of a layer below is a copy here, as overlayfs shows it)
        if (this.tree.get(path) === target) target.link ??= ++this.#links;
        parent.entries.set(name, target);
        return;
      }
      case "char":
      case "block":
      case "fifo": {
        const type = h.type === "char" ? S_IFCHR : h.type === "block" ? S_IFBLK : S_IFIFO;
        const f: FileNode = { type: "file", mode: type | h.mode, size: 0, ...meta };
        if (h.type !== "fifo") f.rdev = makedev(h.devmajor, h.devminor);
        parent.entries.set(name, f);
        return;
      }
    }
  }

  data(bytes: Uint8Array): void {
    this.#sink!.push(bytes);
  }

  end(): void {
    if (!this.#pending) return;
    const { parent, name, h } = this.#pending;
    const f = this.#sink!.finish(S_IFREG | h.mode);
    f.uid = h.uid;
    f.gid = h.gid;
    f.mtime = h.mtime;
    const xattrs = checkXattrs(this.#label, h.path, h.xattrs);
    if (xattrs) f.xattrs = xattrs;
    parent.entries.set(name, f);
    this.#pending = null;
    this.#sink = null;
  }
}

type Compression = "none" | "gzip" | "zstd";

function detect(b: Uint8Array): Compression {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return "gzip";
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) {
    return "zstd";
  }
  return "none";
}

/**
 * Streams one layer blob into the store and returns its tree. Verifies the blob's digest and the
 * uncompressed diff_id when they are given; throws an HdError (and records nothing) when they
 * differ, when the tar is malformed or hostile, or when it decompresses past the ratio cap.
 */
export async function unpackLayer(
  store: Store,
  blob: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  opts: UnpackOptions,
): Promise<UnpackedLayer> {
  const label = opts.label ?? opts.diffId ?? opts.digest ?? "(layer)";
  const ratio = opts.maxRatio ?? DEFAULT_MAX_RATIO;
  const maxUnpacked = opts.maxUnpacked ?? DEFAULT_MAX_UNPACKED;
  const BOMB_HINT = "the image is damaged or hostile; nothing was recorded for it (if it is " +
    "genuine, raise --max-ratio or --max-unpacked, or HD_PULL_MAX_RATIO / HD_PULL_MAX_UNPACKED)";
  const outer = createHash("sha256");
  const inner = createHash("sha256");
  const builder = new LayerBuilder(store, label, opts.lower ?? null, !opts.lower);
  const reader = new TarReader(builder);
  let compressed = 0;
  let uncompressed = 0;
  let compression: Compression | null = null;
  let z: zlib.Gunzip | zlib.ZstdDecompress | null = null;
  let zDone: Promise<void> | null = null;
  let failure: unknown = null;

  const consume = (piece: Uint8Array) => {
    uncompressed += piece.length;
    // The ratio is over the bytes received, never over the size the descriptor declares.
    if (ratio > 0 && uncompressed > RATIO_FLOOR && uncompressed > ratio * compressed) {
      throw new HdError(
        `Cannot unpack layer ${label}: it decompresses to more than ${uncompressed} bytes, over ` +
          `${ratio}× the ${compressed} compressed bytes received (a decompression bomb?)`,
        BOMB_HINT,
      );
    }
    if (uncompressed > maxUnpacked) {
      throw new HdError(
        `Cannot unpack layer ${label}: it decompresses to more than the ${maxUnpacked}-byte ` +
          `limit (a decompression bomb?)`,
        BOMB_HINT,
      );
    }
    inner.update(piece);
    if (!reader.done) {
      try {
        reader.push(piece);
      } catch (e) {
        if (e instanceof HdError) throw e;
        throw hostile(label, `the tar is malformed: ${(e as Error).message}`);
      }
    }
  };

  const startDecoder = (kind: Compression) => {
    const d = kind === "gzip" ? lazyZlib().createGunzip() : lazyZlib().createZstdDecompress();
    z = d;
    zDone = new Promise<void>((resolve) => {
      d.on("data", (out: Uint8Array) => {
        if (failure) return;
        try {
          consume(out);
        } catch (e) {
          failure = e;
          d.destroy();
          resolve();
        }
      });
      d.on("end", () => resolve());
      d.on("close", () => resolve());
      d.on("error", (e: Error) => {
        if (!failure) {
          failure = hostile(label, `the ${kind} stream is corrupt: ${e.message}`);
        }
        resolve();
      });
    });
  };

  const iterable = Symbol.asyncIterator in blob
    ? blob as AsyncIterable<Uint8Array>
    : (blob as ReadableStream<Uint8Array>);
  let lastReport = 0;
  try {
    for await (const piece of iterable) {
      if (failure) break;
      if (opts.signal?.aborted) {
        failure = new HdError(`Cannot unpack layer ${label}: stopped`, "");
        break;
      }
      compressed += piece.length;
      if (compressed > maxUnpacked) {
        throw new HdError(
          `Cannot unpack layer ${label}: it is larger than the ${maxUnpacked}-byte limit`,
          BOMB_HINT,
        );
      }
      if (opts.compressedSize >= 0 && compressed > opts.compressedSize) {
        throw hostile(
          label,
          `it is larger than the ${opts.compressedSize} bytes its descriptor says`,
        );
      }
      outer.update(piece);
      if (compression === null) {
        compression = detect(piece);
        if (compression !== "none") startDecoder(compression);
      }
      if (z) {
        const d = z as zlib.Gunzip;
        if (!d.write(piece)) {
          await new Promise<void>((r) => {
            const go = () => {
              d.off("drain", go);
              d.off("close", go);
              r();
            };
            d.on("drain", go);
            d.on("close", go);
          });
        }
      } else {
        consume(piece);
      }
      if (opts.onProgress && compressed - lastReport > (1 << 20)) {
        lastReport = compressed;
        opts.onProgress(compressed, uncompressed);
      }
    }
  } catch (e) {
    (z as zlib.Gunzip | null)?.destroy();
    throw e;
  }
  if (z) {
    (z as zlib.Gunzip).end();
    await zDone;
  }
  if (failure) throw failure;
  opts.onProgress?.(compressed, uncompressed);
  try {
    reader.finish();
  } catch (e) {
    throw hostile(label, `the tar is malformed: ${(e as Error).message}`);
  }
  if (opts.compressedSize >= 0 && compressed !== opts.compressedSize) {
    throw new HdError(
      `Cannot unpack layer ${label}: it is ${compressed} bytes, its descriptor says ${opts.compressedSize}`,
      "the download was cut short or the image is damaged; pull again",
    );
  }
  const digest = "sha256:" + outer.digest("hex");
  const diffId = "sha256:" + inner.digest("hex");
  if (opts.digest && opts.digest !== digest) {
    throw new HdError(
      `Cannot unpack layer ${label}: its bytes hash to ${digest}, not ${opts.digest}`,
      "the download was damaged or the registry serves something else; pull again",
    );
  }
  if (opts.diffId && opts.diffId !== diffId) {
    throw new HdError(
      `Cannot unpack layer ${label}: its uncompressed tar hashes to ${diffId}, not the config's ` +
        `diff_id ${opts.diffId}`,
      "the image is damaged or hostile; nothing was recorded for it",
    );
  }
  const pendingLinks = builder.pending;
  const root = pendingLinks.length ? null : builder.tree.commit(store);
  return {
    root,
    pendingLinks,
    tree: builder.tree,
    digest,
    diffId,
    compression: compression ?? "none",
    compressedBytes: compressed,
    uncompressedBytes: uncompressed,
    entries: reader.entries,
  };
}

/**
 * Resolves a layer's hardlinks into lower layers against `lower` (the merged tree of the layers
 * below), then commits the layer tree and returns its root id. Throws when a target is missing.
 */
export function resolvePendingLinks(
  store: Store,
  layer: UnpackedLayer,
  lower: Tree,
  label = "(layer)",
): string {
  for (const l of layer.pendingLinks) {
    const target = layer.tree.get(l.target) ?? lower.get(l.target);
    if (target === undefined || target instanceof MemDir) {
      throw hostile(
        label,
        `hardlink "${l.path}" points at "${l.target}", which is ${
          target ? "a directory" : "not in the image"
        }`,
      );
    }
    layer.tree.setFile(l.path, target);
  }
  layer.pendingLinks = [];
  layer.root = layer.tree.commit(store);
  return layer.root;
}

const whiteoutFree = new Map<string, boolean>();

/** True when `top` or a directory below it holds a whiteout (iterative; memoized by dir id). */
function hasWhiteouts(top: MemDir): boolean {
  if (top.id !== null) {
    const known = whiteoutFree.get(top.id);
    if (known !== undefined) return !known;
  }
  const seen: MemDir[] = [];
  const stack = [top];
  let found = false;
  while (stack.length && !found) {
    const d = stack.pop()!;
    if (d !== top && d.id !== null) {
      const known = whiteoutFree.get(d.id);
      if (known === true) continue;
      if (known === false) {
        found = true;
        break;
      }
    }
    seen.push(d);
    for (const [name, c] of d.entries) {
      if (name.startsWith(WHITEOUT_PREFIX)) {
        found = true;
        break;
      }
      if (c instanceof MemDir) stack.push(c);
    }
  }
  if (!found) { for (const d of seen) if (d.id !== null) whiteoutFree.set(d.id, true); }
  if (found && top.id !== null) whiteoutFree.set(top.id, false);
  return found;
}

/**
 * Merges `upper` into `lower` (see {@link mergeLayer}). Iterative: each directory is one task on
 * a stack (whiteouts, then its entries; subdirectories become tasks), so any depth is fine.
 */
function mergeDir(store: Store, lower: MemDir, upper: MemDir, label: string, path: string): void {
  const tasks = [{ lower, upper, path }];
  while (tasks.length) {
    const { lower, upper, path } = tasks.pop()!;
    const ents = upper.entries; // loads a stored layer dir (and its mode) first
    if (ents.has(OPAQUE_MARKER)) lower.entries.clear();
    for (const name of ents.keys()) {
      if (name === OPAQUE_MARKER || !name.startsWith(WHITEOUT_PREFIX)) continue;
      const victim = name.slice(WHITEOUT_PREFIX.length);
      if (victim === "" || victim === "." || victim === ".." || victim.includes("/")) {
        throw hostile(label, `whiteout "${path}${name}" names nothing valid`);
      }
      lower.entries.delete(victim);
    }
    for (const [name, c] of ents) {
      if (name.startsWith(WHITEOUT_PREFIX)) continue;
      if (c instanceof MemDir) {
        const cur = lower.entries.get(name);
        if (cur instanceof MemDir) {
          tasks.push({ lower: cur, upper: c, path: `${path}${name}/` });
        } else if (c.id !== null && !hasWhiteouts(c)) {
          // A stored directory without whiteouts is shared as is.
          lower.entries.set(name, MemDir.lazy(c.id, store));
        } else {
          const d = new MemDir();
          lower.entries.set(name, d);
          tasks.push({ lower: d, upper: c, path: `${path}${name}/` });
        }
      } else {
        lower.entries.set(name, c);
      }
    }
    lower.mode = upper.mode;
    lower.meta = { ...upper.meta };
    lower.id = null;
  }
}

/**
 * Lays the layer tree `layer` (its whiteouts kept as files) over `rootfs`: whiteouts delete what
 * they name below, opaque markers empty their directory below, everything else replaces what it
 * covers (a directory merges into a directory). `rootfs` is changed in place; commit it afterwards.
 */
export function mergeLayer(store: Store, rootfs: Tree, layer: Tree, label = "(layer)"): void {
  mergeDir(store, rootfs.root, layer.root, label, "/");
}

/**
 * Local image sources: an OCI image-layout directory (`oci:DIR[:TAG]`, as `skopeo copy` and
 * `umoci` write it) and a `docker save` archive (`docker-archive:FILE[:REF]`), read in place
 * (an archive's members are streamed from their offsets, never extracted).
 *
 * @example
 * ```ts
 * import { OciLayout, DockerArchive } from "./layout.ts";
 * const layout = new OciLayout("/tmp/img", "1");
 * const top = await layout.root();
 * const a = DockerArchive.open("/tmp/img.tar");
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { checksumOk, cstr, num, parsePax } from "./tar.ts";
import { type FetchedManifest, MAX_MANIFEST_BYTES, MEDIA, sha256Digest } from "./registry.ts";
import { openFileBeneath, readBeneath } from "../sys/nofollow.ts";

/** Reads `length` bytes at `offset` of a file as a stream of pieces. */
export function fileRange(
  path: string,
  offset = 0,
  length = Infinity,
): ReadableStream<Uint8Array> {
  return fileStream(() => Deno.open(path, { read: true }), offset, length);
}

/** Reads `length` bytes at `offset` of the file `open` gives as a stream of pieces. */
function fileStream(
  open: () => Promise<Deno.FsFile>,
  offset = 0,
  length = Infinity,
): ReadableStream<Uint8Array> {
  let f: Deno.FsFile | null = null;
  let left = length;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    async pull(c) {
      if (!f) {
        f = await open();
        if (offset) await f.seek(offset, Deno.SeekMode.Start);
      }
      if (left <= 0) {
        f.close();
        c.close();
        return;
      }
      const buf = new Uint8Array(Math.min(1 << 20, left));
      const n = await f.read(buf);
      if (n === null || n === 0) {
        f.close();
        c.close();
        return;
      }
      left -= n;
      c.enqueue(buf.subarray(0, n));
    },
    cancel() {
      f?.close();
    },
  });
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (e) {
    throw new HdError(`Cannot read ${what}: not JSON (${(e as Error).message})`, "");
  }
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** An OCI image layout directory. */
export class OciLayout {
  readonly dir: string;
  readonly tag: string | null;

  constructor(dir: string, tag: string | null) {
    this.dir = dir;
    this.tag = tag;
  }

  /** The blob's path inside the layout (`blobs/ALG/HEX`). */
  #blobPath(digest: string): string {
    const m = /^([a-z0-9]+):([0-9a-f]{32,})$/.exec(digest);
    if (!m) throw new HdError(`Cannot read blob "${digest}" of ${this.dir}: not a digest`, "");
    return `blobs/${m[1]}/${m[2]}`;
  }

  /**
   * Reads and verifies a small blob (a manifest or an index): a regular file inside the layout
   * (a symlink may lead elsewhere inside it, never out), at most {@link MAX_MANIFEST_BYTES}, as a
   * registry's are.
   */
  blobBytes(digest: string): Uint8Array {
    let bytes: Uint8Array | null;
    try {
      bytes = readBeneath(this.dir, this.#blobPath(digest), MAX_MANIFEST_BYTES);
    } catch (e) {
      throw new HdError(
        `Cannot read blob ${digest} of ${this.dir}: ${(e as Error).message}`,
        "a layout's blobs are regular files of at most 4 MiB for manifests; copy the image again",
      );
    }
    if (bytes === null) {
      throw new HdError(
        `Cannot read blob ${digest} of ${this.dir}: it is not there`,
        "the layout is incomplete; copy the image again",
      );
    }
    const actual = sha256Digest(bytes);
    if (digest.startsWith("sha256:") && actual !== digest) {
      throw new HdError(
        `Cannot read blob ${digest} of ${this.dir}: its bytes hash to ${actual}`,
        "",
      );
    }
    return bytes;
  }

  /** The manifest (or index) the tag names, or the only one when no tag was given. */
  root(): Promise<FetchedManifest> {
    let index: { manifests?: Descriptor[] };
    try {
      const bytes = readBeneath(this.dir, "index.json", MAX_MANIFEST_BYTES);
      if (bytes === null) throw new Error("it has no index.json");
      index = parseJson(bytes, `${this.dir}/index.json`);
    } catch (e) {
      if (e instanceof HdError) throw e;
      throw new HdError(
        `Cannot open OCI layout ${this.dir}: ${(e as Error).message}`,
        "pass a directory written by `skopeo copy … oci:DIR` or `umoci init`",
      );
    }
    const all = index.manifests ?? [];
    const tagOf = (d: Descriptor) => d.annotations?.["org.opencontainers.image.ref.name"];
    let pick: Descriptor | undefined;
    if (this.tag !== null) pick = all.find((d) => tagOf(d) === this.tag);
    else if (all.length === 1) pick = all[0];
    if (!pick) {
      const tags = all.map(tagOf).filter(Boolean);
      throw new HdError(
        this.tag !== null
          ? `Cannot find tag "${this.tag}" in OCI layout ${this.dir}`
          : `Cannot pick an image in OCI layout ${this.dir}: it holds ${all.length}`,
        tags.length ? `name one of: ${tags.join(", ")} (oci:DIR:TAG)` : "the layout is empty",
      );
    }
    return this.manifest(pick.digest, pick.mediaType);
  }

  /** A manifest or index by digest. */
  manifest(digest: string, mediaType?: string): Promise<FetchedManifest> {
    const bytes = this.blobBytes(digest);
    const parsed = parseJson<{ mediaType?: string; manifests?: unknown }>(bytes, digest);
    const mt = parsed.mediaType ?? mediaType ??
      (parsed.manifests ? MEDIA.ociIndex : MEDIA.ociManifest);
    return Promise.resolve({ bytes, mediaType: mt, digest });
  }

  /**
   * A blob as a stream: a regular file inside the layout, opened now (a symlink out of the layout,
   * a FIFO or a device is refused; the reader bounds and verifies what it reads).
   */
  blob(digest: string): Promise<ReadableStream<Uint8Array>> {
    let f: Deno.FsFile | null;
    try {
      f = openFileBeneath(this.dir, this.#blobPath(digest));
      if (f === null) throw new Error("it is not there");
    } catch (e) {
      throw new HdError(
        `Cannot read blob ${digest} of ${this.dir}: ${(e as Error).message}`,
        "the layout is incomplete or not a plain copy; copy the image again",
      );
    }
    const file = f;
    return Promise.resolve(fileStream(() => Promise.resolve(file)));
  }
}

/** One member of a tar file: where its bytes start and how many there are. */
export interface TarMember {
  offset: number;
  size: number;
}

/** Lists the members of an (uncompressed) tar file by reading only its headers. */
export function indexTarFile(path: string): Map<string, TarMember> {
  const out = new Map<string, TarMember>();
  const f = Deno.openSync(path, { read: true });
  try {
    const size = f.statSync().size;
    const hdr = new Uint8Array(512);
    let off = 0;
    let longName: string | null = null;
    let paxPath: string | null = null;
    const links: [string, string][] = [];
    const readAt = (pos: number, buf: Uint8Array) => {
      f.seekSync(pos, Deno.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const n = f.readSync(buf.subarray(got));
        if (n === null || n === 0) throw new Error("truncated");
        got += n;
      }
    };
    while (off + 512 <= size) {
      readAt(off, hdr);
      if (hdr.every((b) => b === 0)) break;
      if (!checksumOk(hdr)) throw new Error("bad header checksum");
      const flag = String.fromCharCode(hdr[156]);
      const len = num(hdr, 124, 12);
      const data = off + 512;
      if (flag === "L" || flag === "x") {
        const body = new Uint8Array(Math.min(len, 1 << 20));
        readAt(data, body);
        if (flag === "L") longName = cstr(body, 0, body.length);
        else paxPath = parsePax(body).get("path") ?? null;
      } else if (flag === "0" || flag === "\0" || flag === "7") {
        let name = cstr(hdr, 0, 100);
        if (cstr(hdr, 257, 6) === "ustar") {
          const prefix = cstr(hdr, 345, 155);
          if (prefix) name = `${prefix}/${name}`;
        }
        name = (longName ?? paxPath ?? name).replace(/^(\.\/)+/, "");
        out.set(name, { offset: data, size: len });
        longName = paxPath = null;
      } else if (flag === "1" || flag === "2") {
        // Older `docker save` links a repeated layer.tar to the first copy.
        let name = cstr(hdr, 0, 100);
        if (cstr(hdr, 257, 6) === "ustar") {
          const prefix = cstr(hdr, 345, 155);
          if (prefix) name = `${prefix}/${name}`;
        }
        name = (longName ?? paxPath ?? name).replace(/^(\.\/)+/, "");
        const link = cstr(hdr, 157, 100);
        const base = flag === "2" ? name.split("/").slice(0, -1) : [];
        const parts: string[] = [];
        for (const p of [...base, ...link.split("/")]) {
          if (p === "..") parts.pop();
          else if (p !== "." && p !== "") parts.push(p);
        }
        links.push([name, parts.join("/")]);
        longName = paxPath = null;
      } else {
        longName = paxPath = null;
      }
      off = data + Math.ceil(len / 512) * 512;
    }
    for (const [name, target] of links) {
      const m = out.get(target);
      if (m) out.set(name, m);
    }
  } catch (e) {
    throw new HdError(
      `Cannot read archive ${path}: ${(e as Error).message}`,
      "pass a tar written by `docker save` or `skopeo copy … docker-archive:FILE`",
    );
  } finally {
    f.close();
  }
  return out;
}

/** One image of a `docker save` archive. */
export interface ArchiveImage {
  /** Raw config JSON bytes. */
  config: Uint8Array;
  /** Tags the archive gives the image. */
  repoTags: string[];
  /** Layer members, bottom first. */
  layers: TarMember[];
}

/** A `docker save` / `docker-archive:` tar file. */
export class DockerArchive {
  readonly path: string;
  readonly members: Map<string, TarMember>;

  private constructor(path: string, members: Map<string, TarMember>) {
    this.path = path;
    this.members = members;
  }

  /** Indexes the archive (headers only). */
  static open(path: string): DockerArchive {
    return new DockerArchive(path, indexTarFile(path));
  }

  #read(name: string): Uint8Array {
    const m = this.members.get(name.replace(/^(\.\/)+/, ""));
    if (!m) {
      throw new HdError(
        `Cannot read ${name} from archive ${this.path}: no such member`,
        "pass a tar written by `docker save` or `skopeo copy … docker-archive:FILE`",
      );
    }
    const f = Deno.openSync(this.path, { read: true });
    try {
      f.seekSync(m.offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(m.size);
      let got = 0;
      while (got < m.size) {
        const n = f.readSync(buf.subarray(got));
        if (n === null || n === 0) throw new HdError(`Cannot read ${name}: truncated`, "");
        got += n;
      }
      return buf;
    } finally {
      f.close();
    }
  }

  /** The image tagged `ref`, or the only one when `ref` is null. */
  image(ref: string | null): ArchiveImage {
    const list = parseJson<{ Config: string; RepoTags?: string[]; Layers: string[] }[]>(
      this.#read("manifest.json"),
      `manifest.json of ${this.path}`,
    );
    let pick = ref === null && list.length === 1 ? list[0] : undefined;
    if (ref !== null) {
      pick = list.find((e) =>
        (e.RepoTags ?? []).some((t) =>
          t === ref || t.replace(/^docker\.io\/(library\/)?/, "") === ref
        )
      );
    }
    if (!pick) {
      const tags = list.flatMap((e) => e.RepoTags ?? []);
      throw new HdError(
        ref !== null
          ? `Cannot find image "${ref}" in archive ${this.path}`
          : `Cannot pick an image in archive ${this.path}: it holds ${list.length}`,
        tags.length ? `name one of: ${tags.join(", ")} (docker-archive:FILE:REF)` : "",
      );
    }
    return {
      config: this.#read(pick.Config),
      repoTags: pick.RepoTags ?? [],
      layers: pick.Layers.map((l) => {
        const m = this.members.get(l.replace(/^(\.\/)+/, ""));
        if (!m) throw new HdError(`Cannot read layer ${l} from archive ${this.path}`, "");
        return m;
      }),
    };
  }

  /** A member's bytes as a stream. */
  stream(m: TarMember): ReadableStream<Uint8Array> {
    return fileRange(this.path, m.offset, m.size);
  }
}

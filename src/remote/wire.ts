/**
 * The remote cache's wire format, independent of where it is stored (docs/remote.md): a step
 * result is an index blob (JSON: the step hash, the tree root, the packs and which ids of each
 * pack the tree needs) and packs in hd's pack format (src/cas/pack.ts) of 16–64 MiB. Blobs are
 * named by SHA-256 on the wire; every entry inside a pack by BLAKE3, checked again on the way in.
 *
 * @example
 * ```ts
 * import { collectTree, buildPacks } from "./wire.ts";
 * import type { Store } from "../cas/store.ts";
 * declare const store: Store;
 * declare const tree: string;
 * const keys = collectTree(store, tree);
 * for (const p of buildPacks(store, keys)) console.log(p.digest, p.bytes.length);
 * ```
 * @module
 */
import type { Store } from "../cas/store.ts";
import { decodeObject, encodeObject } from "../cas/compress.ts";
import { decodeManifest, encodeManifest } from "../cas/manifest.ts";
import { blake3Hex, isId } from "../cas/hash.ts";
import { PackBuilder, parsePackIndex, TRAILER } from "../cas/pack.ts";
import type { ObjectKind } from "../cas/key.ts";
import { dagReferences } from "../dag/refs.ts";
import { sha256Digest } from "../oci/registry.ts";
import { HdError } from "../sys/errors.ts";

/** `artifactType` of a step result's manifest. */
export const STEP_ARTIFACT = "application/vnd.hd.step.v1";
/** `artifactType` of a named volume's snapshot (the same index and packs as a step result). */
export const VOLUME_ARTIFACT = "application/vnd.hd.volume.v1";
/** Media type of the index blob. */
export const INDEX_MEDIA = "application/vnd.hd.step.index.v1+json";
/** Media type of a pack blob. */
export const PACK_MEDIA = "application/vnd.hd.pack.v1";
/** The OCI empty config (`{}`). */
export const EMPTY_CONFIG = {
  mediaType: "application/vnd.oci.empty.v1+json",
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
} as const;
/** A pack is closed once it passes this many bytes (so packs are 32 MiB, the last smaller). */
export const PACK_TARGET = 32 << 20;
/** Largest pack hd downloads (an object may push a pack past the target). */
export const MAX_PACK_BYTES = 96 << 20;
/** Largest index blob hd downloads. */
export const MAX_INDEX_BYTES = 64 << 20;

/** One pack as the index names it. */
export interface IndexPack {
  /** `sha256:<hex>` of the pack blob. */
  digest: string;
  size: number;
  /** BLAKE3 ids of objects in this pack that the tree needs. */
  objects: string[];
  /** BLAKE3 ids of chunk manifests in this pack that the tree needs. */
  manifests: string[];
}

/** The index blob of one step result. */
export interface StepIndex {
  version: 1;
  /** The step hash (src/env/compile.ts). */
  step: string;
  /** BLAKE3 id of the output layer's tree root. */
  tree: string;
  packs: IndexPack[];
}

/** A (kind, id) of the store. */
export interface Key {
  kind: ObjectKind;
  id: string;
}

/** Every object and manifest reachable from `tree`, in walk order (the tree root first). */
export function collectTree(store: Store, tree: string): Key[] {
  const seen = new Set<string>();
  const out: Key[] = [];
  const stack = [tree];
  seen.add(`o${tree}`);
  while (stack.length) {
    const id = stack.pop()!;
    out.push({ kind: "objects", id });
    const r = dagReferences(store.getObject(id));
    for (const m of r.manifests) {
      if (seen.has(`m${m}`)) continue;
      seen.add(`m${m}`);
      out.push({ kind: "manifests", id: m });
      for (const c of store.getManifest(m).chunks) {
        if (!seen.has(`o${c}`)) (seen.add(`o${c}`), out.push({ kind: "objects", id: c }));
      }
    }
    for (const o of r.objects.slice().reverse()) {
      if (!seen.has(`o${o}`)) (seen.add(`o${o}`), stack.push(o));
    }
  }
  return out;
}

/** The ids reachable from `tree` that the store lacks (empty: the tree is complete). */
export function missingFromTree(store: Store, tree: string): Key[] {
  const missing: Key[] = [];
  const stack = [tree];
  const seen = new Set<string>([tree]);
  while (stack.length) {
    const id = stack.pop()!;
    if (!store.has(id)) {
      missing.push({ kind: "objects", id });
      continue;
    }
    const r = dagReferences(store.getObject(id));
    for (const m of r.manifests) {
      if (!store.has(m, "manifests")) {
        missing.push({ kind: "manifests", id: m });
        continue;
      }
      for (const c of store.getManifest(m).chunks) {
        if (!store.has(c)) missing.push({ kind: "objects", id: c });
      }
    }
    for (const o of r.objects) if (!seen.has(o)) (seen.add(o), stack.push(o));
  }
  return missing;
}

/** A pack ready to upload. */
export interface BuiltPack {
  digest: string;
  bytes: Uint8Array;
  keys: Key[];
}

/** The stored bytes (codec byte + payload) of a key, as a pack holds them. */
function storedBytes(store: Store, k: Key): Uint8Array {
  return k.kind === "objects"
    ? encodeObject(store.getObject(k.id))
    : encodeObject(encodeManifest(store.getManifest(k.id)));
}

/**
 * Packs `keys` (in order) into packs of about {@link PACK_TARGET} bytes, one at a time (a
 * generator: a 10 GiB tree never sits in memory). The same keys give the same packs, so a push
 * that was cut short finds its packs already on the remote when it runs again.
 */
export function* buildPacks(
  store: Store,
  keys: Key[],
  target = PACK_TARGET,
): Generator<BuiltPack> {
  let b = new PackBuilder();
  let ks: Key[] = [];
  const done = (): BuiltPack => {
    const { bytes } = b.finish();
    return { digest: sha256Digest(bytes), bytes, keys: ks };
  };
  for (const k of keys) {
    b.add(k.kind, k.id, storedBytes(store, k));
    ks.push(k);
    if (b.size >= target) {
      yield done();
      b = new PackBuilder();
      ks = [];
    }
  }
  if (ks.length) yield done();
}

function bad(what: string, why: string): HdError {
  return new HdError(
    `Cannot use ${what} from the remote cache: ${why}`,
    "the remote holds damaged or foreign data; the step runs here instead (push again to repair)",
  );
}

/** Parses and checks an index blob's bytes (untrusted). */
export function parseIndex(
  bytes: Uint8Array,
  step: string,
  what = `step ${step.slice(0, 12)}`,
): StepIndex {
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw bad(`the index of ${what}`, "it is not JSON");
  }
  const o = j as Record<string, unknown>;
  const ids = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string" && isId(x));
  const packs = o?.packs;
  if (
    typeof o !== "object" || o === null || o.version !== 1 || o.step !== step ||
    typeof o.tree !== "string" || !isId(o.tree) || !Array.isArray(packs) ||
    !packs.every((p) =>
      typeof p === "object" && p !== null && typeof p.digest === "string" &&
      /^sha256:[0-9a-f]{64}$/.test(p.digest) && Number.isSafeInteger(p.size) && p.size > 0 &&
      p.size <= MAX_PACK_BYTES && ids(p.objects) && ids(p.manifests)
    )
  ) {
    throw bad(
      `the index of ${what}`,
      `it is not an hd index for this ${what.split(" ")[0]} (version 1)`,
    );
  }
  return o as unknown as StepIndex;
}

/** The index blob's bytes (canonical JSON). */
export function encodeIndex(ix: StepIndex): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(ix));
}

/**
 * Checks a downloaded pack (its SHA-256 and size against the index, its hd pack structure, and
 * every wanted entry's BLAKE3) and returns the verified entries; nothing is stored here, so a bad
 * pack leaves the store as it was.
 */
export function verifyPack(
  bytes: Uint8Array,
  p: IndexPack,
  want: ReadonlySet<string>,
): { kind: ObjectKind; id: string; stored: Uint8Array; decoded: Uint8Array }[] {
  const what = `pack ${p.digest.slice(0, 19)}`;
  if (bytes.length !== p.size) {
    throw bad(what, `it is ${bytes.length} bytes, the index says ${p.size} (truncated?)`);
  }
  const got = sha256Digest(bytes);
  if (got !== p.digest) throw bad(what, `its bytes hash to ${got.slice(0, 19)}…`);
  if (bytes.length < 4 + TRAILER) throw bad(what, "it is too short to be an hd pack");
  const tv = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - TRAILER, TRAILER);
  const indexOffset = Number(tv.getBigUint64(0));
  const count = tv.getUint32(8);
  if (indexOffset + count * 45 + TRAILER !== bytes.length) {
    throw bad(what, "its trailer does not fit (not an hd pack)");
  }
  let entries;
  try {
    entries = parsePackIndex(bytes.subarray(indexOffset, indexOffset + count * 45), indexOffset);
  } catch (e) {
    throw bad(what, (e as Error).message);
  }
  const out = [];
  const found = new Set<string>();
  for (const e of entries) {
    const key = `${e.kind === "objects" ? "o" : "m"}${e.id}`;
    if (!want.has(key)) continue;
    const stored = bytes.slice(e.offset, e.offset + e.length);
    let decoded: Uint8Array;
    try {
      decoded = decodeObject(stored);
    } catch (x) {
      throw bad(what, `entry ${e.id.slice(0, 12)} does not decode (${(x as Error).message})`);
    }
    if (blake3Hex(decoded) !== e.id) {
      throw bad(what, `entry ${e.id.slice(0, 12)} does not hash to its BLAKE3 id`);
    }
    if (e.kind === "manifests") {
      try {
        decodeManifest(decoded);
      } catch {
        throw bad(what, `entry ${e.id.slice(0, 12)} is not a chunk manifest`);
      }
    }
    found.add(key);
    out.push({ kind: e.kind, id: e.id, stored, decoded });
  }
  for (const k of want) {
    if (!found.has(k)) throw bad(what, `it lacks ${k.slice(1, 13)}, which the index names`);
  }
  // every id the index places in this pack must be there (the store learns the placement)
  const held = new Set(entries.map((e) => `${e.kind === "objects" ? "o" : "m"}${e.id}`));
  for (const k of [...p.objects.map((i) => `o${i}`), ...p.manifests.map((i) => `m${i}`)]) {
    if (!held.has(k)) throw bad(what, `it lacks ${k.slice(1, 13)}, which the index names`);
  }
  return out;
}

/**
 * The key of named volume `name` of environment `env` on a remote: 64 hex (SHA-256 of
 * `hd volume\0ENV\0NAME`), the `step` field of its index, so the index format is shared.
 */
export function volumeKey(env: string, name: string): string {
  return sha256Digest(new TextEncoder().encode(`hd volume\0${env}\0${name}`)).slice(7);
}

/**
 * The tag of named volume `name` of environment `env`: `volume-ENV-NAME-<12 hex of its key>`
 * (the readable part cut so the tag stays within the 128 characters a registry allows). One tag
 * per volume, moved by each push (the latest snapshot wins, as `hd down` moves the local ref):
 * a pull finds it with one GET. The hash keeps `a-b`/`c` and `a`/`b-c` apart; both names are
 * `[a-z0-9._-]`, characters a tag allows.
 */
export function volumeTag(env: string, name: string): string {
  const h = volumeKey(env, name).slice(0, 12);
  const readable = `${env}-${name}`.slice(0, 128 - "volume-".length - 13);
  return `volume-${readable}-${h}`;
}

/** The OCI image manifest of a step result (artifactType + empty config). */
export function stepManifest(
  step: string,
  tree: string,
  index: { digest: string; size: number },
  packs: { digest: string; size: number }[],
  opts: { artifact?: string; annotations?: Record<string, string> } = {},
): Uint8Array {
  const m = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: opts.artifact ?? STEP_ARTIFACT,
    config: EMPTY_CONFIG,
    layers: [
      { mediaType: INDEX_MEDIA, ...index },
      ...packs.map((p) => ({ mediaType: PACK_MEDIA, ...p })),
    ],
    annotations: opts.annotations ?? { "dev.hd.step": step, "dev.hd.tree": tree },
  };
  return new TextEncoder().encode(JSON.stringify(m));
}

/** The index blob's digest and size named by a step manifest (untrusted), or an error. */
export function manifestIndex(
  bytes: Uint8Array,
  step: string,
  artifact = STEP_ARTIFACT,
  what = `step ${step.slice(0, 12)}`,
): { digest: string; size: number } {
  let m: {
    artifactType?: unknown;
    layers?: { mediaType?: unknown; digest?: unknown; size?: unknown }[];
  };
  try {
    m = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw bad(`the manifest of ${what}`, "it is not JSON");
  }
  const l = Array.isArray(m?.layers) ? m.layers[0] : undefined;
  if (
    m?.artifactType !== artifact || !l || l.mediaType !== INDEX_MEDIA ||
    typeof l.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(l.digest) ||
    typeof l.size !== "number" || !Number.isSafeInteger(l.size) || l.size <= 0 ||
    l.size > MAX_INDEX_BYTES
  ) {
    throw bad(
      `the manifest of ${what}`,
      artifact === STEP_ARTIFACT
        ? "it is not an hd step result"
        : "it is not an hd volume snapshot",
    );
  }
  return { digest: l.digest, size: l.size };
}

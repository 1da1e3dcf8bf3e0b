/**
 * The fuzz targets: each takes arbitrary bytes and must either decode them or throw its
 * documented error type — never another exception (TypeError, RangeError, a stack overflow),
 * never hang, never allocate without bound. The harness ({@link ./_fuzz.ts}) checks the last two.
 *
 * - `tar`: {@link TarReader} fed in pieces, then `finish()`; every header's path and xattrs go
 *   through `cleanTarPath` / `checkXattrs` as `hd pull` does. Allowed: TarError, HdError.
 * - `toml`: {@link parseSpec} of the bytes as UTF-8. Allowed: HdError.
 * - `node`: {@link decodeNode}; a decoded node is encoded again. Allowed: DecodeError (and, for
 *   the re-encoding of a non-canonical node, an `Error` whose message starts `Cannot encode`).
 * @module
 */
import { HdError } from "../../src/sys/errors.ts";
import { DecodeError } from "../../src/dag/encoding.ts";
import { decodeNode, encodeNode } from "../../src/dag/node.ts";
import { TarError, TarReader } from "../../src/oci/tar.ts";
import { checkXattrs, cleanTarPath } from "../../src/oci/unpack.ts";
import { parseSpec } from "../../src/config/parse.ts";

/** One fuzz target. */
export interface Target {
  name: string;
  /** Runs one input; throws only what `allowed` accepts, or anything else on a bug. */
  run(input: Uint8Array): void;
  /** True when `e` is an error the target documents for bad input. */
  allowed(e: unknown): boolean;
}

const dec = new TextDecoder();

/** The targets by name. */
export const TARGETS: Record<string, Target> = {
  tar: {
    name: "tar",
    run(input) {
      const r = new TarReader({
        entry(h) {
          cleanTarPath("fuzz", h.path);
          checkXattrs("fuzz", h.path, h.xattrs);
          if (h.type === "hardlink") cleanTarPath("fuzz", h.linkname);
          // What the layer builder stores must encode: safe integers, owners and sizes ≥ 0.
          if (!Number.isSafeInteger(h.mtime)) throw new Error(`unsafe mtime ${h.mtime}`);
          for (const k of ["uid", "gid", "size", "devmajor", "devminor"] as const) {
            if (!Number.isSafeInteger(h[k]) || h[k] < 0) throw new Error(`bad ${k} ${h[k]}`);
          }
        },
        data() {},
        end() {},
      });
      // Pieces of varying size, as a decompressor hands them out.
      let off = 0;
      let step = 1;
      while (off < input.length && !r.done) {
        r.push(input.subarray(off, off + step));
        off += step;
        step = step * 3 + 1;
      }
      r.finish();
    },
    allowed: (e) => e instanceof TarError || e instanceof HdError,
  },
  toml: {
    name: "toml",
    run(input) {
      parseSpec(dec.decode(input), "/fuzz/hd.toml");
    },
    allowed: (e) => e instanceof HdError,
  },
  node: {
    name: "node",
    run(input) {
      const n = decodeNode(input);
      try {
        encodeNode(n);
      } catch (e) {
        // A decodable but non-canonical node (unsorted entries) may be refused when re-encoded.
        if (e instanceof Error && e.message.startsWith("Cannot encode")) return;
        throw e;
      }
    },
    allowed: (e) => e instanceof DecodeError,
  },
};

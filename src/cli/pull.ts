/**
 * `hd pull REF`: pulls an image (a registry reference, `oci:DIR[:TAG]` or
 * `docker-archive:FILE[:REF]`) into the store and prints its digest and root filesystem hash.
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { parseSeconds, parseSize, PULL_ENV, pullImage } from "../oci/image.ts";
import type { Timeouts } from "../oci/registry.ts";
import type { Command } from "./command.ts";
import { formatBytes } from "./output.ts";

/** `hd pull`. */
export const pull: Command = {
  name: "pull",
  summary: "pull an OCI image into the store; print its digest and rootfs hash",
  usage: "hd pull REF [--insecure-registry HOST]… [--platform OS/ARCH] [--max-ratio N]\n" +
    "            [--max-unpacked SIZE] [--connect-timeout S] [--idle-timeout S] [--timeout S]\n" +
    "            [--force]\n\n" +
    "REF is a registry reference as docker reads it (node:20, ghcr.io/o/r:tag,\n" +
    "localhost:5000/x@sha256:…), oci:DIR[:TAG] (an OCI image layout) or docker-archive:FILE[:REF]\n" +
    "(a `docker save` tar). `hd cas checkout ROOTFS DIR` materializes the root filesystem.\n\n" +
    `Commands that pull a base image (hd up, hd build…) take the same limits from ${PULL_ENV.connectTimeout},\n` +
    `${PULL_ENV.idleTimeout}, ${PULL_ENV.timeout}, ${PULL_ENV.maxRatio} and ${PULL_ENV.maxUnpacked}.`,
  options: {
    "insecure-registry": {
      type: "string",
      multiple: true,
      help: "reach HOST over plain http (loopback hosts always are)",
    },
    platform: {
      type: "string",
      help: "platform to pick from an index (default linux/<host arch>)",
    },
    "max-ratio": {
      type: "string",
      help:
        "refuse layers that decompress to more than N× the bytes received (default 100; 0 = off)",
    },
    "max-unpacked": {
      type: "string",
      help: "refuse layers that decompress to more than SIZE (e.g. 32G; default 64G)",
    },
    "connect-timeout": {
      type: "string",
      help: "seconds to wait for a registry's answer (default 30; 0 = none)",
    },
    "idle-timeout": {
      type: "string",
      help: "seconds a download may go without a byte (default 60; 0 = none)",
    },
    timeout: {
      type: "string",
      help: "seconds the whole pull may take (default 3600; 0 = none)",
    },
    force: { type: "boolean", help: "fetch and unpack every layer again" },
  },
  async run(ctx) {
    const [ref, ...extra] = ctx.positionals;
    if (!ref || extra.length) {
      throw new HdError("Cannot pull: expected one image reference", "usage: hd pull REF", 2);
    }
    let maxRatio: number | undefined;
    if (typeof ctx.values["max-ratio"] === "string") {
      maxRatio = Number(ctx.values["max-ratio"]);
      if (!Number.isFinite(maxRatio) || maxRatio < 0) {
        throw new HdError(
          `Cannot use --max-ratio ${ctx.values["max-ratio"]}: not a number ≥ 0`,
          "",
          2,
        );
      }
    }
    let maxUnpacked: number | undefined;
    if (typeof ctx.values["max-unpacked"] === "string") {
      const n = parseSize(ctx.values["max-unpacked"]);
      if (n === null || n <= 0) {
        throw new HdError(
          `Cannot use --max-unpacked ${ctx.values["max-unpacked"]}: not a size`,
          "write a size like 32G, 512M or 1000000",
          2,
        );
      }
      maxUnpacked = n;
    }
    const timeouts: Partial<Timeouts> = {};
    for (
      const [flag, key] of [
        ["connect-timeout", "connectMs"],
        ["idle-timeout", "idleMs"],
        ["timeout", "totalMs"],
      ] as const
    ) {
      const v = ctx.values[flag];
      if (typeof v !== "string") continue;
      const ms = parseSeconds(v);
      if (ms === null) {
        throw new HdError(
          `Cannot use --${flag} ${v}: not a number of seconds`,
          `write e.g. --${flag} 60 (0 = no limit)`,
          2,
        );
      }
      timeouts[key] = ms;
    }
    const store = ctx.store();
    const t0 = performance.now();
    const got: number[] = [];
    const totals: number[] = [];
    let done = 0;
    const img = await pullImage(store, ref, {
      insecure: (ctx.values["insecure-registry"] as string[] | undefined) ?? [],
      platform: ctx.values.platform as string | undefined,
      maxRatio,
      maxUnpacked,
      timeouts,
      force: ctx.values.force === true,
      onProgress: (p) => {
        // Layers stream concurrently: one line with the totals, a note as each one finishes.
        got[p.layer] = p.state === "cached" ? p.total : p.compressed;
        totals[p.layer] = p.total;
        const id = p.diffId.slice(7, 19);
        if (p.state !== "fetch" && ctx.out.interactive) {
          ctx.out.note(
            `layer ${p.layer + 1}/${p.layers} ${id}: ${
              p.state === "cached"
                ? "already in the store"
                : `${formatBytes(p.compressed)} → ${formatBytes(p.uncompressed)} unpacked`
            }`,
          );
        }
        if (p.state !== "fetch") done++;
        const sum = (xs: number[]) => xs.reduce((a, b) => a + (b ?? 0), 0);
        ctx.out.progress(
          `pulling ${ref}: ${done}/${p.layers} layers, ${formatBytes(sum(got))} of ${
            formatBytes(sum(totals))
          }`,
        );
      },
    });
    const ms = Math.round(performance.now() - t0);
    ctx.out.result({ ...img, upToDate: img.upToDate ?? false, ms }, () =>
      [
        `${img.name}`,
        `digest ${img.digest}`,
        `rootfs ${img.rootfs}`,
        ...(ctx.out.interactive
          ? [
            ctx.out.paint(
              `${img.layers.length} layers, ${formatBytes(img.size)}, ${img.platform}, ${ms} ms${
                img.upToDate ? " (up to date)" : ""
              }`,
              "dim",
            ),
          ]
          : []),
      ].join("\n"));
    return 0;
  },
};

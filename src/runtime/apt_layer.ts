/**
 * Debian packages (the apt provider's Package nodes) as one layer: each package the base image
 * does not already have at that version is downloaded from its recorded URL, checked against its
 * recorded sha256, unpacked with `dpkg-deb -x`, and added to a copy of the base's
 * /var/lib/dpkg/status (with its file list), so dpkg inside the environment knows it. The layer is
 * stored in the CAS and recorded under `builds/<hash of base layers + packages>`, so it is built
 * once. Maintainer scripts are not run (docs/sandbox.md).
 *
 * @example
 * ```ts
 * import { aptLayer } from "./apt_layer.ts";
 * import type { Store } from "../cas/store.ts";
 * import type { PackageNode } from "../dag/node.ts";
 * declare const store: Store;
 * declare const aptPackages: PackageNode[], baseLayerIds: string[];
 * const layer = await aptLayer(store, aptPackages, baseLayerIds);
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";
import { blake3Hex } from "../cas/hash.ts";
import type { Store } from "../cas/store.ts";
import type { PackageNode } from "../dag/node.ts";
import { nodeId } from "../dag/node.ts";
import { captureLayer, materializeLayer } from "../sandbox/layers.ts";
import { resolveInRoot } from "../sandbox/inroot.ts";
import { cachedLayer, recordLayer } from "./step_cache.ts";

/** The cache key of the apt layer over `baseLayers` (lowest first) with `packages`. */
export function aptLayerKey(packages: PackageNode[], baseLayers: string[]): string {
  const ids = packages.map(nodeId).sort();
  return blake3Hex(
    new TextEncoder().encode(`hd-apt-layer 1\n${baseLayers.join("\n")}\n--\n${ids.join("\n")}\n`),
  );
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new HdError(
      `Cannot install Debian packages: ${cmd} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr).trim().slice(0, 300)
      }`,
      "dpkg-deb (package dpkg) must be installed on the host",
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The largest dpkg status file read from an image (Debian's own are a few MiB). */
export const DPKG_STATUS_MAX = 64 << 20;

/**
 * The dpkg status of the topmost of `baseLayers` that has one ("" when none does). An image's
 * file: a symlink in its path resolves inside its layer, never on the host (an image shipping
 * `var/lib/dpkg/status -> /etc/shadow` must not have hd copy the host's file into the apt layer it
 * builds, where the environment would read it), and only a regular file of at most
 * {@link DPKG_STATUS_MAX} bytes is read.
 */
export function baseStatus(store: Store, baseLayers: string[]): string {
  for (const id of [...baseLayers].reverse()) {
    try {
      const host = resolveInRoot(materializeLayer(store, id).dir, "var/lib/dpkg/status");
      const st = Deno.lstatSync(host);
      if (!st.isFile || st.size > DPKG_STATUS_MAX) continue;
      return Deno.readTextFileSync(host);
    } catch { /* not in this layer */ }
  }
  return "";
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Builds (or finds) the layer holding `packages` over `baseLayers`; null when there are no apt
 * packages or every one is already in the base at its version.
 */
export async function aptLayer(
  store: Store,
  packages: PackageNode[],
  baseLayers: string[],
  onNote?: (t: string) => void,
): Promise<string | null> {
  const apt = packages.filter((p) => p.provider === "apt");
  if (apt.length === 0) return null;
  const key = aptLayerKey(apt, baseLayers);
  const hit = cachedLayer(store, key);
  if (hit) return hit;
  const status = baseStatus(store, baseLayers);
  const installed = new Map<string, string>();
  for (const block of status.split(/\n\s*\n/)) {
    const name = /^Package: (.+)$/m.exec(block)?.[1];
    const version = /^Version: (.+)$/m.exec(block)?.[1];
    if (name && version && /^Status: .*installed/m.test(block)) installed.set(name, version);
  }
  const todo = apt.filter((p) => installed.get(p.name) !== p.version);
  if (todo.length === 0) return null;
  const tmpRoot = `${store.root}/tmp`;
  Deno.mkdirSync(tmpRoot, { recursive: true });
  const tmp = Deno.makeTempDirSync({ dir: tmpRoot, prefix: "apt-" });
  try {
    const root = `${tmp}/root`;
    Deno.mkdirSync(`${root}/var/lib/dpkg/info`, { recursive: true });
    const stanzas: string[] = [];
    for (const p of todo) {
      if (!p.resolved) {
        throw new HdError(`Cannot install ${p.name}: hd.lock has no URL for it`, "run `hd lock`");
      }
      onNote?.(`apt: ${p.name} ${p.version}`);
      let bytes: Uint8Array<ArrayBuffer>;
      try {
        const r = await fetch(p.resolved);
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        bytes = new Uint8Array(await r.arrayBuffer());
      } catch (e) {
        throw new HdError(
          `Cannot install ${p.name} ${p.version}: cannot download ${p.resolved}: ${
            (e as Error).message
          }`,
          "check the network and $HD_APT_SOURCE; `hd lock` re-resolves",
        );
      }
      const got = `sha256:${await sha256Hex(bytes)}`;
      if (got !== p.artifact) {
        throw new HdError(
          `Cannot install ${p.name} ${p.version}: its sha256 is ${got}, hd.lock says ${p.artifact}`,
          "the repository changed or the download was altered; `hd lock` re-resolves",
        );
      }
      const deb = `${tmp}/${p.name}.deb`;
      Deno.writeFileSync(deb, bytes);
      await run("dpkg-deb", ["-x", deb, root]);
      const control = (await run("dpkg-deb", ["-f", deb])).trimEnd();
      const files = (await run("dpkg-deb", ["-c", deb])).split("\n").filter(Boolean).map((l) =>
        l.slice(l.indexOf("./") + 1).replace(/ -> .*$/, "").replace(/\/$/, "") || "/."
      );
      Deno.writeTextFileSync(`${root}/var/lib/dpkg/info/${p.name}.list`, files.join("\n") + "\n");
      stanzas.push(
        control.replace(/^(Package: .*)$/m, "$1\nStatus: install ok installed"),
      );
    }
    const kept = status.trimEnd();
    Deno.writeTextFileSync(
      `${root}/var/lib/dpkg/status`,
      (kept ? kept + "\n\n" : "") + stanzas.join("\n\n") + "\n",
    );
    using _lease = store.lease("apt layer");
    const layer = await store.withLock("shared", () => captureLayer(store, root).id);
    return recordLayer(store, key, layer);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

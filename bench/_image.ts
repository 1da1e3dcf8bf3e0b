/**
 * Shared parts of the benches that run hd and podman on the Debian + Node image
 * (bench/sandbox.ts, bench/ingest.ts): the image pushed to a docker-registry on 127.0.0.1, the hd
 * CLI timed, a URL polled until it answers, podman's presence and its image builds.
 * @module
 */
import { sh } from "./lib.ts";
import { debianRootfs, NODE_PACKAGES, pushRootfs, withHostNode } from "../tests/sandbox/_debian.ts";
import { freePort, type Registry, startRegistry } from "../tests/oci/_fixtures.ts";

export { freePort };

/** The repository's root directory. */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The Debian + Node image, pushed to a registry of its own under `dir`. */
export interface NodeImage {
  /** `127.0.0.1:PORT/hd-node:bookworm`. */
  ref: string;
  reg: Registry;
  /** What the image holds, for a row's `extra`. */
  extra: { image: string; rootfsBytes: number };
}

/**
 * Builds (or takes from the cache) the Debian rootfs with `packages` (default nodejs, npm and
 * node-express) — with `hostNode`, its node replaced by the host's (see `withHostNode`) — starts a docker-registry under `dir` and pushes the image to it as
 * `NAME:bookworm`; `{ skip }` when debootstrap cannot build
 * it. The caller stops `reg`.
 */
export async function nodeImage(
  dir: string,
  packages: string[] = NODE_PACKAGES,
  name = "hd-node",
  opts: { hostNode?: boolean } = {},
): Promise<NodeImage | { skip: string }> {
  const deb = await debianRootfs(packages);
  if ("skip" in deb) return deb;
  const img = opts.hostNode ? await withHostNode(deb.rootfs, deb.key) : deb;
  if ("skip" in img) return img;
  const node = "node" in img ? `; /usr/bin/node is the host's node ${img.node}` : "";
  const reg = await startRegistry(dir);
  try {
    const ref = `${reg.host}/${name}:bookworm`;
    await pushRootfs(img.rootfs, dir, ref);
    const rootfsBytes = Number((await sh(`du -sb ${img.rootfs} | cut -f1`)).trim());
    return {
      ref,
      reg,
      extra: { image: `debootstrap minbase + ${packages.join(" ")}${node}`, rootfsBytes },
    };
  } catch (e) {
    await reg.stop();
    throw e;
  }
}

/** Polls `url` until its body includes `needle`; returns ms since `t0` (throws after the limit). */
export async function untilAnswer(
  url: string,
  needle: string,
  t0: number,
  limitMs = 120_000,
): Promise<number> {
  while (performance.now() - t0 < limitMs) {
    try {
      const r = await fetch(url);
      const body = await r.text();
      if (r.ok && body.includes(needle)) return performance.now() - t0;
    } catch { /* not up */ }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`no answer containing "${needle}" from ${url} within ${limitMs} ms`);
}

/** Runs `hd ARGS` in `cwd` with `HD_HOME=store`; returns its wall time in ms (throws on failure). */
export async function hdCmd(args: string[], cwd: string, store: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
    cwd,
    env: { HD_HOME: store, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  if (!out.success) {
    const dec = new TextDecoder();
    throw new Error(`hd ${args.join(" ")}: ${dec.decode(out.stderr)}${dec.decode(out.stdout)}`);
  }
  return ms;
}

/** Stops an environment started by the bench and lazily unmounts its sandbox root. */
export async function hdDown(project: string, store: string): Promise<void> {
  await hdCmd(["down"], project, store).catch(() => 0);
  await sh(`umount -l ${project}/.hd/sandbox/root 2>/dev/null; true`);
}

/** Whether `podman` is installed. */
export function hasPodman(): boolean {
  try {
    return new Deno.Command("podman", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Builds the image `tag` from the context `dir` with podman (`--isolation chroot`: its containers
 * cannot start on this machine — crun cannot set rlimits — so builds run chrooted); returns the
 * wall time in ms, its steps after `FROM`, how many of them came from podman's layer cache, and
 * the ids of the images it made (for {@link podmanRmi}: a re-tag leaves the old ones dangling).
 */
export async function podmanBuild(
  dir: string,
  tag: string,
): Promise<{ ms: number; cached: number; steps: number; ids: string[] }> {
  const t0 = performance.now();
  const out = await sh(
    `podman build --isolation chroot --tls-verify=false -t ${tag} ${dir} 2>&1`,
  );
  const ms = performance.now() - t0;
  const lines = out.split("\n");
  return {
    ms,
    ids: lines.map((l) => /^--> ([0-9a-f]{6,})$/.exec(l.trim())?.[1]).filter((x) =>
      x !== undefined
    ),
    cached: lines.filter((l) => l.includes("Using cache")).length,
    steps: lines.filter((l) => /^STEP \d+\/\d+: (?!FROM )/.test(l)).length,
  };
}

/** Removes podman images by name or id (ignoring ones already gone). */
export async function podmanRmi(...refs: string[]): Promise<void> {
  if (refs.length) await sh(`podman rmi -f --ignore ${refs.join(" ")} >/dev/null 2>&1; true`);
}

/**
 * podman builds of one context and tag on the bench's base image, remembering every image they
 * make; `remove()` deletes them and the base, so the next run's first build pulls again.
 */
export function podmanBuilds(dir: string, tag: string, base: string): {
  build(): Promise<{ ms: number; cached: number; steps: number }>;
  remove(): Promise<void>;
} {
  const made = new Set<string>();
  return {
    async build() {
      const b = await podmanBuild(dir, tag);
      for (const id of b.ids) made.add(id);
      return b;
    },
    async remove() {
      await podmanRmi(tag);
      await podmanRmi(...made);
      await podmanRmi(base);
    },
  };
}

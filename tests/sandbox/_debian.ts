/**
 * A Debian base image for the example-app tests and bench: debootstrap minbase plus a package
 * list, built once into /var/tmp/hd-test-images/<key>/rootfs (key = hash of suite, variant and
 * packages) and reused by later runs; then written as a one-layer OCI layout that skopeo pushes
 * to a local docker-registry. Returns null with a reason when debootstrap cannot reach its mirror.
 *
 * Run directly to build the cache (the node-app's and the compose app's images):
 * `deno run -A tests/sandbox/_debian.ts`.
 * @module
 */
import { createHash } from "node:crypto";

/** Packages of the example app's base image. */
export const NODE_PACKAGES = ["nodejs", "npm", "node-express"];

/**
 * Packages of the compose app's image (tests/e2e/compose_app_test.ts, bench/compose.ts): Node for
 * `web` and `api` (npm for their install step) and redis-server (with redis-cli) for `redis`.
 */
export const COMPOSE_PACKAGES = ["nodejs", "npm", "redis-server"];

/** Where built root filesystems are cached. */
export const IMAGE_CACHE = Deno.env.get("HD_TEST_IMAGES") ?? "/var/tmp/hd-test-images";

const MIRROR = Deno.env.get("HD_DEBIAN_MIRROR") ?? "http://deb.debian.org/debian";

async function sh(cmd: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return {
    ok: out.success,
    err: dec.decode(out.stderr).slice(-2000) + dec.decode(out.stdout).slice(-1000),
  };
}

/** The cached rootfs for `packages` (built now when missing), or a reason it cannot be built. */
export async function debianRootfs(
  packages: string[] = NODE_PACKAGES,
  suite = "bookworm",
): Promise<{ rootfs: string; key: string } | { skip: string }> {
  const key = createHash("sha256").update(`${suite} minbase ${[...packages].sort().join(",")}`)
    .digest("hex").slice(0, 16);
  const dir = `${IMAGE_CACHE}/${key}`;
  const rootfs = `${dir}/rootfs`;
  try {
    Deno.statSync(`${dir}/done`);
    return { rootfs, key };
  } catch { /* build it */ }
  const which = await sh("sh", ["-c", "command -v debootstrap"]);
  if (!which.ok) return { skip: "needs debootstrap (apt-get install debootstrap)" };
  Deno.mkdirSync(IMAGE_CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${Deno.pid}`;
  // debootstrap installs the essentials (and nodejs); apt-get in the chroot adds the rest, which
  // debootstrap's own dependency ordering does not configure reliably (node-* packages)
  const [first, ...rest] = packages;
  const r = await sh("debootstrap", [
    "--variant=minbase",
    `--include=${first},ca-certificates`,
    suite,
    tmp,
    MIRROR,
  ]);
  const fail = async (what: string, err: string) => {
    await sh("sh", ["-c", `umount "${tmp}/proc" 2>/dev/null; rm -rf "${tmp}"`]);
    return { skip: `${what} (mirror ${MIRROR}): ${err.slice(-300)}` };
  };
  if (!r.ok) return await fail("debootstrap could not build the image", r.err);
  if (rest.length) {
    Deno.copyFileSync("/etc/resolv.conf", `${tmp}/etc/resolv.conf`);
    const a = await sh("chroot", [
      tmp,
      "sh",
      "-c",
      "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q " +
      `--no-install-recommends ${rest.join(" ")} && apt-get clean`,
    ]);
    if (!a.ok) return await fail("apt-get in the new rootfs failed", a.err);
  }
  await sh("sh", [
    "-c",
    `rm -rf "${tmp}"/var/cache/apt/archives/*.deb "${tmp}"/var/lib/apt/lists/*`,
  ]);
  Deno.mkdirSync(dir, { recursive: true });
  await sh("rm", ["-rf", rootfs]);
  Deno.renameSync(tmp, rootfs);
  Deno.writeTextFileSync(`${dir}/done`, new Date().toISOString());
  return { rootfs, key };
}

/**
 * The cached rootfs `base` (built by {@link debianRootfs} under key `key`) with the host's own
 * `node` binary as its /usr/bin/node — for benches that compare a sandboxed service with the same
 * service in host mode, so that both run the same node (Debian's node 18 starts in about twice the
 * time of a static node 20, which would otherwise be measured as the sandbox's cost). Null with a
 * reason when the host has no node.
 */
export async function withHostNode(
  base: string,
  key: string,
): Promise<{ rootfs: string; key: string; node: string } | { skip: string }> {
  const which = await sh("sh", ["-c", "command -v node && node --version"]);
  if (!which.ok) return { skip: "the host has no node" };
  const [path, version] = which.err.trim().split("\n").slice(-2);
  const real = Deno.realPathSync(path.trim());
  const st = Deno.statSync(real);
  const nodeKey = createHash("sha256").update(`${version} ${st.size} ${st.mtime?.getTime()}`)
    .digest("hex").slice(0, 8);
  const k = `${key}-node-${nodeKey}`;
  const dir = `${IMAGE_CACHE}/${k}`;
  const rootfs = `${dir}/rootfs`;
  try {
    Deno.statSync(`${dir}/done`);
    return { rootfs, key: k, node: version.trim() };
  } catch { /* build it */ }
  const tmp = `${dir}.tmp-${Deno.pid}`;
  const cp = await sh("sh", [
    "-c",
    `rm -rf "${tmp}" && mkdir -p "${tmp}" && cp -a "${base}" "${tmp}/rootfs" && ` +
    `rm -f "${tmp}/rootfs/usr/bin/node" && cp "${real}" "${tmp}/rootfs/usr/bin/node"`,
  ]);
  if (!cp.ok) {
    await sh("rm", ["-rf", tmp]);
    throw new Error(`Cannot copy ${base} with the host's node: ${cp.err}`);
  }
  Deno.writeTextFileSync(`${tmp}/done`, new Date().toISOString());
  await sh("rm", ["-rf", dir]);
  Deno.renameSync(tmp, dir);
  return { rootfs, key: k, node: version.trim() };
}

/**
 * Writes an OCI layout at `layout` holding `tag`: one uncompressed layer made by GNU tar from
 * `rootfs` (numeric owners), config Env PATH.
 */
export async function rootfsLayout(rootfs: string, layout: string, tag: string): Promise<void> {
  Deno.mkdirSync(`${layout}/blobs/sha256`, { recursive: true });
  const tarPath = `${layout}/layer.tar`;
  const t = await sh("tar", ["--numeric-owner", "--xattrs", "-C", rootfs, "-cf", tarPath, "."]);
  if (!t.ok) throw new Error(`tar: ${t.err}`);
  const digestOf = async (p: string) => {
    const out = await new Deno.Command("sha256sum", { args: [p], stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).split(" ")[0];
  };
  const layerHex = await digestOf(tarPath);
  const size = Deno.statSync(tarPath).size;
  Deno.renameSync(tarPath, `${layout}/blobs/sha256/${layerHex}`);
  const te = new TextEncoder();
  const put = (b: Uint8Array) => {
    const hex = createHash("sha256").update(b).digest("hex");
    Deno.writeFileSync(`${layout}/blobs/sha256/${hex}`, b);
    return { digest: `sha256:${hex}`, size: b.length };
  };
  const cfg = put(te.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: {
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Cmd: ["/bin/bash"],
    },
    rootfs: { type: "layers", diff_ids: [`sha256:${layerHex}`] },
    history: [{ created: "2026-01-01T00:00:00Z", created_by: "debootstrap (hd test image)" }],
  })));
  const m = put(te.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: `sha256:${layerHex}`,
      size,
    }],
  })));
  Deno.writeTextFileSync(`${layout}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  Deno.writeTextFileSync(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...m,
        annotations: { "org.opencontainers.image.ref.name": tag },
      }],
    }),
  );
}

if (import.meta.main) {
  for (const packages of [NODE_PACKAGES, COMPOSE_PACKAGES]) {
    const t0 = performance.now();
    console.log(await debianRootfs(packages), `${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/**
 * Pushes `rootfs` as the one-layer image `ref` (a registry on 127.0.0.1) with skopeo, through an
 * OCI layout written (and removed again) under `dir`.
 */
export async function pushRootfs(rootfs: string, dir: string, ref: string): Promise<void> {
  const layout = `${dir}/layout-${crypto.randomUUID().slice(0, 8)}`;
  await rootfsLayout(rootfs, layout, "bookworm");
  try {
    const out = await new Deno.Command("skopeo", {
      args: ["copy", "--dest-tls-verify=false", `oci:${layout}:bookworm`, `docker://${ref}`],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`skopeo copy: ${new TextDecoder().decode(out.stderr)}`);
  } finally {
    Deno.removeSync(layout, { recursive: true });
  }
}

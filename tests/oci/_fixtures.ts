/**
 * Test fixtures for the OCI tests: a tiny tar writer (for crafted and hostile layers), an OCI
 * image-layout writer, and a real `docker-registry` started on 127.0.0.1.
 * @module
 */
import { createHash, createSign } from "node:crypto";
import zlib from "node:zlib";

const te = new TextEncoder();

/** One entry for {@link makeTar}. */
export interface TarSpec {
  path: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "fifo";
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  data?: Uint8Array | string;
  /** Size to declare (for bombs: zero bytes of this size follow). */
  zeros?: number;
  link?: string;
  major?: number;
  minor?: number;
  /** Extended attributes, written as pax `SCHILY.xattr.<name>` records (raw bytes). */
  xattrs?: Record<string, Uint8Array | string>;
  /** Extra pax records, written as given (e.g. `LIBARCHIVE.xattr.<name>` with base64). */
  pax?: [string, Uint8Array | string][];
}

/** One pax record `<len> <key>=<value>\n`, byte-exact (the length counts its own digits). */
export function paxRecord(key: string, value: Uint8Array | string): Uint8Array {
  const v = typeof value === "string" ? te.encode(value) : value;
  const k = te.encode(` ${key}=`);
  const base = k.length + v.length + 1;
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) len = base + String(len).length;
  const out = new Uint8Array(len);
  const head = te.encode(String(len));
  out.set(head, 0);
  out.set(k, head.length);
  out.set(v, head.length + k.length);
  out[len - 1] = 0x0a;
  return out;
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, "0") + "\0";
}

function header(name: string, flag: string, s: TarSpec, size: number, link = ""): Uint8Array {
  const b = new Uint8Array(512);
  const put = (off: number, str: string) => b.set(te.encode(str).subarray(0, str.length), off);
  put(0, name.slice(0, 100));
  put(100, octal(s.mode ?? (flag === "5" ? 0o755 : 0o644), 8));
  put(108, octal(s.uid ?? 0, 8));
  put(116, octal(s.gid ?? 0, 8));
  put(124, octal(size, 12));
  put(136, octal(s.mtime ?? 1700000000, 12));
  put(148, "        ");
  put(156, flag);
  put(157, link.slice(0, 100));
  put(257, "ustar\x0000");
  put(329, octal(s.major ?? 0, 8));
  put(337, octal(s.minor ?? 0, 8));
  let sum = 0;
  for (const x of b) sum += x;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

/** Writes an uncompressed tar of `entries` (pax headers for long paths). */
export function makeTar(entries: TarSpec[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const pad = (n: number) => {
    const r = n % 512;
    if (r) parts.push(new Uint8Array(512 - r));
  };
  for (const e of entries) {
    const type = e.type ?? "file";
    const flag = { file: "0", dir: "5", symlink: "2", hardlink: "1", char: "3", fifo: "6" }[type];
    const data = typeof e.data === "string" ? te.encode(e.data) : e.data ?? new Uint8Array(0);
    const size = type === "file" ? (e.zeros ?? data.length) : 0;
    const link = e.link ?? "";
    const long = te.encode(e.path).length > 99 || te.encode(link).length > 99;
    if (long || e.xattrs || e.pax) {
      const recs: Uint8Array[] = [];
      if (long) {
        for (const [k, v] of [["path", e.path], ["linkpath", link]]) {
          if (v) recs.push(paxRecord(k, v));
        }
      }
      for (const [k, v] of Object.entries(e.xattrs ?? {})) {
        recs.push(paxRecord(`SCHILY.xattr.${k}`, v));
      }
      for (const [k, v] of e.pax ?? []) recs.push(paxRecord(k, v));
      const pb = new Uint8Array(recs.reduce((n, r) => n + r.length, 0));
      let po = 0;
      for (const r of recs) (pb.set(r, po), po += r.length);
      parts.push(header("PaxHeader", "x", { path: "" }, pb.length));
      parts.push(pb);
      pad(pb.length);
    }
    parts.push(header(e.path, flag, e, size, link));
    if (type === "file") {
      if (e.zeros !== undefined) parts.push(new Uint8Array(e.zeros));
      else parts.push(data);
      pad(size);
    }
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

/** `sha256:<hex>` of bytes. */
export function sha256(b: Uint8Array): string {
  return "sha256:" + createHash("sha256").update(b).digest("hex");
}

/** gzip of bytes. */
export function gzip(b: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.gzipSync(b));
}

/** zstd of bytes. */
export function zstd(b: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.zstdCompressSync(b));
}

/** A layer for {@link writeLayout}: the uncompressed tar and how to send it. */
export interface LayerSpec {
  tar: Uint8Array;
  compression?: "gzip" | "zstd" | "none";
  /** Override the diff_id written in the config (to test verification). */
  diffId?: string;
  /** Override the size written in the manifest's descriptor. */
  size?: number;
}

/**
 * Writes (or extends) an OCI image layout at `dir` holding one image tagged `tag`;
 * returns the manifest digest.
 */
export function writeLayout(
  dir: string,
  tag: string,
  layers: LayerSpec[],
  imageConfig: Record<string, unknown> = { Env: ["PATH=/bin"], Cmd: ["/bin/sh"] },
): string {
  Deno.mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  const put = (b: Uint8Array) => {
    const d = sha256(b);
    Deno.writeFileSync(`${dir}/blobs/sha256/${d.slice(7)}`, b);
    return { digest: d, size: b.length };
  };
  const descs = layers.map((l) => {
    const c = l.compression ?? "gzip";
    const blob = c === "gzip" ? gzip(l.tar) : c === "zstd" ? zstd(l.tar) : l.tar;
    const mt = "application/vnd.oci.image.layer.v1.tar" + (c === "none" ? "" : "+" + c);
    const d = put(blob);
    return { mediaType: mt, digest: d.digest, size: l.size ?? d.size };
  });
  const config = {
    architecture: "amd64",
    os: "linux",
    config: imageConfig,
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId ?? sha256(l.tar)) },
    history: layers.map(() => ({ created_by: "hd test" })),
  };
  const cfg = put(te.encode(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
    layers: descs,
  };
  const m = put(te.encode(JSON.stringify(manifest)));
  let index: { schemaVersion: number; manifests: unknown[] } = { schemaVersion: 2, manifests: [] };
  try {
    index = JSON.parse(Deno.readTextFileSync(`${dir}/index.json`));
  } catch { /* new layout */ }
  index.manifests = index.manifests.filter((d) =>
    (d as { annotations?: Record<string, string> }).annotations?.[
      "org.opencontainers.image.ref.name"
    ] !== tag
  );
  index.manifests.push({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    ...m,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
  Deno.writeTextFileSync(`${dir}/index.json`, JSON.stringify(index));
  return m.digest;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running docker-registry on 127.0.0.1. */
export interface Registry {
  host: string;
  storage: string;
  stop(): Promise<void>;
}

/** Starts Debian's docker-registry on a free loopback port with storage under `dir`. */
export async function startRegistry(dir: string, extraYaml = ""): Promise<Registry> {
  const port = freePort();
  const storage = `${dir}/registry-data`;
  Deno.mkdirSync(storage, { recursive: true });
  const cfg = `${dir}/registry.yml`;
  Deno.writeTextFileSync(
    cfg,
    `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${extraYaml}`,
  );
  const child = new Deno.Command("docker-registry", {
    args: ["serve", cfg],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    host,
    storage,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.stderr.cancel();
      await child.status;
    },
  };
}

const b64url = (b: Uint8Array | string) =>
  (typeof b === "string" ? btoa(b) : btoa(String.fromCharCode(...b)))
    .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

/** A docker-registry with token auth and its token service, from {@link startTokenRegistry}. */
export interface TokenRegistry {
  reg: Registry;
  user: string;
  pass: string;
  /** The `scope` parameters of each token request, in order. */
  requests: string[][];
  /** Stops the registry and the token service. */
  stop(): Promise<void>;
}

/**
 * Starts docker-registry with bearer-token auth as Docker Hub and ghcr.io do it, and a token
 * service on 127.0.0.1 that wants Basic `user:pass` and signs RS256 JWTs with a throwaway
 * certificate (openssl) kept under `dir`.
 */
export async function startTokenRegistry(dir: string, pass: string): Promise<TokenRegistry> {
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/cert.pem`,
    "-days",
    "1",
    "-subj",
    "/CN=hd-test-token",
  ]);
  const key = Deno.readTextFileSync(`${dir}/key.pem`);
  const der = Deno.readTextFileSync(`${dir}/cert.pem`)
    .replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const user = "hd";
  const basic = "Basic " + btoa(`${user}:${pass}`);
  const requests: string[][] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    requests.push(url.searchParams.getAll("scope"));
    if (req.headers.get("authorization") !== basic) return new Response("no", { status: 401 });
    const access = url.searchParams.getAll("scope").map((s) => {
      const [type, name, actions] = s.split(":");
      return { type, name, actions: actions.split(",") };
    });
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [der] }));
    const claims = b64url(JSON.stringify({
      iss: "hd-test-issuer",
      sub: user,
      aud: "hd-test",
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    }));
    const sig = createSign("RSA-SHA256").update(`${head}.${claims}`).sign(key);
    return Response.json({ token: `${head}.${claims}.${b64url(new Uint8Array(sig))}` });
  });
  const realm = `http://127.0.0.1:${server.addr.port}/token`;
  let reg: Registry;
  try {
    reg = await startRegistry(
      dir,
      `auth:
  token:
    realm: ${realm}
    service: hd-test
    issuer: hd-test-issuer
    rootcertbundle: ${dir}/cert.pem
`,
    );
  } catch (e) {
    await server.shutdown();
    throw e;
  }
  return {
    reg,
    user,
    pass,
    requests,
    async stop() {
      await reg.stop();
      await server.shutdown();
    },
  };
}

/** Runs a command; throws with its stderr when it fails. Returns stdout. */
export async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr).slice(0, 2000)}`);
  }
  return dec.decode(out.stdout);
}

/** `find` listing of a tree: path, type, mode, owner, group, link target (and size of files). */
export async function describeTree(dir: string): Promise<string> {
  const out = await run("find", [".", "-printf", "%P\t%y\t%m\t%U\t%G\t%l\t%s\n"], dir);
  return out.split("\n").filter(Boolean).map((l) => {
    const f = l.split("\t");
    if (f[1] !== "f") f[6] = "-"; // directory and symlink sizes depend on the filesystem
    return f.join("\t");
  }).sort().join("\n");
}

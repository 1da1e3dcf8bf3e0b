/**
 * A hostile registry on 127.0.0.1 (a raw TCP server on port 0, so it can lie in ways an HTTP
 * library would not let it): redirects and bearer realms to file: URLs, endless manifests and
 * token responses, stalls before and after the headers, a body shorter than its Content-Length,
 * redirect loops, plain http to another host, and a decompression bomb whose descriptor declares
 * 10^12 bytes. hd must refuse each with a clear one-line HdError, within a bounded time, having
 * read far less than the hostile payload (the server counts what it managed to send).
 */
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { hd, randomBytes, tempDir } from "../_helpers.ts";
import { HdError } from "../../src/sys/errors.ts";
import { Store } from "../../src/cas/store.ts";
import { pullEnvOptions, pullImage } from "../../src/oci/image.ts";
import { MAX_MANIFEST_BYTES, MAX_TOKEN_BYTES, refuseUrl } from "../../src/oci/registry.ts";
import { gzip, makeTar, sha256 } from "./_fixtures.ts";

const te = new TextEncoder();

/** A layer tar holding `n` random (incompressible) bytes. */
function randomLayer(n: number): Uint8Array {
  return makeTar([{ path: "random", data: randomBytes(n, 7) }]);
}

/** What the hostile server answers to one request. */
type Reply = (w: Writer, path: string) => Promise<void>;

/** A connection the handler writes to; counts bytes, stops quietly once the client hangs up. */
class Writer {
  constructor(private conn: Deno.Conn, private server: Hostile) {}
  async raw(b: Uint8Array | string): Promise<boolean> {
    const bytes = typeof b === "string" ? te.encode(b) : b;
    try {
      let off = 0;
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
      this.server.sent += bytes.length;
      return true;
    } catch {
      return false; // the client went away
    }
  }
  head(status: string, headers: Record<string, string | number> = {}): Promise<boolean> {
    const h = Object.entries({ connection: "close", ...headers }).map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    return this.raw(`HTTP/1.1 ${status}\r\n${h}\r\n`);
  }
  /** Holds the connection open (saying nothing) until the client closes it or the test ends. */
  async stall(): Promise<void> {
    const buf = new Uint8Array(1024);
    try {
      while (!this.server.closed && (await this.conn.read(buf)) !== null) { /* keep reading */ }
    } catch { /* closed */ }
  }
}

/** The server: routes by path prefix; counts bytes sent; closes every connection at the end. */
class Hostile {
  sent = 0;
  closed = false;
  readonly port: number;
  #l: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  routes: [string, Reply][] = [];

  constructor() {
    this.#l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#l.addr as Deno.NetAddr).port;
    this.#accept();
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#l) {
        this.#conns.add(conn);
        const t = this.#serve(conn).finally(() => {
          this.#conns.delete(conn);
          this.#tasks.delete(t);
          try {
            conn.close();
          } catch { /* already */ }
        });
        this.#tasks.add(t);
      }
    } catch { /* closed */ }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    let head = "";
    const buf = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    const path = head.split(" ")[1] ?? "/";
    const w = new Writer(conn, this);
    const route = this.routes.find(([p]) => path.startsWith(p));
    if (!route) {
      await w.head("404 Not Found", { "content-length": 0 });
      return;
    }
    await route[1](w, path);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.#l.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already */ }
    }
    await Promise.allSettled([...this.#tasks]);
  }
}

/** An image: manifest, config and one layer, served by digest; `layer` overrides the blob reply. */
function image(
  layerTar: Uint8Array,
  opts: { declaredSize?: number; layer?: Reply; config?: Reply } = {},
): { manifest: Reply; blobs: Reply } {
  const blob = gzip(layerTar);
  const config = te.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [sha256(layerTar)] },
  }));
  const manifest = te.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: sha256(config),
      size: config.length,
    },
    layers: [{
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: sha256(blob),
      size: opts.declaredSize ?? blob.length,
    }],
  }));
  return {
    manifest: async (w) => {
      await w.head("200 OK", {
        "content-type": "application/vnd.oci.image.manifest.v1+json",
        "content-length": manifest.length,
      });
      await w.raw(manifest);
    },
    blobs: async (w, path) => {
      if (path.endsWith(sha256(config))) {
        if (opts.config) return await opts.config(w, path);
        await w.head("200 OK", { "content-length": config.length });
        await w.raw(config);
        return;
      }
      if (opts.layer) return await opts.layer(w, path);
      await w.head("200 OK", { "content-length": blob.length });
      await w.raw(blob);
    },
  };
}

/** Writes `piece` until the client stops reading or `max` bytes went out. */
async function endless(w: Writer, piece: Uint8Array, max = 1 << 30): Promise<void> {
  for (let n = 0; n < max; n += piece.length) if (!(await w.raw(piece))) return;
}

const SPACES = te.encode(" ".repeat(64 * 1024));
const FAST = { connectMs: 2000, idleMs: 1000, totalMs: 20_000 };

interface Case {
  name: string;
  /** Routes below `/v2/<name>/`, or absolute ones. */
  routes: (s: Hostile, repo: string) => [string, Reply][];
  expect: string | RegExp;
  /** The server may have sent at most this many bytes when hd gives up. */
  maxSent?: number;
  /** hd must give up within this many ms. */
  within?: number;
  timeouts?: Partial<typeof FAST>;
  maxUnpacked?: number;
}

const CASES: Case[] = [
  {
    name: "redirect-file",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("302 Found", { location: "file:///etc/passwd", "content-length": 0 });
    }]],
    expect: "redirects manifest redirect-file:1 to file:///etc/passwd: file: URLs are not fetched",
  },
  {
    name: "redirect-zero",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("307 Temporary Redirect", { location: "file:///dev/zero" });
    }]],
    expect: "to file:///dev/zero: file: URLs are not fetched",
  },
  {
    name: "realm-file",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("401 Unauthorized", {
        "www-authenticate": 'Bearer realm="file:///etc/passwd",service="x"',
        "content-length": 0,
      });
    }]],
    expect: "points a token for repository:realm-file:pull to file:///etc/passwd",
  },
  {
    name: "realm-other-http",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("401 Unauthorized", {
        "www-authenticate": 'Bearer realm="http://auth.example.invalid/token"',
        "content-length": 0,
      });
    }]],
    expect: "plain http to auth.example.invalid is not allowed",
  },
  {
    name: "redirect-loop",
    routes: (s, r) => [[`/v2/${r}/manifests/`, async (w, path) => {
      await w.head("302 Found", { location: `http://${s.host}${path}`, "content-length": 0 });
    }]],
    expect: "redirects manifest redirect-loop:1 more than 10 times",
  },
  {
    name: "endless-manifest",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("200 OK", { "content-type": "application/vnd.oci.image.manifest.v1+json" });
      await w.raw("{");
      await endless(w, SPACES);
    }]],
    expect: `is larger than ${MAX_MANIFEST_BYTES} bytes`,
    maxSent: 4 * MAX_MANIFEST_BYTES,
  },
  {
    name: "huge-declared-manifest",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("200 OK", { "content-length": 10 ** 12 });
      await endless(w, SPACES);
    }]],
    expect: `is larger than ${MAX_MANIFEST_BYTES} bytes`,
    maxSent: 4 * MAX_MANIFEST_BYTES,
  },
  {
    name: "endless-token",
    routes: (s, r) => [
      [`/v2/${r}/manifests/`, async (w) => {
        await w.head("401 Unauthorized", {
          "www-authenticate": `Bearer realm="http://${s.host}/token/${r}"`,
          "content-length": 0,
        });
      }],
      [`/token/${r}`, async (w) => {
        await w.head("200 OK", { "content-type": "application/json" });
        await w.raw('{"token": "');
        await endless(w, te.encode("a".repeat(64 * 1024)));
      }],
    ],
    expect: `larger than ${MAX_TOKEN_BYTES} bytes`,
    maxSent: 8 * MAX_TOKEN_BYTES,
  },
  {
    name: "stall-before-headers",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, (w) => w.stall()]],
    expect: "no answer for manifest stall-before-headers:1 within 2 s",
    within: 8000,
  },
  {
    name: "stall-after-headers",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("200 OK", { "content-length": 1000 });
      await w.raw("{");
      await w.stall();
    }]],
    expect: "the registry sent nothing for 1 s while sending manifest stall-after-headers:1",
    within: 6000,
  },
  {
    name: "slow-drip",
    routes: (_s, r) => [[`/v2/${r}/manifests/`, async (w) => {
      await w.head("200 OK", { "content-length": 100_000 });
      for (let i = 0; i < 1000; i++) {
        if (!(await w.raw(" "))) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }]],
    timeouts: { totalMs: 2500 },
    expect: "the pull took longer than 2.5 s",
    within: 8000,
  },
  {
    name: "short-blob",
    routes: (_s, r) => {
      const tar = randomLayer(100_000);
      const img = image(tar, {
        declaredSize: 50_000,
        layer: async (w) => {
          await w.head("200 OK", { "content-length": 50_000 });
          await w.raw(gzip(tar).subarray(0, 20_000));
          // then hang up: 20,000 of 50,000 bytes
        },
      });
      return [[`/v2/${r}/manifests/`, img.manifest], [`/v2/${r}/blobs/`, img.blobs]];
    },
    expect: /the registry sent 20000 of 50000 bytes for blob sha256:[0-9a-f]{64}$/,
  },
  {
    name: "stall-blob",
    routes: (_s, r) => {
      const img = image(makeTar([{ path: "a", data: "x" }]), {
        layer: async (w) => {
          await w.head("200 OK", { "content-length": 50_000 });
          await w.stall();
        },
      });
      return [[`/v2/${r}/manifests/`, img.manifest], [`/v2/${r}/blobs/`, img.blobs]];
    },
    expect: /the registry sent nothing for 1 s while sending blob sha256:/,
    within: 6000,
  },
  {
    name: "endless-config",
    routes: (_s, r) => {
      const img = image(makeTar([{ path: "a", data: "x" }]), {
        config: async (w) => {
          await w.head("200 OK");
          await endless(w, SPACES);
        },
      });
      return [[`/v2/${r}/manifests/`, img.manifest], [`/v2/${r}/blobs/`, img.blobs]];
    },
    expect: /its config sha256:[0-9a-f]+ is larger than 16777216 bytes/,
    maxSent: 64 << 20,
  },
  {
    name: "bomb-declared-huge",
    routes: (_s, r) => {
      // 160 MiB of zeros gzip to ~160 KiB; the descriptor claims 10^12 bytes, so a ratio over the
      // declared size would let 100 TB through. The limit follows the bytes received instead.
      const img = image(makeTar([{ path: "zeros", zeros: 160 << 20 }]), {
        declaredSize: 10 ** 12,
      });
      return [[`/v2/${r}/manifests/`, img.manifest], [`/v2/${r}/blobs/`, img.blobs]];
    },
    expect: /decompresses to more than \d+ bytes, over 100× the \d+ compressed bytes received/,
  },
  {
    name: "over-absolute-cap",
    routes: (_s, r) => {
      // Random letters from 16 compress about 2×: no ratio cap applies, the absolute one must.
      const data = randomBytes(3 << 20, 9).map((b) => 0x41 + (b & 0x0f));
      const img = image(makeTar([{ path: "letters", data }]));
      return [[`/v2/${r}/manifests/`, img.manifest], [`/v2/${r}/blobs/`, img.blobs]];
    },
    maxUnpacked: 1 << 20,
    expect: "decompresses to more than the 1048576-byte limit",
  },
];

Deno.test("a hostile registry: every misbehaviour is refused clearly, quickly, with bounded reads", async () => {
  const server = new Hostile();
  using tmp = tempDir("hd-hostile-registry-");
  const store = Store.open(`${tmp.path}/store`, { create: true });
  try {
    for (const c of CASES) {
      server.routes = c.routes(server, c.name);
      server.sent = 0;
      const t0 = performance.now();
      let err: unknown = null;
      try {
        await pullImage(store, `${server.host}/${c.name}:1`, {
          timeouts: { ...FAST, ...c.timeouts },
          maxUnpacked: c.maxUnpacked,
        });
      } catch (e) {
        err = e;
      }
      const ms = performance.now() - t0;
      assert(err instanceof HdError, `${c.name}: expected an HdError, got ${err}`);
      const msg = (err as HdError).message;
      assert(!msg.includes("\n"), `${c.name}: one line: ${msg}`);
      assert(msg.startsWith("Cannot "), `${c.name}: ${msg}`);
      assert((err as HdError).hint.length > 0, `${c.name}: a hint`);
      if (typeof c.expect === "string") assertIncludes(msg, c.expect);
      else assert(c.expect.test(msg), `${c.name}: ${msg} does not match ${c.expect}`);
      assert(ms < (c.within ?? 5000), `${c.name}: took ${Math.round(ms)} ms`);
      if (c.maxSent) assert(server.sent < c.maxSent, `${c.name}: read ${server.sent} bytes`);
      assertEquals(store.listRefs(), [], `${c.name}: nothing recorded`);
      console.log(`  ${c.name}: ${Math.round(ms)} ms, ${server.sent} bytes sent: ${msg}`);
    }
  } finally {
    await server.close();
  }
});

Deno.test("hd pull: the timeout flags and HD_PULL_* reach the client; errors are one line", async () => {
  const server = new Hostile();
  server.routes = [["/v2/", async (w) => {
    await w.head("200 OK", { "content-length": 1000 });
    await w.stall();
  }]];
  using tmp = tempDir("hd-hostile-cli-");
  try {
    const t0 = performance.now();
    const r = await hd(["pull", `${server.host}/x:1`, "--idle-timeout", "1"], {
      store: `${tmp.path}/store`,
    });
    assertEquals(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 2, r.stderr);
    assertIncludes(lines[0], "error: Cannot pull 127.0.0.1:");
    assertIncludes(lines[0], "the registry sent nothing for 1 s while sending manifest x:1");
    assertIncludes(lines[1], "hint: ");
    assertIncludes(lines[1], "--idle-timeout");
    const e = await hd(["pull", `${server.host}/x:1`], {
      store: `${tmp.path}/store`,
      env: { HD_PULL_IDLE_TIMEOUT: "0.5" },
    });
    assertEquals(e.code, 1, e.stderr);
    assertIncludes(e.stderr, "the registry sent nothing for 0.5 s");
    const bad = await hd(["pull", `${server.host}/x:1`, "--timeout", "soon"], {
      store: `${tmp.path}/store`,
    });
    assertEquals(bad.code, 2, bad.stderr);
    assertIncludes(bad.stderr, "Cannot use --timeout soon: not a number of seconds");
    assert(performance.now() - t0 < 30_000);
  } finally {
    await server.close();
  }
});

Deno.test("refuseUrl: which URLs hd fetches, from where", () => {
  const u = (s: string) => new URL(s);
  const table: [string, string | null, string[], RegExp | null][] = [
    ["https://r.example/v2/", null, [], null],
    ["http://127.0.0.1:5000/v2/", null, [], null],
    ["http://localhost/v2/", "https://r.example/v2/", [], null],
    ["http://[::1]:80/x", "https://r.example/v2/", [], null],
    ["http://r.example/v2/", null, [], /plain http to r.example is not allowed/],
    ["http://r.example:5000/v2/", null, ["r.example:5000"], null],
    ["http://r.example:5000/v2/", null, ["r.example"], null],
    ["http://cdn.example/b", "http://r.example/v2/", ["r.example"], /plain http to cdn.example/],
    ["http://r.example/b", "https://r.example/v2/", ["r.example"], /downgrades https/],
    ["https://cdn.example/b", "http://127.0.0.1/v2/", [], null],
    ["file:///etc/passwd", "https://r.example/v2/", [], /file: URLs are not fetched/],
    ["file:///dev/zero", null, [], /file: URLs are not fetched/],
    ["data:text/plain,hi", "https://r.example/v2/", [], /data: URLs are not fetched/],
    ["blob:https://r.example/x", "https://r.example/v2/", [], /blob: URLs/],
    ["ftp://r.example/x", null, [], /ftp: URLs/],
    ["https://u:p@r.example/x", null, [], /credentials/],
  ];
  for (const [to, from, insecure, want] of table) {
    const got = refuseUrl(u(to), from ? u(from) : null, insecure);
    if (want === null) assertEquals(got, null, `${to} from ${from}`);
    else assert(got !== null && want.test(got), `${to} from ${from}: ${got}`);
  }
});

Deno.test("pullEnvOptions reads HD_PULL_* and refuses malformed values", () => {
  const env = (m: Record<string, string>) => (n: string) => m[n];
  assertEquals(
    pullEnvOptions(env({
      HD_PULL_CONNECT_TIMEOUT: "5",
      HD_PULL_IDLE_TIMEOUT: "0.5",
      HD_PULL_TIMEOUT: "0",
      HD_PULL_MAX_RATIO: "20",
      HD_PULL_MAX_UNPACKED: "2G",
    })),
    {
      timeouts: { connectMs: 5000, idleMs: 500, totalMs: 0 },
      maxRatio: 20,
      maxUnpacked: 2 * 1024 ** 3,
    },
  );
  assertEquals(pullEnvOptions(env({})), { timeouts: {} });
  for (
    const [k, v] of [
      ["HD_PULL_TIMEOUT", "-1"],
      ["HD_PULL_IDLE_TIMEOUT", "1m"],
      ["HD_PULL_MAX_UNPACKED", "lots"],
      ["HD_PULL_MAX_RATIO", "x"],
    ]
  ) {
    let err: unknown = null;
    try {
      pullEnvOptions(env({ [k]: v }));
    } catch (e) {
      err = e;
    }
    assert(err instanceof HdError && err.message.startsWith(`Cannot use ${k}=${v}`), `${k}=${v}`);
  }
});

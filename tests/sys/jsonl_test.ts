import { assert, assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import { HdError } from "../../src/sys/errors.ts";
import { jsonlRequest, serveJsonl } from "../../src/sys/jsonl.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads from `conn` until `n` newlines (or EOF); the raw text. */
async function readLines(conn: Deno.Conn, n: number): Promise<string> {
  const buf = new Uint8Array(65536);
  let text = "";
  while (text.split("\n").length - 1 < n) {
    const k = await conn.read(buf);
    if (k === null) break;
    text += dec.decode(buf.subarray(0, k));
  }
  return text;
}

/** A raw server at `path` that does `act` with each connection (to play a misbehaving peer). */
function rawServer(path: string, act: (c: Deno.Conn) => Promise<void>) {
  const l = Deno.listen({ transport: "unix", path });
  const conns: Deno.Conn[] = [];
  const done = (async () => {
    try {
      for await (const c of l) {
        conns.push(c);
        act(c).catch(() => {});
      }
    } catch { /* closed */ }
  })();
  return {
    async [Symbol.asyncDispose]() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await done;
    },
  };
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

Deno.test("jsonl: the wire is one JSON object per line, answered in order on one connection", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/s.sock`;
  const server = serveJsonl(path, (req) => {
    const r = req as { op?: string };
    if (r.op === "boom") throw new Error("it broke");
    if (r.op === "slow") return new Promise((res) => setTimeout(() => res({ slow: true }), 50));
    return { echo: req };
  });
  try {
    assertEquals((Deno.statSync(path).mode ?? 0) & 0o777, 0o600, "only its owner may connect");
    // a raw client: two requests in one write, a bad line, a throwing handler, UTF-8
    const c = await Deno.connect({ transport: "unix", path });
    await c.write(enc.encode('{"op":"slow"}\n{"op":"a","s":"é✓"}\nnot json\n{"op":"boom"}\n'));
    const lines = (await readLines(c, 4)).split("\n");
    c.close();
    assertEquals(lines[0], '{"slow":true}', "in order, even when the first is slower");
    assertEquals(lines[1], '{"echo":{"op":"a","s":"é✓"}}');
    assert(/^\{"error":".*JSON.*"\}$/.test(lines[2]), lines[2]);
    assertEquals(lines[3], '{"error":"it broke"}');
    assertEquals(lines[4], "", "every reply ends with a newline");
    // the client
    assertEquals(await jsonlRequest(path, { op: "ping" }), { echo: { op: "ping" } });
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => jsonlRequest(path, { i })));
    assertEquals(many, Array.from({ length: 20 }, (_, i) => ({ echo: { i } })));
  } finally {
    server.close();
    await server.done;
  }
});

Deno.test("jsonl: a client waits a bounded time and says why it got nothing", async () => {
  using tmp = tempDir();
  const rows: [string, (c: Deno.Conn) => Promise<void>, RegExp][] = [
    ["never answers", async () => {}, /no reply within 200 ms/],
    ["closes without a reply", (c) => Promise.resolve(c.close()), /closed without a reply/],
    ["answers half a line, then nothing", async (c) => {
      await c.write(enc.encode('{"a":'));
    }, /no reply within 200 ms/],
    ["answers with no JSON", async (c) => {
      await c.write(enc.encode("hello\n"));
    }, /not JSON/],
    ["answers a line longer than the cap", async (c) => {
      await c.write(enc.encode(`"${"x".repeat(4096)}"\n`));
    }, /longer than 1024 bytes/],
    ["streams without end", async (c) => {
      const junk = enc.encode("x".repeat(1024));
      for (let i = 0; i < 64; i++) await c.write(junk);
    }, /longer than 1024 bytes/],
  ];
  for (const [what, act, want] of rows) {
    const path = `${tmp.path}/${rows.findIndex((r) => r[0] === what)}.sock`;
    await using _srv = rawServer(path, act);
    const t0 = performance.now();
    const e = await errorOf(
      jsonlRequest(path, { op: "status" }, { replyTimeoutMs: 200, maxLineBytes: 1024 }),
    );
    const ms = performance.now() - t0;
    assert(e instanceof HdError, `${what}: ${e}`);
    assert(want.test(e.message), `${what}: ${e.message}`);
    assert(e.message.includes(path), `${what}: names the socket: ${e.message}`);
    assert(ms < 2000, `${what}: took ${ms} ms`);
  }
});

Deno.test("jsonl: no socket, a request over the cap", async () => {
  using tmp = tempDir();
  const e = await errorOf(jsonlRequest(`${tmp.path}/none.sock`, {}));
  assert(e instanceof HdError && /^Cannot connect to .*none\.sock/.test(e.message), e.message);
  const path = `${tmp.path}/s.sock`;
  const server = serveJsonl(path, () => ({ ok: true }), { maxLineBytes: 1024 });
  try {
    const big = { s: "x".repeat(2000) };
    const e2 = await errorOf(jsonlRequest(path, big, { maxLineBytes: 1024 }));
    assert(/request is longer than 1024 bytes/.test(e2.message), e2.message);
    // a raw client sending more than the server's cap gets one error line and the end
    const c = await Deno.connect({ transport: "unix", path });
    await c.write(enc.encode(JSON.stringify(big) + '\n{"op":"after"}\n')).catch(() => 0);
    const text = await readLines(c, 2);
    c.close();
    assertEquals(text, '{"error":"the request is longer than 1024 bytes"}\n');
    // the server still serves others
    assertEquals(await jsonlRequest(path, { op: "x" }), { ok: true });
  } finally {
    server.close();
    await server.done;
  }
});

Deno.test("jsonl: a new server replaces a stale socket file", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/s.sock`;
  const first = serveJsonl(path, () => ({ n: 1 }));
  first.close();
  await first.done;
  // the file may be left behind by a killed server: the next one takes its place
  const second = serveJsonl(path, () => ({ n: 2 }));
  try {
    assertEquals(await jsonlRequest(path, {}), { n: 2 });
  } finally {
    second.close();
    await second.done;
  }
});

Deno.test("jsonl: drain answers every client already connected, then nobody can connect", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/s.sock`;
  const server = serveJsonl(path, () => ({ retry: "exiting" }));
  // eight clients connect and ask at once; the listener accepts one at a time, so most are still
  // queued when the server stops (close() dropped them unanswered: 5 of 8 on average)
  const conns = await Promise.all(
    Array.from({ length: 8 }, () => Deno.connect({ transport: "unix", path })),
  );
  await Promise.all(conns.map((c) => c.write(enc.encode('{"op":"mount"}\n'))));
  await server.drain();
  for (const c of conns) {
    assertEquals(await readLines(c, 1), '{"retry":"exiting"}\n');
    c.close();
  }
  await server.done;
  assertEquals(await Deno.lstat(path).then(() => "there", () => "gone"), "gone");
  const e = await errorOf(jsonlRequest(path, { op: "mount" }));
  assert(e.message.startsWith("Cannot connect"), e.message);
});

Deno.test("jsonl: drain leaves a socket file that is no longer its own", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/s.sock`;
  const server = serveJsonl(path, () => ({ ok: true }));
  // another server took the path meanwhile (its file replaced this one's)
  const other = serveJsonl(path, () => ({ other: true }));
  await server.drain();
  assertEquals(await jsonlRequest(path, { op: "ping" }), { other: true });
  await other.drain();
  assertEquals(await Deno.lstat(path).then(() => "there", () => "gone"), "gone");
});

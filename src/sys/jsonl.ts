/**
 * Request and response over a unix socket, one JSON object per line: the wire of `hd up`'s control
 * socket (`.hd/control.sock`) and of a mount's (`<store>/mounts/<key>.sock`). The two once had
 * their own readers, one with no timeout at all; here one client ({@link jsonlRequest}) waits at
 * most a connect timeout and a reply timeout, and both sides refuse a line longer than a cap
 * instead of buffering whatever a peer sends.
 *
 * The wire: the client writes `JSON.stringify(request) + "\n"` and reads one line back; the server
 * answers each request line, in order, with `JSON.stringify(reply) + "\n"` (`{"error": …}` when its
 * handler throws or the line is not JSON), until the client closes. Lines are UTF-8.
 *
 * @example
 * ```ts
 * import { jsonlRequest, serveJsonl } from "./jsonl.ts";
 * const path = `${Deno.makeTempDirSync()}/s.sock`;
 * const server = serveJsonl(path, (req) => ({ echo: req }));
 * console.log(await jsonlRequest(path, { op: "ping" })); // { echo: { op: "ping" } }
 * server.close();
 * await server.done;
 * ```
 * @module
 */
import { HdError } from "./errors.ts";
import { listenUnix } from "./unix_listen.ts";

/**
 * The longest line either side accepts, in bytes, unless told otherwise (4 MiB: a status reply of
 * hundreds of services fits many times over).
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_LINE } from "./jsonl.ts";
 * console.log(DEFAULT_MAX_LINE); // 4194304
 * ```
 */
export const DEFAULT_MAX_LINE = 4 << 20;

/**
 * How long {@link jsonlRequest} waits, and for how much.
 *
 * @example
 * ```ts
 * import type { JsonlRequestOptions } from "./jsonl.ts";
 * const quick: JsonlRequestOptions = { connectTimeoutMs: 1000, replyTimeoutMs: 5000 };
 * ```
 */
export interface JsonlRequestOptions {
  /** How long to wait for the connection (default: 5 s, or the reply timeout when shorter). */
  connectTimeoutMs?: number;
  /** How long to wait for the reply line once connected (default 30 s). */
  replyTimeoutMs?: number;
  /** The longest reply line accepted, in bytes (default {@link DEFAULT_MAX_LINE}). */
  maxLineBytes?: number;
  /** The hint of the errors thrown (default: check that the process serving `path` runs). */
  hint?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A line longer than the cap (internal: each side turns it into its own answer). */
class LineTooLong extends Error {}

/**
 * Reads `\n`-terminated lines from a connection, refusing any longer than `max` bytes (`next()`
 * throws then). For a wire of its own beside {@link jsonlRequest}'s (src/services/spare.ts).
 *
 * @example
 * ```ts
 * import { LineReader } from "./jsonl.ts";
 * async function first(conn: Deno.Conn): Promise<string | null> {
 *   return await new LineReader(conn, 4096).next();
 * }
 * ```
 */
export class LineReader {
  #conn: Deno.Conn;
  #max: number;
  #buf = new Uint8Array(0);
  #chunk = new Uint8Array(64 * 1024);

  constructor(conn: Deno.Conn, max: number) {
    this.#conn = conn;
    this.#max = max;
  }

  /** The next line without its `\n`; null at the end of the stream (a partial line is dropped). */
  async next(): Promise<string | null> {
    let scanned = 0;
    while (true) {
      const i = this.#buf.indexOf(10, scanned);
      if (i >= 0) {
        if (i > this.#max) throw new LineTooLong();
        const line = dec.decode(this.#buf.subarray(0, i));
        this.#buf = this.#buf.slice(i + 1);
        return line;
      }
      if (this.#buf.length > this.#max) throw new LineTooLong();
      scanned = this.#buf.length;
      const n = await this.#conn.read(this.#chunk);
      if (n === null) return null;
      const b = new Uint8Array(this.#buf.length + n);
      b.set(this.#buf);
      b.set(this.#chunk.subarray(0, n), this.#buf.length);
      this.#buf = b;
    }
  }
}

function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* closed */ }
}

/**
 * Waits for `p` at most `ms`; on time-out `late` gets its eventual value (to release it) and the
 * result is the `timedOut` marker.
 */
function within<T>(p: Promise<T>, ms: number, late: (v: T) => void): Promise<T | typeof timedOut> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let expired = false;
  const t = new Promise<typeof timedOut>((r) =>
    timer = setTimeout(() => {
      expired = true;
      r(timedOut);
    }, ms)
  );
  p.then((v) => expired && late(v), () => {});
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
const timedOut = Symbol("timed out");

/**
 * Sends `request` as one JSON line to the unix socket at `path` and resolves to the first line of
 * the reply, parsed. Throws an {@link HdError} naming `path` when it cannot connect in time, gets no
 * complete line in time, the line is longer than the cap, or it is not JSON. The connection is
 * closed on every path out.
 *
 * @example
 * ```ts
 * import { jsonlRequest } from "./jsonl.ts";
 * try {
 *   await jsonlRequest("/nonexistent/control.sock", { op: "status" }, { replyTimeoutMs: 1000 });
 * } catch (e) {
 *   console.log((e as Error).message); // "Cannot connect to /nonexistent/control.sock: …"
 * }
 * ```
 */
export async function jsonlRequest(
  path: string,
  request: unknown,
  opts: JsonlRequestOptions = {},
): Promise<unknown> {
  const replyMs = opts.replyTimeoutMs ?? 30_000;
  const connectMs = opts.connectTimeoutMs ?? Math.min(5_000, replyMs);
  const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE;
  const hint = opts.hint ?? "check that the process serving it still runs (`hd status`)";
  const fail = (why: string) => new HdError(`Cannot get a reply from ${path}: ${why}`, hint);
  const line = enc.encode(JSON.stringify(request) + "\n");
  if (line.length - 1 > max) throw fail(`the request is longer than ${max} bytes`);
  let conn: Deno.UnixConn | typeof timedOut;
  try {
    conn = await within(Deno.connect({ transport: "unix", path }), connectMs, closeQuietly);
  } catch (e) {
    throw new HdError(`Cannot connect to ${path}: ${(e as Error).message}`, hint);
  }
  if (conn === timedOut) {
    throw new HdError(`Cannot connect to ${path}: timed out after ${connectMs} ms`, hint);
  }
  const c = conn;
  try {
    const exchange = (async () => {
      try {
        let off = 0;
        while (off < line.length) off += await c.write(line.subarray(off));
        return await new LineReader(c, max).next();
      } catch (e) {
        // the peer closed before answering: as an end of stream
        if (e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset) {
          return null;
        }
        throw e;
      }
    })();
    let got: string | null | typeof timedOut;
    try {
      got = await within(exchange, replyMs, () => {});
    } catch (e) {
      if (e instanceof LineTooLong) throw fail(`the reply is longer than ${max} bytes`);
      throw fail((e as Error).message);
    }
    if (got === timedOut) {
      closeQuietly(c); // ends the pending read
      exchange.catch(() => {});
      throw fail(`no reply within ${replyMs} ms`);
    }
    if (got === null) throw fail("the connection closed without a reply");
    try {
      return JSON.parse(got);
    } catch (e) {
      throw fail(`the reply is not JSON (${(e as Error).message})`);
    }
  } finally {
    closeQuietly(c);
  }
}

/**
 * A running {@link serveJsonl}: `close()` stops accepting connections (those open finish their
 * request, but a client that had connected and was not yet accepted sees its connection closed
 * without a reply); `drain()` stops without that loss; `done` resolves once the accept loop has
 * ended.
 *
 * @example
 * ```ts
 * import { type JsonlServer, serveJsonl } from "./jsonl.ts";
 * const s: JsonlServer = serveJsonl(`${Deno.makeTempDirSync()}/s.sock`, () => ({ ok: true }));
 * await s.drain();
 * await s.done;
 * ```
 */
export interface JsonlServer {
  close(): void;
  /**
   * Stops serving without dropping a client: removes the socket file (when it is still the one
   * this server made), so that nobody new can connect (a client then gets "Cannot connect"),
   * answers every connection made before that, closes the listener once none has come for
   * `quietMs` (default {@link DRAIN_QUIET_MS}), and resolves when the requests in flight are
   * answered (at most {@link DRAIN_MAX_MS} after that). For a server that exits: a connection
   * still queued when its listener closes would be dropped unanswered.
   */
  drain(quietMs?: number): Promise<void>;
  done: Promise<void>;
}

/** How long {@link JsonlServer.drain} waits for another queued connection before it closes. */
export const DRAIN_QUIET_MS = 20;
/** How long {@link JsonlServer.drain} waits at most for the requests in flight. */
export const DRAIN_MAX_MS = 2_000;

/**
 * Serves the unix socket at `path` (an old socket file there is replaced; the new one is made
 * 0600: only its owner may connect). Each request line is answered with `handler`'s result, or
 * `{"error": message}` when the line is not JSON or the handler throws. A connection that sends a
 * line longer than `maxLineBytes` gets one `{"error": …}` line and is closed.
 *
 * @example
 * ```ts
 * import { serveJsonl } from "./jsonl.ts";
 * const s = serveJsonl(`${Deno.makeTempDirSync()}/s.sock`, async (req) => {
 *   if ((req as { op?: string }).op !== "ping") throw new Error("unknown op");
 *   return { pong: true };
 * });
 * s.close();
 * ```
 */
export function serveJsonl(
  path: string,
  handler: (request: unknown) => unknown,
  opts: { maxLineBytes?: number } = {},
): JsonlServer {
  const max = opts.maxLineBytes ?? DEFAULT_MAX_LINE;
  // bound beside `path` and renamed there: closing removes the socket file only while it is this
  // server's (Deno's own listener would remove whatever is at its path by then)
  const sock = listenUnix(path);
  const listener = sock.listener;
  const inflight = new Set<Promise<void>>();
  /** While draining: how long without a queued connection closes the listener (-1: serving). */
  let quietMs = -1;
  let quietTimer: ReturnType<typeof setTimeout> | undefined;
  const reply = (c: Deno.Conn, v: unknown) => c.write(enc.encode(JSON.stringify(v) + "\n"));
  const serveConn = async (conn: Deno.Conn) => {
    const lines = new LineReader(conn, max);
    try {
      while (true) {
        let line: string | null;
        try {
          line = await lines.next();
        } catch (e) {
          if (e instanceof LineTooLong) {
            await reply(conn, { error: `the request is longer than ${max} bytes` });
          }
          break;
        }
        if (line === null) break;
        let res: unknown;
        try {
          res = await handler(JSON.parse(line));
        } catch (e) {
          res = { error: (e as Error).message };
        }
        await reply(conn, res);
      }
    } catch { /* the client went away */ }
    closeQuietly(conn);
  };
  /** (Re)arms the drain's timer: the listener closes once no queued connection came for a while. */
  const arm = () => {
    if (quietMs < 0) return;
    clearTimeout(quietTimer);
    quietTimer = setTimeout(() => closeQuietly(listener), quietMs);
  };
  const done = (async () => {
    try {
      for await (const conn of listener) {
        arm();
        const p = serveConn(conn);
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }
    } catch { /* listener closed */ }
    clearTimeout(quietTimer);
  })();
  const drain = async (ms = DRAIN_QUIET_MS) => {
    if (quietMs < 0) {
      sock.unlinkIfOwn();
      quietMs = ms;
      arm();
    }
    await done;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...inflight]),
      new Promise((r) => timer = setTimeout(r, DRAIN_MAX_MS)),
    ]);
    clearTimeout(timer);
  };
  const close = () => {
    closeQuietly(listener);
    sock.unlinkIfOwn();
  };
  return { close, drain, done };
}

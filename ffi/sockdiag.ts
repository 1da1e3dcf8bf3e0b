/**
 * The listening TCP sockets of hd's network namespace from the kernel's sock_diag netlink
 * interface (what `ss -ltn` asks): the kernel walks only its listening table, so this costs a few
 * microseconds where reading /proc/net/tcp (every socket of the machine printed as text) costs
 * milliseconds. Pure request/answer encoding plus the few libc calls (socket, send, recv, close).
 *
 * @example
 * ```ts
 * import { listeningSockets } from "./sockdiag.ts";
 * const ls = listeningSockets(); // [{ address: "127.0.0.1", port: 8080, inode: 12345 }, …] or null
 * ```
 * @module
 */

/** A listening TCP socket: local address, port and socket inode. */
export interface DiagListener {
  address: string;
  port: number;
  inode: number;
}

const AF_NETLINK = 16;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const IPPROTO_TCP = 6;
const TCP_LISTEN = 10;

/** The netlink request for the LISTEN TCP sockets of `family` (AF_INET or AF_INET6). Pure. */
export function diagRequest(family: number, seq: number): Uint8Array<ArrayBuffer> {
  const buf = new Uint8Array(72);
  const v = new DataView(buf.buffer);
  v.setUint32(0, 72, true); // nlmsg_len
  v.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
  v.setUint16(6, NLM_F_REQUEST | NLM_F_DUMP, true);
  v.setUint32(8, seq, true);
  buf[16] = family; // inet_diag_req_v2
  buf[17] = IPPROTO_TCP;
  v.setUint32(20, 1 << TCP_LISTEN, true); // idiag_states
  return buf;
}

/**
 * The text of an address in network byte order: dotted IPv4 for AF_INET, else IPv6 with the
 * longest run of zero groups compressed and IPv4-mapped addresses as `::ffff:a.b.c.d`.
 *
 * @example
 * ```ts
 * import { addressOf } from "./sockdiag.ts";
 * addressOf(10, new Uint8Array(16)); // "::"
 * ```
 */
export function addressOf(family: number, b: Uint8Array): string {
  if (family === AF_INET) return [...b.subarray(0, 4)].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  if (groups.slice(0, 5).every((g) => g === "0") && groups[5] === "ffff") {
    return `::ffff:${[...b.subarray(12, 16)].join(".")}`;
  }
  let best = -1, len = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > len) (best = i, len = j - i);
    i = j;
  }
  if (len < 2) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + len).join(":")}`;
}

/**
 * The sockets in one netlink answer buffer, and whether the dump is done (NLMSG_DONE) or failed
 * (NLMSG_ERROR: `error` set). Pure.
 */
export function parseDiagAnswer(
  buf: Uint8Array,
): { sockets: DiagListener[]; done: boolean; error: number | null } {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const sockets: DiagListener[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = v.getUint32(off, true);
    const type = v.getUint16(off + 4, true);
    if (len < 16 || off + len > buf.length) break;
    if (type === NLMSG_DONE) return { sockets, done: true, error: null };
    if (type === NLMSG_ERROR) {
      return { sockets, done: true, error: len >= 20 ? -v.getInt32(off + 16, true) : -1 };
    }
    if (type === SOCK_DIAG_BY_FAMILY && len >= 16 + 72) {
      const m = off + 16;
      const family = buf[m];
      const port = v.getUint16(m + 4, false); // idiag_sport, network order
      const inode = v.getUint32(m + 68, true);
      sockets.push({ address: addressOf(family, buf.subarray(m + 8, m + 24)), port, inode });
    }
    off += (len + 3) & ~3;
  }
  return { sockets, done: false, error: null };
}

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | null | undefined;

function libc(): Deno.DynamicLibrary<typeof SYMBOLS> | null {
  if (lib === undefined) {
    try {
      lib = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch {
      lib = null;
    }
  }
  return lib;
}

/**
 * The listening TCP sockets (IPv4 and IPv6) of this process's network namespace, or null when
 * sock_diag is not available (no FFI permission, no libc, an old kernel): use /proc/net/tcp then.
 */
export function listeningSockets(): DiagListener[] | null {
  const c = libc();
  if (c === null) return null;
  const fd = c.symbols.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return null;
  try {
    const out: DiagListener[] = [];
    const buf = new Uint8Array(32 * 1024);
    let seq = 1;
    for (const family of [AF_INET, AF_INET6]) {
      const req = diagRequest(family, seq++);
      if (Number(c.symbols.send(fd, req, BigInt(req.length), 0)) !== req.length) return null;
      for (let round = 0; round < 10_000; round++) {
        const n = Number(c.symbols.recv(fd, buf, BigInt(buf.length), 0));
        if (n <= 0) return null;
        const r = parseDiagAnswer(buf.subarray(0, n));
        out.push(...r.sockets);
        if (r.error !== null && r.error !== 0) return null;
        if (r.done) break;
      }
    }
    return out;
  } finally {
    c.symbols.close(fd);
  }
}

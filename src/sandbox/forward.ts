/**
 * Published ports: a TCP port forwarder owned by `hd up` (the supervisor's process). It listens on
 * a host address and port and, for each connection, connects to the service's address and port on
 * the environment's bridge and copies bytes both ways until either side closes. It forwards only
 * the published ports: everything else on the environment's network goes through the kernel
 * (bridge, routes, NAT).
 *
 * @example
 * ```ts
 * import { startForwarder } from "./forward.ts";
 * const f = startForwarder({ hostIp: "127.0.0.1", published: 8080 }, { hostname: "172.29.3.7", port: 3000 });
 * console.log(f.port); // 8080
 * await f.close();
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/** A listening forwarder. */
export interface Forwarder {
  /** The host address it listens on. */
  readonly hostIp: string;
  /** The host port (the one the kernel picked when 0 was asked). */
  readonly port: number;
  /** Stops listening and closes every open connection. */
  close(): Promise<void>;
}

async function pipe(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  try {
    await from.readable.pipeTo(to.writable, { preventClose: true });
  } catch { /* reset */ }
  try {
    await to.closeWrite();
  } catch { /* closed */ }
}

/** Listens on `from` and forwards each connection to `to` (see the module doc). */
export function startForwarder(
  from: { hostIp: string; published: number },
  to: { hostname: string; port: number },
): Forwarder {
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: from.hostIp, port: from.published, transport: "tcp" });
  } catch (e) {
    throw new HdError(
      `Cannot publish ${from.hostIp}:${from.published}: ${(e as Error).message}`,
      e instanceof Deno.errors.AddrInUse
        ? "another process holds that port: pick another host port in `ports`"
        : "check the host address in `ports` (an address of this machine, or 0.0.0.0)",
    );
  }
  const open = new Set<Deno.TcpConn>();
  const loop = (async () => {
    for await (const inc of listener) {
      open.add(inc);
      (async () => {
        let out: Deno.TcpConn | null = null;
        try {
          out = await Deno.connect({ hostname: to.hostname, port: to.port, transport: "tcp" });
          open.add(out);
          await Promise.all([pipe(inc, out), pipe(out, inc)]);
        } catch { /* the service refused: the client sees the connection close */ }
        for (const c of [inc, out]) {
          if (!c) continue;
          open.delete(c);
          try {
            c.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  return {
    hostIp: from.hostIp,
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}

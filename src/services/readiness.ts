/**
 * Port readiness: a service with a `port` is ready once 127.0.0.1:port accepts a TCP connection.
 *
 * @example
 * ```ts
 * import { waitForPort } from "./readiness.ts";
 * const ok = await waitForPort(8080, { until: () => false });
 * ```
 * @module
 */

/**
 * True when `hostname`:`port` accepts a connection now (127.0.0.1 on the host; a sandboxed
 * service's own address on the environment's bridge, ServiceSpec.readyHost).
 */
export async function portOpen(port: number, hostname = "127.0.0.1"): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname, port, transport: "tcp" });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls 127.0.0.1:`port` every `intervalMs` until it accepts a connection (true) or `until()`
 * says to give up (false), e.g. because the process exited or was stopped.
 */
export async function waitForPort(
  port: number,
  opts: { until: () => boolean; intervalMs?: number; hostname?: string },
): Promise<boolean> {
  const interval = opts.intervalMs ?? 10;
  while (!opts.until()) {
    if (await portOpen(port, opts.hostname)) return true;
    await new Promise((r) => setTimeout(r, interval));
  }
  return false;
}

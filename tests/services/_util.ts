/**
 * Helpers of the services and loop tests: free loopback ports, EnvSpec/ServiceSpec builders,
 * polling.
 * @module
 */
import type { EnvSpec, ServiceSpec } from "../../src/config/types.ts";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A service spec with defaults. */
export function svc(name: string, command: string, more: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name,
    command,
    watch: [],
    port: null,
    depends_on: [],
    restart_policy: "always",
    env: {},
    workdir: ".",
    ...more,
  };
}

/** An EnvSpec for a host project at `dir`. */
export function envSpec(dir: string, more: Partial<EnvSpec> = {}): EnvSpec {
  return {
    file: `${dir}/hd.toml`,
    dir,
    environment: { name: "t", base: null, env: {}, workdir: null },
    dependencies: [],
    build: { steps: [], cache: [] },
    services: {},
    files: { include: [], exclude: [] },
    options: { restartGraceMs: 1000, debounceMs: 30 },
    ...more,
  };
}

/** Polls `cond` every 20 ms until it holds; throws with `what` after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Pids of live processes whose command line contains `marker`. */
export function pidsWith(marker: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmd.includes(marker) && state !== "Z" && Number(e.name) !== Deno.pid) {
        out.push(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return out;
}

/** A shell command that listens on 127.0.0.1:port with node (prints `listening`). */
export function nodeListen(port: number, tag = ""): string {
  return `exec node -e "require('net').createServer(s=>s.end('${tag}')).listen(${port},'127.0.0.1',()=>console.log('listening ${tag}'))"`;
}

/** Waits until the project at `dir` has a saved proof (`.hd/status.bin`: a start saves it). */
export async function waitForProof(dir: string): Promise<void> {
  await waitFor(() => {
    try {
      return Deno.statSync(`${dir}/.hd/status.bin`).isFile;
    } catch {
      return false;
    }
  }, "the proof");
}

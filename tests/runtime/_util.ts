/**
 * Shared by the runtime tests that run services in the sandbox: what they need, and a poll for
 * a service's first answer.
 * @module
 */
import { skipUnless } from "../_helpers.ts";

/** Why a sandboxed-service test cannot run here (root, runc, a registry, busybox, tini), or null. */
export const sandboxSkip: string | null = skipUnless({
  root: true,
  commands: ["runc", "unshare", "setpriv", "docker-registry", "skopeo", "setsid"],
  paths: ["/bin/busybox", "/usr/bin/tini-static"],
});

/** The body of the first answer (any status) `url` gives within `tries` × 50 ms; throws after. */
export async function firstAnswer(url: string, tries: number): Promise<string> {
  for (let i = 0; i < tries; i++) {
    try {
      const r = await fetch(url);
      return await r.text();
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`no answer from ${url}`);
}

/**
 * Polling for the end-to-end tests: what a service on loopback answers, once it answers as
 * wanted; what a service wrote into a file, once it is written.
 * @module
 */

/**
 * GETs `url` every `pollMs` until it answers 2xx with a body `want` accepts (any body without
 * `want`); returns that body, or throws after `ms` with the last one seen.
 */
export async function getWanted(
  url: string,
  want?: (s: string) => boolean,
  ms = 30_000,
  pollMs = 50,
): Promise<string> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < ms) {
    try {
      const r = await fetch(url);
      last = await r.text();
      if (r.ok && (!want || want(last))) return last;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  throw new Error(`no wanted answer from ${url} (last: ${last.slice(0, 200)})`);
}

/** The text of `path` once it exists and ends with a newline; throws after `ms`. */
export async function waitFile(path: string, ms = 20_000): Promise<string> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    try {
      const s = Deno.readTextFileSync(path);
      if (s.endsWith("\n")) return s;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path} was not written`);
}

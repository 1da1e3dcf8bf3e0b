/**
 * Minimal assertions (JSR's @std/assert is not reachable here): each throws with a message that
 * shows what differed.
 * @module
 */

/** Throws unless `cond` holds. */
export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/** Throws unless `a` and `b` are deeply equal (JSON comparison with sorted keys). */
export function assertEquals<T>(a: T, b: T, msg = ""): void {
  const norm = (v: unknown): unknown =>
    v instanceof Uint8Array
      ? Array.from(v)
      : Array.isArray(v)
      ? v.map(norm)
      : v && typeof v === "object"
      ? Object.fromEntries(
        Object.keys(v).sort().map((k) => [k, norm((v as Record<string, unknown>)[k])]),
      )
      : v;
  const ja = JSON.stringify(norm(a));
  const jb = JSON.stringify(norm(b));
  if (ja !== jb) {
    throw new Error(
      `${msg ? msg + ": " : ""}expected ${jb.slice(0, 500)}, got ${ja.slice(0, 500)}`,
    );
  }
}

/** Throws unless `fn` throws an error whose message matches `pattern`. Returns the error. */
export function assertThrows(fn: () => unknown, pattern?: RegExp): Error {
  try {
    fn();
  } catch (e) {
    if (pattern && !pattern.test((e as Error).message)) {
      throw new Error(`error "${(e as Error).message}" does not match ${pattern}`);
    }
    return e as Error;
  }
  throw new Error("expected an error, none was thrown");
}

/** Async {@link assertThrows}. */
export async function assertRejects(fn: () => Promise<unknown>, pattern?: RegExp): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (pattern && !pattern.test((e as Error).message)) {
      throw new Error(`error "${(e as Error).message}" does not match ${pattern}`);
    }
    return e as Error;
  }
  throw new Error("expected a rejection, none happened");
}

/** Throws unless `s` contains `part`. */
export function assertIncludes(s: string, part: string): void {
  if (!s.includes(part)) {
    throw new Error(
      `expected ${JSON.stringify(s.slice(0, 800))} to include ${JSON.stringify(part)}`,
    );
  }
}

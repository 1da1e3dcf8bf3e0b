/**
 * Small helpers for the spec tests.
 * @module
 */
import { HdError } from "../../src/sys/errors.ts";

/** Throws unless `s` matches `re`. */
export function assertMatch(s: string, re: RegExp): void {
  if (!re.test(s)) throw new Error(`"${s}" does not match ${re}`);
}

/** Runs `fn`, which must throw an HdError; returns it. */
export function throwsHd(fn: () => unknown): HdError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HdError) return e;
    throw new Error(`expected an HdError, got ${(e as Error).stack}`);
  }
  throw new Error("expected an HdError, none was thrown");
}

/** Awaits `fn`, which must reject with an HdError; returns it. */
export async function rejectsHd(fn: () => Promise<unknown>): Promise<HdError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof HdError) return e;
    throw new Error(`expected an HdError, got ${(e as Error).stack}`);
  }
  throw new Error("expected an HdError, none was thrown");
}

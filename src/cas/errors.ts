/**
 * Errors raised by the store. Each message reads `Cannot <do what>: <why>` and carries a hint.
 * @module
 */
import { HdError } from "../sys/errors.ts";

export { HdError };

/** An object whose bytes do not hash to its id, or cannot be decoded. */
export class CorruptObjectError extends HdError {
  /** Path of the object file on disk. */
  readonly path: string;
  /** The id the object is stored under. */
  readonly id: string;
  constructor(id: string, path: string, why: string) {
    super(
      `Cannot read object ${id}: corrupt (${why}) at ${path}`,
      "run `hd cas verify` to list every damaged object; re-add the source to repair it",
    );
    this.name = "CorruptObjectError";
    this.path = path;
    this.id = id;
  }
}

/** An object that the store does not hold. */
export class MissingObjectError extends HdError {
  /** The id that was looked for. */
  readonly id: string;
  constructor(id: string, what = "object") {
    super(
      `Cannot read ${what} ${id}: not in the store`,
      "check the hash (`hd cas stats`, `hd dag show`), or add the source again",
    );
    this.name = "MissingObjectError";
    this.id = id;
  }
}

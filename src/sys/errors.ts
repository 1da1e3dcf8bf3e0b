/**
 * The user-facing error of every hd module: a one-line message `Cannot <do what>: <why>` and a
 * hint on how to fix it. The CLI prints both and exits with {@link HdError.exitCode}.
 *
 * @example
 * ```ts
 * import { HdError } from "./errors.ts";
 * throw new HdError("Cannot read hd.toml: no such file", "run `hd init` to write one");
 * ```
 * @module
 */

/** A user-facing error: a one-line message and a hint on how to fix it. Exit code 1 by default. */
export class HdError extends Error {
  /** A line that tells the user what to do about it. */
  readonly hint: string;
  /** Process exit code for the CLI (1 = user error, 2 = usage). */
  readonly exitCode: number;
  constructor(message: string, hint = "", exitCode = 1) {
    super(message);
    this.name = "HdError";
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

/**
 * Command output: human text on a terminal (colours, a progress line), plain text when piped,
 * one JSON document with `--json`. Progress is shown only on a terminal and never under CI.
 *
 * @example
 * ```ts
 * import { Output } from "./output.ts";
 * const out = new Output({ json: false });
 * declare const id: string;
 * out.result({ root: id }, () => `root ${id}`);
 * ```
 * @module
 */

const enc = new TextEncoder();

/** Where and how a command prints. */
export class Output {
  /** True with `--json`: print one JSON document on stdout and nothing else there. */
  readonly json: boolean;
  /** True when stderr is a terminal, colours are allowed and we are not under CI. */
  readonly interactive: boolean;
  /** True when colour codes may be used on stdout. */
  readonly color: boolean;
  #progressShown = false;
  #lastProgress = 0;

  constructor(opts: { json: boolean }) {
    this.json = opts.json;
    const ci = !!Deno.env.get("CI");
    this.interactive = Deno.stderr.isTerminal() && !ci && !opts.json;
    this.color = Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR") && !opts.json;
  }

  /** Prints the command's result: `data` as JSON with --json, else the human text. */
  result(data: unknown, human: () => string): void {
    this.clearProgress();
    if (this.json) {
      Deno.stdout.writeSync(enc.encode(JSON.stringify(data, null, 2) + "\n"));
    } else {
      const text = human();
      if (text) Deno.stdout.writeSync(enc.encode(text.endsWith("\n") ? text : text + "\n"));
    }
  }

  /** A line of human text on stdout (suppressed with --json). */
  line(text: string): void {
    if (this.json) return;
    this.clearProgress();
    Deno.stdout.writeSync(enc.encode(text + "\n"));
  }

  /** A note on stderr (shown with and without --json). */
  note(text: string): void {
    this.clearProgress();
    Deno.stderr.writeSync(enc.encode(text + "\n"));
  }

  /** Redraws the progress line (at most 10 times a second) on a terminal. */
  progress(text: string): void {
    if (!this.interactive) return;
    const now = performance.now();
    if (now - this.#lastProgress < 100) return;
    this.#lastProgress = now;
    const cols = (() => {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return 80;
      }
    })();
    Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${text.slice(0, cols - 1)}`));
    this.#progressShown = true;
  }

  /** Erases the progress line, if any. */
  clearProgress(): void {
    if (!this.#progressShown) return;
    Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
    this.#progressShown = false;
  }

  /** Wraps `s` in an ANSI colour when colours are on. */
  paint(
    s: string,
    color: "red" | "green" | "yellow" | "blue" | "magenta" | "cyan" | "dim" | "bold",
  ): string {
    if (!this.color) return s;
    const codes = {
      red: 31,
      green: 32,
      yellow: 33,
      blue: 34,
      magenta: 35,
      cyan: 36,
      dim: 2,
      bold: 1,
    };
    return `\x1b[${codes[color]}m${s}\x1b[0m`;
  }
}

/** Formats a byte count for people (1.5 MiB). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024, i++);
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

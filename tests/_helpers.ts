/**
 * Shared test helpers: temp dirs, running the CLI as a real process, capability checks that skip
 * with a printed reason.
 * @module
 */

/** Absolute path of the repository root. */
export const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A fresh temp directory, removed when the returned disposable is disposed. */
export function tempDir(prefix = "hd-test-"): { path: string; [Symbol.dispose](): void } {
  const path = Deno.makeTempDirSync({ prefix });
  return {
    path,
    [Symbol.dispose]() {
      try {
        Deno.removeSync(path, { recursive: true });
      } catch { /* already gone */ }
    },
  };
}

/** Result of running `hd`. */
export interface HdRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the hd CLI (cli.ts) as a child process with `args`. */
export async function hd(
  args: string[],
  opts: { store?: string; cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<HdRun> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${REPO}/cli.ts`, ...args],
    cwd: opts.cwd,
    env: { ...(opts.store ? { HD_HOME: opts.store } : {}), NO_COLOR: "1", ...opts.env },
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** True when `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Returns null when every requirement holds, else a reason; tests use it as
 * `Deno.test({ name, ignore: skipUnless(...) !== null, fn })` and the reason is printed.
 */
export function skipUnless(
  reqs: { commands?: string[]; root?: boolean; paths?: string[] },
): string | null {
  for (const c of reqs.commands ?? []) {
    if (!hasCommand(c)) return `needs \`${c}\` on PATH (install it; .ci/run does)`;
  }
  if (reqs.root && Deno.uid() !== 0) return "needs root";
  for (const p of reqs.paths ?? []) {
    try {
      Deno.statSync(p);
    } catch {
      return `needs ${p}`;
    }
  }
  return null;
}

/** Like Deno.test, but prints why a test is skipped when `skip` holds a reason. */
export function testIf(
  skip: string | null,
  name: string,
  fn: (t: Deno.TestContext) => Promise<void> | void,
): void {
  if (skip !== null) console.log(`SKIP ${name}: ${skip}`);
  Deno.test({ name, ignore: skip !== null, fn });
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13, x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5, x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * `await using _ = downAtEnd(opts)` right after a test's first `hd up -d`: however the test ends,
 * `hd down` runs, so a failed assertion leaves no supervisor or service behind for later tests.
 */
export function downAtEnd(opts: { cwd?: string; store?: string }): AsyncDisposable {
  return { [Symbol.asyncDispose]: async () => void (await hd(["down"], opts)) };
}

/**
 * Paths of an image resolved inside its root. An image may hold symlinks that point anywhere
 * (`etc -> /home/me`, `app -> ../../..`): whatever hd itself creates, copies or mounts in a root on
 * the host — the working directory of a step, the project copy of the hardlink fallback, the
 * lowerdir of the step's /app overlay, the sources of kept paths — goes through
 * {@link resolveInRoot}, which follows symlinks the way the kernel would inside the container:
 * an absolute target starts again at the root, `..` stops at the root. The result is always a
 * path below the root. (runc resolves its own mount targets the same way.)
 *
 * Nothing else runs in a root while hd prepares it (a step's root is fresh; the environment's root
 * is only read on the host side), so resolving then acting is not raced from inside.
 *
 * @example
 * ```ts
 * import { mkdirInRoot, resolveInRoot } from "./inroot.ts";
 * declare const rootDir: string;
 * const wd = mkdirInRoot(rootDir, "/app");      // <rootDir>/app, or where /app leads inside
 * resolveInRoot(rootDir, "/etc/resolv.conf");
 * ```
 * @module
 */
import { HdError } from "../sys/errors.ts";

/**
 * Checks that `p` is an absolute, normalized path inside a sandbox (no `.`, `..` or empty
 * components, no NUL); `what` names it in the error (e.g. "[environment].workdir").
 */
export function checkSandboxPath(p: string, what: string): string {
  const bad = (why: string) =>
    new HdError(
      `Cannot use ${what} = "${p}": ${why}`,
      'use an absolute path inside the environment such as "/app" or "/srv/app"',
    );
  if (!p.startsWith("/")) throw bad("it is not an absolute path");
  if (p.includes("\0")) throw bad("it contains a NUL byte");
  if (p === "/") return p;
  const parts = p.slice(1).replace(/\/$/, "").split("/");
  for (const c of parts) {
    if (c === "" || c === "." || c === "..") {
      throw bad(`it is not normalized (a \`${c || "//"}\` component)`);
    }
  }
  return `/${parts.join("/")}`;
}

const MAX_LINKS = 40;

/**
 * The host path of `p` (absolute, inside the container) in root `root`, symlinks followed inside
 * the root. Components that do not exist are appended as they are.
 */
export function resolveInRoot(root: string, p: string): string {
  const base = root.replace(/\/+$/, "");
  let todo = p.split("/").filter((c) => c !== "" && c !== ".");
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "..") {
      done.pop();
      continue;
    }
    const host = `${base}/${[...done, c].join("/")}`;
    let st: Deno.FileInfo | null = null;
    try {
      st = Deno.lstatSync(host);
    } catch { /* does not exist: the rest is taken literally */ }
    if (st?.isSymlink) {
      if (++links > MAX_LINKS) {
        throw new HdError(
          `Cannot resolve ${p} in ${root}: too many levels of symbolic links`,
          "the image's symlinks loop",
        );
      }
      const target = Deno.readLinkSync(host);
      const t = target.split("/").filter((x) => x !== "" && x !== ".");
      if (target.startsWith("/")) done.length = 0;
      todo = [...t, ...todo];
      continue;
    }
    done.push(c);
  }
  return done.length ? `${base}/${done.join("/")}` : base;
}

/**
 * Creates directory `p` (and its parents) inside `root`, each component resolved inside the root;
 * returns its host path. Throws when a component exists and is not a directory.
 */
export function mkdirInRoot(root: string, p: string, mode = 0o755): string {
  const base = root.replace(/\/+$/, "");
  const host = resolveInRoot(root, p);
  // below the root, resolved: existing components are directories (or files), never symlinks
  let cur = base;
  for (const c of host.slice(base.length).split("/").filter((x) => x !== "")) {
    cur = `${cur}/${c}`;
    try {
      Deno.mkdirSync(cur, { mode });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    if (!Deno.lstatSync(cur).isDirectory) {
      throw new HdError(
        `Cannot create ${p} in the environment's root: ${
          cur.slice(base.length)
        } is not a directory`,
        "the image has a file where a directory is needed; pick another workdir",
      );
    }
  }
  return host;
}

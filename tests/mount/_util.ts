/**
 * Helpers of the mount tests: deterministic bytes, corrupting a stored object in place, mounting
 * through the real CLI.
 * @module
 */
export { randomBytes } from "../_helpers.ts";
import { Store } from "../../src/cas/store.ts";
import { unmountDir } from "../../src/mount/manager.ts";
import { hd } from "../_helpers.ts";

/** Flips the last stored byte of object `id` (loose or packed): same length, wrong content. */
export function corruptObject(store: Store, id: string): void {
  const loc = store.location("objects", id);
  if (!loc) throw new Error(`no object ${id}`);
  const at = loc.lastIndexOf("@");
  const packed = at > 0 && !loc.slice(at + 1).includes("/");
  const path = packed ? loc.slice(0, at) : loc;
  const offset = packed ? Number(loc.slice(at + 1)) : 0;
  const last = offset + store.storedSize("objects", id) - 1;
  Deno.chmodSync(path, 0o644);
  const f = Deno.openSync(path, { read: true, write: true });
  try {
    const b = new Uint8Array(1);
    f.seekSync(last, Deno.SeekMode.Start);
    f.readSync(b);
    b[0] ^= 0xff;
    f.seekSync(last, Deno.SeekMode.Start);
    f.writeSync(b);
  } finally {
    f.close();
  }
}

/** Requirements of tests that mount. */
export const FUSE_REQS = {
  root: true,
  paths: ["/dev/fuse"],
  commands: ["fusermount3"],
};

/** Why FUSE tests cannot run here (null when they can). */
export function fuseSkip(): string | null {
  if (Deno.uid() !== 0) return "needs root";
  for (const p of ["/dev/fuse"]) {
    try {
      Deno.statSync(p);
    } catch {
      return `needs ${p}`;
    }
  }
  try {
    Deno.dlopen("libfuse3.so.3", {}).close();
  } catch {
    return "needs libfuse3.so.3 (apt-get install libfuse3-3)";
  }
  return null;
}

/** Runs hd and throws with its stderr unless it exits 0; returns stdout. */
export async function hdOk(args: string[], store: string): Promise<string> {
  const r = await hd(args, { store });
  if (r.code !== 0) throw new Error(`hd ${args.join(" ")} → ${r.code}\n${r.stderr}`);
  return r.stdout;
}

/** Mounts `root` on `dir` with the CLI, runs `fn`, and always unmounts. */
export async function withMount(
  store: string,
  root: string,
  dir: string,
  opts: { rw?: boolean },
  fn: () => Promise<void> | void,
): Promise<void> {
  Deno.mkdirSync(dir, { recursive: true });
  await hdOk(["mount", root, dir, ...(opts.rw ? ["--rw"] : [])], store);
  try {
    await fn();
  } finally {
    const r = await hd(["unmount", dir], { store });
    if (r.code !== 0) {
      // Never leave a mount behind, even when the CLI cannot run: stop it in-process.
      await unmountDir(Store.open(store, { create: false }), dir).catch(() => {});
    }
  }
}

/** Runs a shell line; returns { code, stdout, stderr }. */
export async function sh(
  line: string,
  opts: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const o = await new Deno.Command("sh", {
    args: ["-c", line],
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: o.code, stdout: d.decode(o.stdout), stderr: d.decode(o.stderr) };
}

/** Adds `src` to the store with the real CLI and returns the root id it prints. */
export async function addTree(src: string, store: string): Promise<string> {
  return (await hdOk(["cas", "add", src], store)).trim().split("\n")[0];
}

/** The usual layout of a mount test under `tmp`: a source tree made by `make`, added to a store. */
export async function mountFixture(
  tmp: string,
  make: (src: string) => void,
): Promise<{ src: string; store: string; mnt: string; root: string }> {
  const src = `${tmp}/src`;
  const store = `${tmp}/store`;
  make(src);
  return { src, store, mnt: `${tmp}/mnt`, root: await addTree(src, store) };
}

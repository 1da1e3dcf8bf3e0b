/**
 * Worker side of layer materialization (src/sandbox/layers.ts): reads, decodes and verifies a
 * regular file's chunks from the store and writes the file, so decoding and creating inodes (the
 * kernel's share) run on both cores while the main thread walks the tree and makes directories.
 *
 * The main thread stays synchronous: it posts batches and waits on a shared counter (Atomics), so
 * nothing here may depend on the main thread's event loop. Messages in:
 * `{ init: { sab, umask, root, store } }` once, then `{ jobs: [{ path, chunks, len, mode, uid, gid,
 * mtime }] }`. Out, through the shared memory only: the count of
 * files done (slot 0), KiB done (slot 1), and the first error (slot 2 set to its length, its
 * UTF-8 text from byte 16 on).
 * @module
 */
/// <reference lib="deno.worker" />

import { Store } from "../cas/store.ts";

/** One file to write: its chunk ids in the store and its size. */
export interface WriteJob {
  path: string;
  chunks: string[];
  len: number;
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

/** A file's size as counted in the shared memory's slot BYTES (KiB, rounded up). */
export const kib = (n: number): number => Math.ceil(n / 1024);

/** Slots of the shared Int32Array. */
export const DONE = 0, BYTES = 1, ERROR = 2;
/** Where the first error's text starts in the shared buffer, and how long it may be. */
export const ERROR_AT = 16, ERROR_MAX = 4096;

/**
 * Whether a file created with `mode` under `umask` needs a chmod after its open: the open's mode
 * loses the umask's bits and (in Deno) the setuid/setgid/sticky ones, and a chown clears setuid.
 *
 * @example
 * ```ts
 * import { needsChmod } from "./layer_writer.ts";
 * needsChmod(0o100644, 0o022, false); // false
 * needsChmod(0o104755, 0o022, false); // true: setuid
 * ```
 */
export function needsChmod(mode: number, umask: number, chowned: boolean): boolean {
  return chowned || (mode & 0o7000) !== 0 || (mode & 0o777 & umask) !== 0;
}

/**
 * Writes one file from its verified chunks: open (created, with its mode), write, time through the
 * descriptor, then owner when not root's and mode when the open could not set it.
 */
export function writeJob(store: Store, j: WriteJob, umask: number, root: boolean): void {
  const file = Deno.openSync(j.path, { write: true, createNew: true, mode: j.mode & 0o777 });
  try {
    for (const id of j.chunks) {
      const data = store.getObject(id);
      let off = 0;
      while (off < data.length) off += file.writeSync(data.subarray(off));
    }
    if (j.mtime !== undefined) file.utimeSync(j.mtime, j.mtime);
  } finally {
    file.close();
  }
  const chown = root && !!(j.uid || j.gid);
  if (chown) Deno.chownSync(j.path, j.uid ?? 0, j.gid ?? 0);
  if (needsChmod(j.mode, umask, chown)) Deno.chmodSync(j.path, j.mode & 0o7777);
  // chmod does not touch mtime: the time set through the descriptor stays
}

if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  let shared: Int32Array | null = null;
  let bytes: Uint8Array | null = null;
  let umask = 0o022;
  let root = false;
  let store: Store | null = null;
  /** Records the first error only (two workers may fail at once). */
  const fail = (why: string) => {
    if (Atomics.compareExchange(shared!, ERROR, 0, -1) !== 0) return;
    const text = new TextEncoder().encode(why).subarray(0, ERROR_MAX);
    bytes!.set(text, ERROR_AT);
    Atomics.store(shared!, ERROR, text.length);
  };
  self.onmessage = (e: MessageEvent) => {
    const m = e.data;
    if (m.init) {
      shared = new Int32Array(m.init.sab);
      bytes = new Uint8Array(m.init.sab);
      umask = m.init.umask;
      root = m.init.root;
      try {
        store = Store.open(m.init.store, { create: false });
      } catch (err) {
        fail(`${m.init.store}: ${err instanceof Error ? err.message : String(err)}`);
      }
      return;
    }
    let n = 0;
    for (const j of m.jobs as WriteJob[]) {
      if (Atomics.load(shared!, ERROR) === 0) {
        try {
          writeJob(store!, j, umask, root);
        } catch (err) {
          fail(`${j.path}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      n += kib(j.len);
      Atomics.add(shared!, DONE, 1);
    }
    Atomics.add(shared!, BYTES, n);
    Atomics.notify(shared!, DONE);
  };
}

/**
 * Worker side of the parallel ingest: reads files, cuts them with FastCDC, hashes and encodes each
 * chunk, and posts the results back (buffers transferred, not copied). The main thread decides
 * what to store; this worker never touches the store. Small files are opened and their reads
 * started in the kernel (`posix_fadvise`) 16 ahead of the one being chunked, then read with one
 * sync libc `read` each (readfile.ts), so a cold cache keeps several reads in flight without
 * paying Deno's async open/read ops per file; without FFI, async reads into reused buffers.
 *
 * Messages in: `{ jobs: [{ job, path, size, root? }] }` (a batch of files, handled in order; below
 * `root`, the tree's trusted directory, no symlink is followed: src/sys/nofollow.ts). Out:
 * `{ replies: [{ job, chunks: [{ id, stored, length }], done, error? }] }`; a large file sends
 * partial replies (about 8 MiB of chunks each) before its last one with `done: true`.
 * @module
 */
/// <reference lib="deno.worker" />
import { chunkBlocks, chunkBoundaries } from "../cas/chunk.ts";
import { encodeObject } from "../cas/compress.ts";
import { blake3Hex } from "../cas/hash.ts";
import { readBlocks, readWhole, STREAM_THRESHOLD } from "./blocks.ts";
import { FileReader } from "./readfile.ts";

const BATCH_BYTES = 8 << 20;

interface Out {
  id: string;
  stored: Uint8Array;
  length: number;
}

type Job = { job: number; path: string; size: number; root?: string };
type Reply = { job: number; chunks: Out[]; done: boolean; error?: string };

/** Files read ahead of the one being chunked: a cold cache is waiting on the disk, not the CPU. */
const READ_AHEAD = 4;
/**
 * Files up to this size are read ahead; a larger one is read when its turn comes, into the one
 * shared buffer of readWhole (4 slots grown to 16 MiB each would hold 64 MiB per worker).
 */
const READ_AHEAD_MAX = 1 << 20;
/** One reused read buffer per read-ahead slot. */
const slots: Uint8Array[] = Array.from({ length: READ_AHEAD }, () => new Uint8Array(1 << 16));

/** Reads a whole file into read-ahead slot `slot` (async: several reads are in flight at once). */
async function readSlot(path: string, size: number, slot: number): Promise<Uint8Array> {
  const f = await Deno.open(path, { read: true });
  try {
    let buf = slots[slot];
    if (buf.length < size + 1) {
      buf = slots[slot] = new Uint8Array(Math.max(size + 1, 2 * buf.length));
    }
    let n = 0;
    while (true) {
      // The file may have grown since its lstat: keep a spare byte to notice, and grow.
      if (n === buf.length) {
        const b = new Uint8Array(buf.length * 2);
        b.set(buf);
        buf = slots[slot] = b;
      }
      const got = await f.read(buf.subarray(n));
      if (got === null || got === 0) break;
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    f.close();
  }
}

/** Chunks, hashes and encodes one file; large files flush partial replies through `send`. */
function processFile(
  j: Job,
  bytes: Uint8Array | Error | null,
  send: (r: Reply[]) => void,
  pending: Reply[],
): void {
  let out: Out[] = [];
  let outBytes = 0;
  const add = (c: Uint8Array) => {
    const stored = encodeObject(c);
    out.push({ id: blake3Hex(c), stored, length: c.length });
    outBytes += stored.length;
    if (outBytes >= BATCH_BYTES) {
      send([...pending.splice(0), { job: j.job, chunks: out, done: false }]);
      out = [];
      outBytes = 0;
    }
  };
  try {
    if (bytes instanceof Error) throw bytes;
    if (bytes === null) {
      for (const c of chunkBlocks(readBlocks(j.path, undefined, j.root))) add(c);
    } else for (const [a, b] of chunkBoundaries(bytes)) add(bytes.subarray(a, b));
    pending.push({ job: j.job, chunks: out, done: true });
  } catch (e) {
    pending.push({ job: j.job, chunks: [], done: true, error: (e as Error).message });
  }
}

/** A file not read ahead: whole into readWhole's shared buffer, or streamed when very large. */
function readLarge(j: Job): Uint8Array | Error | null {
  if (j.size > STREAM_THRESHOLD) return null;
  try {
    return readWhole(j.path, j.size, j.root);
  } catch (e) {
    return e as Error;
  }
}

const send = (replies: Reply[]) =>
  self.postMessage(
    { replies },
    replies.flatMap((r) => r.chunks.map((c) => c.stored.buffer as ArrayBuffer)),
  );

/** libc's open/read (null without FFI: Deno's async reads below). */
const reader = FileReader.open();
/** Files opened and hinted (`posix_fadvise`) ahead of the one being read, with {@link reader}. */
const PREFETCH = 16;

/**
 * One batch through {@link reader}: the next {@link PREFETCH} small files are opened and their
 * reads started in the kernel; each is read (sync, into one buffer) when its turn comes.
 */
function processBatchSync(r: FileReader, jobs: Job[]): void {
  const pending: Reply[] = [];
  const fds: (number | Error | null)[] = new Array(jobs.length).fill(null);
  const start = (i: number) => {
    if (jobs[i].size <= READ_AHEAD_MAX) fds[i] = r.prefetch(jobs[i].path, jobs[i].root);
  };
  for (let i = 0; i < Math.min(PREFETCH, jobs.length); i++) start(i);
  for (let i = 0; i < jobs.length; i++) {
    const fd = fds[i];
    fds[i] = null;
    const bytes = fd === null
      ? readLarge(jobs[i])
      : typeof fd === "number"
      ? r.read(fd, jobs[i].path, jobs[i].size)
      : fd;
    processFile(jobs[i], bytes, send, pending);
    if (i + PREFETCH < jobs.length) start(i + PREFETCH);
  }
  send(pending);
}

/** One batch: small files are read {@link READ_AHEAD} ahead, larger ones when their turn comes. */
async function processBatch(jobs: Job[]): Promise<void> {
  if (reader) return processBatchSync(reader, jobs);
  const pending: Reply[] = [];
  const reads: (Promise<Uint8Array | Error> | null)[] = [];
  const start = (i: number) => {
    const j = jobs[i];
    reads[i] = j.size > READ_AHEAD_MAX
      ? null
      : readSlot(j.path, j.size, i % READ_AHEAD).catch((e: Error) => e);
  };
  for (let i = 0; i < Math.min(READ_AHEAD, jobs.length); i++) start(i);
  for (let i = 0; i < jobs.length; i++) {
    const r = reads[i];
    processFile(jobs[i], r === null ? readLarge(jobs[i]) : await r, send, pending);
    reads[i] = null;
    // Slot i % READ_AHEAD is free again: its bytes are chunked and encoded (copied).
    if (i + READ_AHEAD < jobs.length) start(i + READ_AHEAD);
  }
  send(pending);
}

// Batches are handled one at a time, in order (the read slots are shared).
const queue: Job[][] = [];
let running = false;
async function drain(): Promise<void> {
  running = true;
  try {
    while (queue.length) await processBatch(queue.shift()!);
  } finally {
    running = false;
  }
}

self.onmessage = (ev: MessageEvent<{ jobs: Job[] }>) => {
  queue.push(ev.data.jobs);
  if (!running) {
    drain().catch((e) => {
      throw e;
    });
  }
};

// Imports above finish (BLAKE3's WASM is compiled at load) before this line runs: only now may
// the main thread send work, or early messages could arrive before the handler exists.
self.postMessage({ ready: true });

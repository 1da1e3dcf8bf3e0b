/**
 * Worker side of the parallel ingest: reads a file, cuts it with FastCDC, hashes and encodes each
 * chunk, and posts the results back (buffers transferred, not copied). The main thread decides
 * what to store; this worker never touches the store.
 *
 * Messages in: `{ jobs: [{ job, path, size }] }` (a batch of files). Out: `{ replies: [{ job,
 * chunks: [{ id, stored, length }], done, error? }] }`; a large file sends partial replies (about
 * 8 MiB of chunks each) before its last one with `done: true`.
 * @module
 */
/// <reference lib="deno.worker" />
import { chunkBlocks, chunkBoundaries } from "../cas/chunk.ts";
import { encodeObject } from "../cas/compress.ts";
import { blake3Hex } from "../cas/hash.ts";
import { readBlocks, readWhole, STREAM_THRESHOLD } from "./blocks.ts";

const BATCH_BYTES = 8 << 20;

interface Out {
  id: string;
  stored: Uint8Array;
  length: number;
}

type Job = { job: number; path: string; size: number };
type Reply = { job: number; chunks: Out[]; done: boolean; error?: string };

/** Chunks, hashes and encodes one file; large files flush partial replies through `send`. */
function processFile(j: Job, send: (r: Reply[]) => void, pending: Reply[]): void {
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
    if (j.size > STREAM_THRESHOLD) {
      for (const c of chunkBlocks(readBlocks(j.path))) add(c);
    } else {
      const bytes = readWhole(j.path, j.size);
      for (const [a, b] of chunkBoundaries(bytes)) add(bytes.subarray(a, b));
    }
    pending.push({ job: j.job, chunks: out, done: true });
  } catch (e) {
    pending.push({ job: j.job, chunks: [], done: true, error: (e as Error).message });
  }
}

self.onmessage = (ev: MessageEvent<{ jobs: Job[] }>) => {
  const send = (replies: Reply[]) =>
    self.postMessage(
      { replies },
      replies.flatMap((r) => r.chunks.map((c) => c.stored.buffer as ArrayBuffer)),
    );
  const pending: Reply[] = [];
  for (const j of ev.data.jobs) processFile(j, send, pending);
  send(pending);
};

// Imports above finish (BLAKE3's WASM is compiled at load) before this line runs: only now may
// the main thread send work, or early messages could arrive before the handler exists.
self.postMessage({ ready: true });

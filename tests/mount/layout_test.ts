/**
 * Checks the struct layouts against the C headers: ffi/libfuse3.ts's LAYOUT (what the session
 * hands to libfuse) and every layout constant of src/mount/wire.ts (requests and replies), each
 * against `offsetof`/`sizeof` printed by a C program built with linux/fuse.h, libfuse3-dev and
 * glibc (tests/mount/_headers.ts). Every figure declared is checked, and every one checked exists.
 */
import { assertEquals } from "../_assert.ts";
import { LAYOUT } from "../../ffi/libfuse3.ts";
import {
  FUSE_ATTR,
  FUSE_CTX,
  FUSE_DIRENT,
  FUSE_DIRENT_ALIGNMENT,
  FUSE_DIRENTPLUS,
  FUSE_ENTRY_OUT,
  FUSE_ENTRY_PARAM,
  FUSE_FILE_INFO,
  FUSE_FILE_INFO_BITS,
  FUSE_NAME_OFFSET,
  FUSE_NAME_OFFSET_DIRENTPLUS,
  STAT,
  STATVFS,
} from "../../src/mount/wire.ts";
import { testIf } from "../_helpers.ts";
import { headerFigures, HEADERS_SKIP } from "./_headers.ts";

function flatten(o: unknown, key: string, into = new Map<string, number>()): Map<string, number> {
  if (typeof o === "number") into.set(key, o);
  else for (const [k, v] of Object.entries(o as object)) flatten(v, `${key}.${k}`, into);
  return into;
}

/** Compares every figure of `ours` whose key starts with one of `prefixes` with the C program. */
function compare(ours: Map<string, number>, prefixes: string[]): void {
  const c = headerFigures();
  let n = 0;
  for (const [k, v] of c) {
    if (!prefixes.some((p) => k === p || k.startsWith(p + "."))) continue;
    assertEquals(ours.get(k), v, k);
    n++;
  }
  for (const k of ours.keys()) assertEquals(c.has(k), true, `${k} is not checked`);
  assertEquals(n, ours.size, "figures compared");
}

testIf(HEADERS_SKIP, "ffi/libfuse3.ts layouts match the libfuse3-dev headers", () => {
  compare(flatten(LAYOUT, "LAYOUT"), ["LAYOUT"]);
});

testIf(HEADERS_SKIP, "src/mount/wire.ts layouts match linux/fuse.h, fuse_lowlevel.h, glibc", () => {
  const wire = {
    STAT,
    FUSE_ENTRY_PARAM,
    FUSE_ATTR,
    FUSE_ENTRY_OUT,
    FUSE_DIRENT,
    FUSE_DIRENTPLUS,
    FUSE_NAME_OFFSET,
    FUSE_NAME_OFFSET_DIRENTPLUS,
    FUSE_DIRENT_ALIGNMENT,
    FUSE_FILE_INFO,
    FUSE_FILE_INFO_BITS,
    STATVFS,
    FUSE_CTX,
  };
  const ours = new Map<string, number>();
  for (const [name, v] of Object.entries(wire)) flatten(v, name, ours);
  compare(ours, Object.keys(wire));
});

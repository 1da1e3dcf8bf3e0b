import { assertEquals } from "../_assert.ts";
import { tempDir } from "../_helpers.ts";
import {
  fileType,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from "../../src/sys/mode.ts";

Deno.test("mode: the S_IF* bits are Linux's (<sys/stat.h>)", () => {
  const table: [string, number, number][] = [
    ["S_IFMT", S_IFMT, 0o170000],
    ["S_IFSOCK", S_IFSOCK, 0o140000],
    ["S_IFLNK", S_IFLNK, 0o120000],
    ["S_IFREG", S_IFREG, 0o100000],
    ["S_IFBLK", S_IFBLK, 0o060000],
    ["S_IFDIR", S_IFDIR, 0o040000],
    ["S_IFCHR", S_IFCHR, 0o020000],
    ["S_IFIFO", S_IFIFO, 0o010000],
  ];
  for (const [name, got, want] of table) assertEquals(got, want, name);
});

Deno.test("mode: fileType keeps only the type bits", () => {
  const table: [number, number][] = [
    [0o100644, S_IFREG],
    [0o104755, S_IFREG], // setuid stays out of the type
    [0o040755, S_IFDIR],
    [0o120777, S_IFLNK],
    [0o020000, S_IFCHR],
    [0o060660, S_IFBLK],
    [0o010644, S_IFIFO],
    [0o140755, S_IFSOCK],
    [0o000644, 0],
  ];
  for (const [mode, want] of table) assertEquals(fileType(mode), want, mode.toString(8));
});

Deno.test("mode: agrees with what the kernel reports for real files", () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/f`, "x");
  Deno.mkdirSync(`${tmp.path}/d`);
  Deno.symlinkSync("f", `${tmp.path}/l`);
  assertEquals(fileType(Deno.lstatSync(`${tmp.path}/f`).mode!), S_IFREG);
  assertEquals(fileType(Deno.lstatSync(`${tmp.path}/d`).mode!), S_IFDIR);
  assertEquals(fileType(Deno.lstatSync(`${tmp.path}/l`).mode!), S_IFLNK);
  assertEquals(fileType(Deno.statSync("/dev/null").mode!), S_IFCHR);
});

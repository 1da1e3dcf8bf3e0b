/** ffi/dlopen_groups.ts: the first group bound at open, each later group at its first use. */
import { assertEquals } from "../_assert.ts";
import { dlopenGroups } from "../../ffi/dlopen_groups.ts";

const SYMBOLS = {
  getpid: { parameters: [], result: "i32" },
  getppid: { parameters: [], result: "i32" },
  getuid: { parameters: [], result: "u32" },
  geteuid: { parameters: [], result: "u32" },
} as const;

Deno.test("dlopenGroups: groups bind on first use; unlisted symbols go with the last group", () => {
  const lib = dlopenGroups("libc.so.6", SYMBOLS, ["getpid"], [["getppid"], ["getuid"]]);
  const bound = (k: string) =>
    typeof Object.getOwnPropertyDescriptor(lib.symbols, k)!.value === "function";
  try {
    assertEquals([bound("getpid"), bound("getppid"), bound("getuid"), bound("geteuid")], [
      true,
      false,
      false,
      false,
    ]);
    assertEquals(lib.symbols.getpid(), Deno.pid);
    assertEquals(lib.symbols.getppid(), Deno.ppid); // binds its group only
    assertEquals([bound("getppid"), bound("getuid"), bound("geteuid")], [true, false, false]);
    assertEquals(lib.symbols.geteuid(), Deno.uid()); // in no group: bound with the last one
    assertEquals([bound("getuid"), bound("geteuid")], [true, true]);
    assertEquals(lib.symbols.getuid(), Deno.uid());
  } finally {
    lib.close();
  }
});

Deno.test("dlopenGroups: a library that does not exist throws at open", () => {
  let msg = "";
  try {
    dlopenGroups("libhd-none.so.0", SYMBOLS, ["getpid"], []);
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg.includes("libhd-none.so.0"), true, msg);
});

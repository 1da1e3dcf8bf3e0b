/** Which `hd mount` invocations start their server before the CLI's modules load. */
import { assertEquals } from "../_assert.ts";
import { parseMountEarly, parseMountServer } from "../../src/cli/mount_early.ts";

Deno.test("parseMountEarly: only a plain background mount with known options starts early", () => {
  const table: [string[], ReturnType<typeof parseMountEarly>][] = [
    [["R", "/m"], { ref: "R", dir: "/m", flags: [] }],
    [["R", "/m", "--rw", "--json"], { ref: "R", dir: "/m", flags: ["--rw"], json: true }],
    [["--store", "/s", "R", "/m", "--layers"], {
      ref: "R",
      dir: "/m",
      store: "/s",
      flags: [
        "--layers",
      ],
    }],
    [["R", "/m", "--log=/l", "--store=/s"], {
      ref: "R",
      dir: "/m",
      store: "/s",
      log: "/l",
      flags: [],
    }],
    [["R", "/m", "--debug"], { ref: "R", dir: "/m", flags: [] }],
    [[], null], // lists the mounts
    [["R"], null], // a usage error: the ordinary path says so
    [["R", "/m", "x"], null],
    [["R", "/m", "--foreground"], null], // serves in this process
    [["R", "/m", "--help"], null],
    [["R", "/m", "-h"], null],
    [["R", "/m", "--bogus"], null], // an unknown option: the ordinary path says so
    [["R", "/m", "--rw=yes"], null],
    [["R", "/m", "--store"], null],
    [["R", "/m", "--store", ""], null],
    [["R", "--", "/m"], null],
  ];
  for (const [rest, want] of table) assertEquals(parseMountEarly(rest), want, rest.join(" "));
});

Deno.test("parseMountServer: only the command line spawnMountServer builds serves without main.ts", () => {
  const table: [string[], ReturnType<typeof parseMountServer>][] = [
    [["R", "/m", "--foreground", "--ready"], { ref: "R", dir: "/m", flags: [] }],
    [["R", "/m", "--foreground", "--ready", "--store", "/s", "--log", "/l", "--rw", "--layers"], {
      ref: "R",
      dir: "/m",
      store: "/s",
      log: "/l",
      flags: ["--rw", "--layers"],
    }],
    [["R", "/m", "--foreground"], null], // a user's foreground mount: the ordinary path
    [["R", "/m", "--ready"], null], // --ready alone means nothing: the ordinary path says so
    [["R", "/m", "--foreground", "--ready", "--json"], null],
    [["R", "/m", "--foreground", "--ready", "--debug"], null],
    [["R", "/m", "--foreground", "--ready", "--foreground"], null],
    [["R", "/m", "--foreground", "--ready", "--help"], null],
    [["R", "/m", "--foreground", "--ready", "--bogus"], null],
    [["R", "--foreground", "--ready"], null],
    [["R", "/m", "x", "--foreground", "--ready"], null],
    [[], null],
  ];
  for (const [rest, want] of table) assertEquals(parseMountServer(rest), want, rest.join(" "));
});

/**
 * The tar reader reads what GNU tar writes (gnu and pax formats, long names, links, devices),
 * whatever the sizes of the pieces it is fed.
 */
import { assertEquals, assertThrows } from "../_assert.ts";
import { skipUnless, tempDir, testIf } from "../_helpers.ts";
import { paxNumber, type TarHeader, TarReader } from "../../src/oci/tar.ts";
import { makeTar } from "./_fixtures.ts";

function readAll(tar: Uint8Array, piece: number): { h: TarHeader; body: string }[] {
  const out: { h: TarHeader; body: string }[] = [];
  const parts: Uint8Array[] = [];
  const r = new TarReader({
    entry: (h) => out.push({ h, body: "" }),
    data: (b) => parts.push(b.slice()),
    end: () => {
      const n = parts.reduce((a, p) => a + p.length, 0);
      const buf = new Uint8Array(n);
      let o = 0;
      for (const p of parts) (buf.set(p, o), o += p.length);
      out[out.length - 1].body = new TextDecoder().decode(buf);
      parts.length = 0;
    },
  });
  for (let i = 0; i < tar.length; i += piece) r.push(tar.subarray(i, i + piece));
  r.finish();
  return out;
}

const LONG = "d/" + "n".repeat(120) + "/f.txt";

for (const format of ["gnu", "pax", "ustar"]) {
  testIf(
    skipUnless({ commands: ["tar"] }),
    `reads GNU tar --format=${format}`,
    async () => {
      using tmp = tempDir("hd-tar-");
      const src = `${tmp.path}/src`;
      Deno.mkdirSync(`${src}/d`, { recursive: true });
      Deno.writeTextFileSync(`${src}/d/a.txt`, "alpha\n");
      Deno.writeTextFileSync(`${src}/big`, "x".repeat(70_000));
      Deno.symlinkSync("d/a.txt", `${src}/link`);
      Deno.linkSync(`${src}/d/a.txt`, `${src}/hard`);
      if (format !== "ustar") {
        Deno.mkdirSync(`${src}/${LONG.slice(0, LONG.lastIndexOf("/"))}`, { recursive: true });
        Deno.writeTextFileSync(`${src}/${LONG}`, "long\n");
      }
      Deno.chownSync(`${src}/d/a.txt`, 1234, 5678);
      const out = await new Deno.Command("tar", {
        args: [`--format=${format}`, "--numeric-owner", "-C", src, "-cf", "-", "."],
        stdout: "piped",
      }).output();
      const tar = out.stdout;
      for (const piece of [1, 511, 512, 4096, 1 << 20]) {
        const es = readAll(tar, piece);
        const by = new Map(es.map((e) => [e.h.path.replace(/^\.\//, "").replace(/\/$/, ""), e]));
        // d/a.txt and hard are one inode: whichever tar met first carries the bytes.
        const pair = [by.get("d/a.txt")!, by.get("hard")!];
        const file = pair.find((e) => e.h.type === "file")!;
        const link = pair.find((e) => e.h.type === "hardlink")!;
        assertEquals(file.body, "alpha\n");
        assertEquals([file.h.uid, file.h.gid], [1234, 5678]);
        assertEquals(link.h.linkname.replace(/^\.\//, ""), file.h.path.replace(/^\.\//, ""));
        assertEquals(by.get("big")!.body.length, 70_000);
        assertEquals(by.get("link")!.h.type, "symlink");
        assertEquals(by.get("link")!.h.linkname, "d/a.txt");
        assertEquals(by.get("d")!.h.type, "dir");
        if (format !== "ustar") assertEquals(by.get(LONG)!.body, "long\n");
      }
    },
  );
}

Deno.test("reads devices and fifos; a truncated archive throws", () => {
  const tar = makeTar([
    { path: "dev/tty", type: "char", major: 5, minor: 0, mode: 0o666 },
    { path: "p", type: "fifo" },
    { path: "f", data: "0123456789" },
  ]);
  const es = readAll(tar, 100);
  assertEquals(es.map((e) => e.h.type), ["char", "fifo", "file"]);
  assertEquals([es[0].h.devmajor, es[0].h.devminor, es[0].h.mode], [5, 0, 0o666]);
  const r = new TarReader({ entry() {}, data() {}, end() {} });
  r.push(tar.subarray(0, 512 * 3 + 5));
  assertThrows(() => r.finish(), /truncated/);
});

Deno.test("numeric pax records must be decimal numbers (NaN, negative owners refused)", () => {
  for (
    const [k, v, ok] of [
      ["mtime", "1700000000.5", 1700000000],
      ["mtime", "-12", -12],
      ["mtime", "abc", null],
      ["mtime", "1e400", null],
      ["uid", "5", 5],
      ["uid", "-5", null],
      ["gid", "1e3", null],
      ["size", "99999999999999999999", null],
      ["size", "", null],
    ] as const
  ) {
    if (ok === null) assertThrows(() => paxNumber(v, k), /bad pax/);
    else assertEquals(paxNumber(v, k), ok);
  }
  const tar = makeTar([{ path: "t", data: "z", pax: [["mtime", "soon"]] }]);
  const r = new TarReader({ entry() {}, data() {}, end() {} });
  assertThrows(() => r.push(tar), /bad pax mtime "soon"/);
});

/**
 * Host-mode port clashes at load: the pure decision (hostPortClash) as a table, and hd.toml files
 * where two host services declare the same port (the error names both places).
 */
import { assert, assertEquals } from "../_assert.ts";
import { type DeclaredPort, hostPortClash } from "../../src/config/ports.ts";
import { loadSpec } from "../../src/config/parse.ts";
import { throwsHd } from "./_util.ts";
import { tempDir } from "../_helpers.ts";

const at = (line: number) => ({ file: "/p/hd.toml", line, column: 8 });
const p = (name: string, port: number | null, onHost: boolean, line: number): DeclaredPort => ({
  name,
  port,
  onHost,
  at: at(line),
});

Deno.test("hostPortClash: which pairs of services clash", () => {
  const table: [string, DeclaredPort[], [string, string, number] | null][] = [
    ["no services", [], null],
    ["distinct ports", [p("a", 3000, true, 2), p("b", 3001, true, 5)], null],
    ["same port on the host", [p("a", 3000, true, 2), p("b", 3000, true, 5)], ["a", "b", 3000]],
    ["same port, both sandboxed", [p("a", 3000, false, 2), p("b", 3000, false, 5)], null],
    ["same port, one sandboxed", [p("a", 3000, false, 2), p("b", 3000, true, 5)], null],
    ["no port at all", [p("a", null, true, 2), p("b", null, true, 5)], null],
    [
      "first clash in declaration order",
      [p("a", 1, true, 2), p("b", 2, true, 4), p("c", 2, true, 6), p("d", 1, true, 8)],
      ["b", "c", 2],
    ],
    [
      "three on one port: the first two",
      [p("a", 80, true, 2), p("b", 80, true, 4), p("c", 80, true, 6)],
      ["a", "b", 80],
    ],
  ];
  for (const [what, ports, want] of table) {
    const got = hostPortClash(ports);
    assertEquals(got && [got.first.name, got.second.name, got.port], want, what);
  }
});

function load(text: string): { file: string; err: () => Error } {
  const d = tempDir("hd-ports-");
  const file = `${d.path}/hd.toml`;
  Deno.writeTextFileSync(file, text);
  return {
    file,
    err: () => {
      try {
        return throwsHd(() => loadSpec(file));
      } finally {
        d[Symbol.dispose]();
      }
    },
  };
}

Deno.test("hd.toml: two host services on one port is an error naming both lines", () => {
  const text = `[environment]
name = "x"

[services.web]
command = "a"
port = 3000

[services.api]
command = "b"
port   = 3000
`;
  const { file, err } = load(text);
  const e = err();
  const shown = file; // outside the cwd: shown absolute
  assert(e.message.includes(`${shown}:10:10: port 3000 is declared by two services`), e.message);
  assert(e.message.includes(`"web" at ${shown}:6:8`), e.message);
  assert(e.message.includes(`"api" at ${shown}:10:10`), e.message);
  assert(e.message.includes("(key services.api.port)"), e.message);
});

Deno.test("hd.toml: the same port is fine with a base (each service has its own network)", () => {
  using d = tempDir("hd-ports-");
  const file = `${d.path}/hd.toml`;
  Deno.writeTextFileSync(
    file,
    `[environment]\nname = "x"\nbase = "busybox"\n[services.a]\ncommand = "a"\nport = 80\n[services.b]\ncommand = "b"\nport = 80\n`,
  );
  const spec = loadSpec(file);
  assertEquals([spec.services.a.port, spec.services.b.port], [80, 80]);
});

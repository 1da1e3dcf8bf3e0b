/**
 * Profiles as a table (src/services/profiles.ts): which services `hd up [--profile P…] [SERVICE…]`
 * starts, which are inactive, and the error when an active service depends on an inactive one —
 * compose's semantics.
 */
import { assertEquals, assertIncludes } from "../_assert.ts";
import { selectServices } from "../../src/services/profiles.ts";
import { HdError } from "../../src/sys/errors.ts";
import { svc } from "./_util.ts";

const SERVICES = {
  db: svc("db", "db"),
  web: svc("web", "web", { depends_on: ["db"] }),
  adminer: svc("adminer", "a", { profiles: ["debug"], depends_on: ["db"] }),
  mock: svc("mock", "m", { profiles: ["dev"], depends_on: ["mockdb"] }),
  mockdb: svc("mockdb", "md", { profiles: ["dev"] }),
  tracer: svc("tracer", "t", { profiles: ["debug", "trace"] }),
};

Deno.test("profiles: which services start, which are inactive", () => {
  const table: [string, string[], string[], string[] | undefined, string[], string[]][] = [
    // name, --profile, targets, start (undefined = all), inactive, unknown profiles
    ["no profile: those without profiles", [], [], ["db", "web"], [
      "adminer",
      "mock",
      "mockdb",
      "tracer",
    ], []],
    ["--profile debug: its services too", ["debug"], [], ["db", "web", "adminer", "tracer"], [
      "mock",
      "mockdb",
    ], []],
    ["a service in two profiles: either one", ["trace"], [], ["db", "web", "tracer"], [
      "adminer",
      "mock",
      "mockdb",
    ], []],
    ["every profile: all", ["debug", "dev"], [], undefined, [], []],
    ["a named service starts whatever its profiles", [], ["adminer"], ["adminer"], [
      "mock",
      "mockdb",
    ], []], // tracer is in "debug", active now: not inactive, only not named
    [
      "a named service enables its profiles for its dependencies",
      [],
      ["mock"],
      ["mock"],
      ["adminer", "tracer"],
      [],
    ],
    ["an unknown profile is reported", ["nope"], [], ["db", "web"], [
      "adminer",
      "mock",
      "mockdb",
      "tracer",
    ], ["nope"]],
  ];
  for (const [what, profiles, targets, start, inactive, unknown] of table) {
    const s = selectServices(SERVICES, profiles, targets);
    assertEquals(s.start, start, `${what}: start`);
    assertEquals(Object.keys(s.inactive), inactive, `${what}: inactive`);
    assertEquals(s.unknownProfiles, unknown, `${what}: unknown`);
  }
  assertEquals(selectServices(SERVICES, [], []).inactive.tracer, ["debug", "trace"]);
  // no service has profiles: everything, as before
  assertEquals(selectServices({ a: svc("a", "a") }, [], []).start, undefined);
});

Deno.test("profiles: an active service depending on an inactive one is an error", () => {
  const services = {
    ...SERVICES,
    web: svc("web", "web", { depends_on: ["db", "mockdb"] }),
  };
  for (const targets of [[], ["web"]]) {
    let err: unknown;
    try {
      selectServices(services, [], targets);
    } catch (e) {
      err = e;
    }
    if (!(err instanceof HdError)) throw new Error(`expected an HdError for ${targets}`);
    assertEquals(
      err.message,
      'Cannot start web: it depends on mockdb, which is only in profile "dev" (not active)',
    );
    assertIncludes(err.hint, "--profile dev");
  }
  // with the profile it starts
  assertEquals(selectServices(services, ["dev"], []).start, ["db", "web", "mock", "mockdb"]);
});

/**
 * What `hd status` says of a build step: the store's answer, unless the running `hd up` ran it and
 * is still recording its result (host steps are recorded after the services start), runs it now,
 * or saw it fail.
 * @module
 */
import { assertEquals } from "../_assert.ts";
import { stepLabel } from "../../src/cli/status.ts";

Deno.test("stepLabel: the table", () => {
  const rows: [boolean, "cached" | "ran" | "failed" | "pending" | undefined, string][] = [
    [true, undefined, "cached"],
    [true, "ran", "cached"], // recorded: the store's answer
    [true, "failed", "cached"], // an older result is cached; the running loop's failure is its own
    [false, undefined, "not built"],
    [false, "ran", "ran, being recorded"],
    [false, "cached", "ran, being recorded"],
    [false, "pending", "running"],
    [false, "failed", "failed"],
  ];
  for (const [cached, live, want] of rows) {
    assertEquals(stepLabel(cached, live), want, `${cached} ${live}`);
  }
});

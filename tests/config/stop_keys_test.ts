/**
 * A service's `stop_signal` (validated names, compose's forms) and `restart_grace` (a duration,
 * capped like [options] restart_grace), parsed and refused with file:line:col.
 */
import { assert, assertEquals } from "../_assert.ts";
import { assertMatch, throwsHd } from "./_util.ts";
import { parseSpec } from "../../src/config/parse.ts";
import { stopSignalName } from "../../src/config/signals.ts";

const SVC = '[environment]\nname = "x"\n[services.web]\ncommand = "x"\n';

Deno.test("stop_signal: which names are accepted (a pure table)", () => {
  const cases: [string, string | null][] = [
    ["SIGINT", "SIGINT"],
    ["INT", "SIGINT"],
    ["sigquit", "SIGQUIT"],
    ["SIGTERM", "SIGTERM"],
    ["SIGHUP", "SIGHUP"],
    ["SIGUSR1", "SIGUSR1"],
    ["SIGUSR2", "SIGUSR2"],
    ["SIGWINCH", "SIGWINCH"],
    ["SIGKILL", "SIGKILL"],
    ["SIGSTOP", null], // would leave the service stopped, not ended
    ["SIGCHLD", null],
    ["SIGFOO", null],
    ["15", null],
    ["", null],
  ];
  for (const [given, want] of cases) assertEquals(stopSignalName(given), want, given);
});

Deno.test("stop_signal and restart_grace: parsed per service", () => {
  const spec = parseSpec(
    SVC + 'stop_signal = "SIGINT"\nrestart_grace = "2s"\n[services.w2]\ncommand = "y"\n',
    "/p/hd.toml",
  );
  assertEquals(spec.services.web.stop_signal, "SIGINT");
  assertEquals(spec.services.web.restartGraceMs, 2000);
  assertEquals(spec.services.w2.stop_signal, undefined);
  assertEquals(spec.services.w2.restartGraceMs, undefined);
});

Deno.test("stop_signal and restart_grace: bad values are located", () => {
  const cases: { toml: string; key: string; why: RegExp }[] = [
    { toml: 'stop_signal = "SIGSTOP"\n', key: "services.web.stop_signal", why: /SIGSTOP/ },
    { toml: "stop_signal = 2\n", key: "services.web.stop_signal", why: /string/ },
    { toml: 'restart_grace = "soon"\n', key: "services.web.restart_grace", why: /duration/ },
    { toml: 'restart_grace = "10h"\n', key: "services.web.restart_grace", why: /at most/ },
  ];
  for (const c of cases) {
    const err = throwsHd(() => parseSpec(SVC + c.toml, "/p/hd.toml"));
    assertMatch(err.message, c.why);
    assert(err.message.includes(`(key ${c.key})`), err.message);
    assert(err.message.includes("hd.toml:5:"), err.message);
    assert(err.hint.length > 0, err.message);
  }
});

/**
 * Entry point of the `hd` binary. `hd --help` and `hd --version` alone print their text
 * (src/cli/help_text.ts) before anything else loads; `hd status [--json]` answers from its saved
 * proof with the fewest modules loaded when it can (src/cli/status_early.ts), else runs as usual. `hd up -d` starts its detached supervisor
 * before the CLI loads (src/cli/up_early.ts), and `hd mount REF DIR` its server
 * (src/cli/mount_early.ts), so that the two processes start side by side; a cold `hd cas add DIR`
 * starts its ingest workers (src/cli/add_early.ts).
 * @module
 */
import { TOP_HELP, VERSION } from "./src/cli/help_text.ts";

const [only, ...more] = Deno.args;
const text = more.length > 0
  ? null
  : only === undefined || only === "--help" || only === "-h" || only === "help"
  ? TOP_HELP
  : only === "--version" || only === "version"
  ? `hd ${VERSION}`
  : null;
if (text !== null) {
  Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));
  Deno.exit(only === undefined ? 2 : 0);
}
if (Deno.args[0] === "status") {
  const code = await (await import("./src/cli/status_early.ts")).statusEarly(Deno.args);
  if (code !== null) Deno.exit(code);
}
const { startEarlySupervisor } = await import("./src/cli/up_early.ts");
startEarlySupervisor(Deno.args);
if (Deno.args[0] === "mount") {
  (await import("./src/cli/mount_early.ts")).startMountEarly(Deno.args.slice(1));
} else if (Deno.args[0] === "cas" && Deno.args[1] === "add") {
  (await import("./src/cli/add_early.ts")).startAddEarly(Deno.args.slice(2));
}
const [{ main }, { trace }] = await Promise.all([
  import("./src/cli/main.ts"),
  import("./src/sys/trace.ts"),
]);
const code = await main(Deno.args);
trace("exit");
Deno.exit(code);

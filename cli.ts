/**
 * Entry point of the `hd` binary. `hd up -d` starts its detached supervisor before the CLI loads
 * (src/cli/up_early.ts), and `hd mount REF DIR` its server (src/cli/mount_early.ts), so that the
 * two processes start side by side. `hd --help` and `hd --version` alone print their text
 * (src/cli/help_text.ts) without loading the CLI at all.
 * @module
 */
import { startEarlySupervisor } from "./src/cli/up_early.ts";
import { startMountEarly } from "./src/cli/mount_early.ts";
import { trace } from "./src/sys/trace.ts";
import { TOP_HELP, VERSION } from "./src/cli/help_text.ts";

startEarlySupervisor(Deno.args);
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
  trace("exit");
  Deno.exit(only === undefined ? 2 : 0);
}
if (Deno.args[0] === "mount") startMountEarly(Deno.args.slice(1));
const { main } = await import("./src/cli/main.ts");
const code = await main(Deno.args);
trace("exit");
Deno.exit(code);

/**
 * Entry point of the `hd` binary. `hd up -d` starts its detached supervisor before the CLI loads
 * (src/cli/up_early.ts), and `hd mount REF DIR` its server (src/cli/mount_early.ts), so that the
 * two processes start side by side.
 * @module
 */
import { startEarlySupervisor } from "./src/cli/up_early.ts";
import { startMountEarly } from "./src/cli/mount_early.ts";
import { trace } from "./src/sys/trace.ts";

startEarlySupervisor(Deno.args);
if (Deno.args[0] === "mount") startMountEarly(Deno.args.slice(1));
const { main } = await import("./src/cli/main.ts");
const code = await main(Deno.args);
trace("exit");
Deno.exit(code);

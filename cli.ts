/**
 * Entry point of the `hd` binary. `hd up -d` starts its detached supervisor before the CLI loads
 * (src/cli/up_early.ts), so that the two processes start side by side.
 * @module
 */
import { startEarlySupervisor } from "./src/cli/up_early.ts";
import { trace } from "./src/sys/trace.ts";

startEarlySupervisor(Deno.args);
const { main } = await import("./src/cli/main.ts");
const code = await main(Deno.args);
trace("exit");
Deno.exit(code);

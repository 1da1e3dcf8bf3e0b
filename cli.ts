/**
 * Entry point of the `hd` binary. `hd --help` and `hd --version` alone print their text
 * (src/cli/help_text.ts) before anything else loads; `hd status [--json]` answers from its saved
 * proof with the fewest modules loaded when it can (src/cli/status_early.ts), else runs as usual.
 * `hd up -d` starts its detached supervisor before the CLI loads (src/cli/up_early.ts), and
 * `hd mount REF DIR` its server (src/cli/mount_early.ts), so that the two processes start side by
 * side; that server goes straight to serving (mount_early.ts's serveMountEarly), without main.ts,
 * and the supervisor (or a foreground `hd up`) starts its first services when nothing changed
 * (src/services/prespawn.ts); the supervisor then loads its session's modules before main.ts.
 * @module
 */
import { TOP_HELP, VERSION } from "./src/cli/help_text.ts";
import { lazyImport } from "./src/sys/lazy.ts";

const [only, ...more] = Deno.args;
// the supervisor's spare, when this process is one (src/services/spare.ts)
let spare: typeof import("./src/services/spare.ts") | null = null;
// only hd itself makes a spare: a supervisor started from here never inherits the mark
if (!(Deno.args[0] === "up" && Deno.args[1] === "--supervise")) {
  Deno.env.delete("HD_INTERNAL_SPARE");
}
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
// Every early module through lazyImport: as literal import()s, Deno would read and analyse their
// module graphs before starting, also for `hd --version` and a spawned mount server.
if (Deno.args[0] === "status") {
  const early = await lazyImport<typeof import("./src/cli/status_early.ts")>(
    new URL("./src/cli/status_early.ts", import.meta.url),
  );
  const code = await early.statusEarly(Deno.args);
  if (code !== null) Deno.exit(code);
}
if (Deno.args[0] === "mount") {
  const early = await lazyImport<typeof import("./src/cli/mount_early.ts")>(
    new URL("./src/cli/mount_early.ts", import.meta.url),
  );
  // a server spawned by `hd mount` serves without main.ts
  const served = early.serveMountEarly(Deno.args.slice(1));
  if (served) Deno.exit(await served);
  early.startMountEarly(Deno.args.slice(1));
  // the store's mount server served it: said without loading main.ts
  const code = await early.finishServedEarly();
  if (code !== null) Deno.exit(code);
} else if (Deno.args[0] === "up" && Deno.args[1] === "--supervise") {
  // a spare (src/services/spare.ts): loads the supervisor's modules, then waits for the next
  // `hd up -d` of its project, and goes on from here as its supervisor (or exits)
  const spareFor = Deno.env.get("HD_INTERNAL_SPARE");
  if (spareFor !== undefined) {
    Deno.env.delete("HD_INTERNAL_SPARE");
    const [s, { entryArgs }] = await Promise.all([
      lazyImport<typeof import("./src/services/spare.ts")>(
        new URL("./src/services/spare.ts", import.meta.url),
      ),
      lazyImport<typeof import("./src/cli/up_early.ts")>(
        new URL("./src/cli/up_early.ts", import.meta.url),
      ),
    ]);
    spare = s;
    const linger = s.parseSpareLinger(Deno.env.get("HD_SPARE_LINGER"));
    if (linger.ms === 0) Deno.exit(0);
    await s.waitAsSpare({
      dir: spareFor,
      argv: [Deno.execPath(), ...entryArgs(), ...Deno.args],
      lingerMs: linger.ms,
      // the supervisor's modules, its guardian, and one dry run of its early start
      preload: async () => {
        const [prespawn, process, hash] = await Promise.all([
          lazyImport<typeof import("./src/services/prespawn.ts")>(
            new URL("./src/services/prespawn.ts", import.meta.url),
          ),
          lazyImport<typeof import("./src/sandbox/process.ts")>(
            new URL("./src/sandbox/process.ts", import.meta.url),
          ),
          lazyImport<typeof import("./src/cas/hash.ts")>(
            new URL("./src/cas/hash.ts", import.meta.url),
          ),
          ...["./src/services/session.ts", "./src/cli/main.ts", "./src/cli/up.ts"].map((m) =>
            lazyImport(new URL(m, import.meta.url))
          ),
        ]);
        process.startGuardian();
        await Promise.all([
          prespawn.standBy(Deno.args),
          hash.loadNativeBlake3(),
        ]);
      },
    });
  }
  // the detached supervisor: on proof that nothing changed, its first services start before
  // anything else loads (src/services/prespawn.ts); its session's modules load while main.ts and
  // the spec do, and its guardian starts meanwhile (src/sandbox/process.ts's startGuardian)
  await lazyImport<typeof import("./src/services/prespawn.ts")>(
    new URL("./src/services/prespawn.ts", import.meta.url),
  ).then((m) => m.prespawn(Deno.args)).catch(() => {});
  lazyImport(new URL("./src/services/session.ts", import.meta.url)).catch(() => {});
  lazyImport<typeof import("./src/sandbox/process.ts")>(
    new URL("./src/sandbox/process.ts", import.meta.url),
  ).then((m) => m.startGuardian()).catch(() => {});
} else if (Deno.args[0] === "up") {
  const { foregroundArgs, startEarlySupervisor } = await lazyImport<
    typeof import("./src/cli/up_early.ts")
  >(new URL("./src/cli/up_early.ts", import.meta.url));
  await startEarlySupervisor(Deno.args);
  // a foreground `hd up` is its own supervisor: its first services start early as well
  const fg = foregroundArgs(Deno.args);
  if (fg !== null) {
    await lazyImport<typeof import("./src/services/prespawn.ts")>(
      new URL("./src/services/prespawn.ts", import.meta.url),
    ).then((m) => m.prespawn(fg)).catch(() => {});
  }
}
const [{ main }, { trace }] = await Promise.all([
  lazyImport<typeof import("./src/cli/main.ts")>(new URL("./src/cli/main.ts", import.meta.url)),
  import("./src/sys/trace.ts"),
]);
const code = await main(Deno.args);
trace("exit");
await spare?.reportExit(code);
Deno.exit(code);

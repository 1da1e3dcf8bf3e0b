/**
 * `hd --help` and `hd --version` without loading the CLI: cli.ts prints these before it imports
 * src/cli/main.ts, whose module graph is most of what those two cost beyond Deno's own start.
 * Written by scripts/cli_docs.ts from main.ts's topHelp() (`deno task check` compares them);
 * do not edit by hand: run `deno run -A scripts/cli_docs.ts`.
 * @module
 */

/** The version printed by `hd --version`. */
export const VERSION = "0.1.0";

/** The text of `hd --help` (generated). */
export const TOP_HELP = [
  "hd — content-addressed development environments",
  "",
  "Usage: hd <command> [options]",
  "",
  "Commands:",
  "  cas add       store files or directories; print the root hash",
  "  cas checkout  write a stored tree into a new directory",
  "  cas cat       print a stored file, chunk, directory listing or node",
  "  cas stats     show how many objects, manifests and refs the store holds",
  "  cas gc        delete objects no ref reaches (--dry-run to only report)",
  "  cas verify    re-read and re-hash every object; report (--repair: re-supply) missing or corrupt ones",
  "  pull          pull an OCI image into the store; print its digest and rootfs hash",
  "  cache push    upload the current environment's step results to the remote cache",
  "  cache ls      list the step results the remote cache holds (this environment's marked)",
  "  cache pull    download the current environment's step results from the remote cache",
  "  export        export the environment as an OCI image (a layout, a docker archive, or a push)",
  "  images        list pulled images",
  "  images rm     forget pulled images (then `hd cas gc` frees what nothing else uses)",
  "  up            build the environment, start its services, and watch for changes",
  "  down          stop the services of `hd up` (reverse dependency order)",
  "  logs          show (and follow) the output of services, interleaved in time order",
  "  restart       restart a service (and its dependents) of the running environment",
  "  start         start services (and what they depend on) of the running environment",
  "  stop          stop services of the running environment (until `hd start`)",
  "  ps            the services of the running environment: state, pid, restarts, port, health",
  "  exec          run a command in the environment (its variables and working directory)",
  "  shell         open a shell (or run a command) inside the environment's sandbox",
  "  ingest        translate a Dockerfile or compose file into hd.toml",
  "  init          write a commented starter hd.toml",
  "  lock          resolve dependencies and write hd.lock",
  "  status        show the environment: hashes, files, build steps, services, mounts",
  "  dag show      print a DAG (default: the project's Env) as a tree",
  "  dag diff      list paths added, removed and changed between two trees",
  "  mount         project a stored tree on a directory (FUSE, lazy from the store)",
  "  unmount       unmount a directory mounted with `hd mount`",
  "  snapshot      store the view of a writable mount; print its root",
  "  completions   print a shell completion script (bash, zsh or fish)",
  "",
  "Global options: --json, --store DIR, --debug, --help. `hd <command> --help` for more.",
].join("\n");

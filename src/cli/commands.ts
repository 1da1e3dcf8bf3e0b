/**
 * Every command of the `hd` CLI, loaded on demand: `hd status` does not pay for compiling the
 * modules of `hd pull` or `hd mount`. Add a command by writing its file and listing it here
 * (name as typed, and a loader of its exported Command).
 * @module
 */
import type { Command } from "./command.ts";

/** A command known by name; its module loads only when it runs (or for `hd --help`). */
export interface CommandEntry {
  /** Full name, words separated by spaces ("cas add"). */
  name: string;
  /**
   * The command's one line for `hd --help`, the same as its Command's `summary` (a test checks):
   * kept here so that `hd --help` loads no command module.
   */
  summary: string;
  /** Imports the command's module. */
  load: () => Promise<Command>;
  /** The command runs another command: nothing after its first positional is hd's option. */
  passThrough?: boolean;
}

/** All commands, in the order `hd --help` lists them. */
export const COMMANDS: CommandEntry[] = [
  {
    name: "cas add",
    summary: "store files or directories; print the root hash",
    load: async () => (await import("./cas/add.ts")).casAdd,
  },
  {
    name: "cas checkout",
    summary: "write a stored tree into a new directory",
    load: async () => (await import("./cas/checkout.ts")).casCheckout,
  },
  {
    name: "cas cat",
    summary: "print a stored file, chunk, directory listing or node",
    load: async () => (await import("./cas/cat.ts")).casCat,
  },
  {
    name: "cas stats",
    summary: "show how many objects, manifests and refs the store holds",
    load: async () => (await import("./cas/stats.ts")).casStats,
  },
  {
    name: "cas gc",
    summary: "delete objects no ref reaches (--dry-run to only report)",
    load: async () => (await import("./cas/gc.ts")).casGc,
  },
  {
    name: "cas verify",
    summary:
      "re-read and re-hash every object; report (--repair: re-supply) missing or corrupt ones",
    load: async () => (await import("./cas/verify.ts")).casVerify,
  },
  {
    name: "pull",
    summary: "pull an OCI image into the store; print its digest and rootfs hash",
    load: async () => (await import("./pull.ts")).pull,
  },
  {
    name: "cache push",
    summary: "upload the current environment's step results to the remote cache",
    load: async () => (await import("./cache.ts")).cachePush,
  },
  {
    name: "cache ls",
    summary: "list the step results the remote cache holds (this environment's marked)",
    load: async () => (await import("./cache.ts")).cacheLs,
  },
  {
    name: "cache pull",
    summary: "download the current environment's step results from the remote cache",
    load: async () => (await import("./cache.ts")).cachePull,
  },
  {
    name: "export",
    summary: "export the environment as an OCI image (a layout, a docker archive, or a push)",
    load: async () => (await import("./export.ts")).exportCmd,
  },
  {
    name: "images",
    summary: "list pulled images",
    load: async () => (await import("./images.ts")).images,
  },
  {
    name: "images rm",
    summary: "forget pulled images (then `hd cas gc` frees what nothing else uses)",
    load: async () => (await import("./images_rm.ts")).imagesRm,
  },
  {
    name: "up",
    summary: "build the environment, start its services, and watch for changes",
    load: async () => (await import("./up.ts")).up,
  },
  {
    name: "down",
    summary: "stop the services of `hd up` (reverse dependency order)",
    load: async () => (await import("./down.ts")).down,
  },
  {
    name: "logs",
    summary: "show (and follow) the output of services, interleaved in time order",
    load: async () => (await import("./logs.ts")).logs,
  },
  {
    name: "restart",
    summary: "restart a service (and its dependents) of the running environment",
    load: async () => (await import("./restart.ts")).restart,
  },
  {
    name: "start",
    summary: "start services (and what they depend on) of the running environment",
    load: async () => (await import("./service_ctl.ts")).start,
  },
  {
    name: "stop",
    summary: "stop services of the running environment (until `hd start`)",
    load: async () => (await import("./service_ctl.ts")).stop,
  },
  {
    name: "ps",
    summary: "the services of the running environment: state, pid, restarts, port, health",
    load: async () => (await import("./service_ctl.ts")).ps,
  },
  {
    name: "exec",
    summary: "run a command in the environment (its variables and working directory)",
    load: async () => (await import("./exec.ts")).exec,
    passThrough: true,
  },
  {
    name: "shell",
    summary: "open a shell (or run a command) inside the environment's sandbox",
    load: async () => (await import("./shell.ts")).shell,
    passThrough: true,
  },
  {
    name: "ingest",
    summary: "translate a Dockerfile or compose file into hd.toml",
    load: async () => (await import("./ingest.ts")).ingestCmd,
  },
  {
    name: "init",
    summary: "write a commented starter hd.toml",
    load: async () => (await import("./init.ts")).init,
  },
  {
    name: "lock",
    summary: "resolve dependencies and write hd.lock",
    load: async () => (await import("./lock.ts")).lock,
  },
  {
    name: "status",
    summary: "show the environment: hashes, files, build steps, services, mounts",
    load: async () => (await import("./status.ts")).status,
  },
  {
    name: "dag show",
    summary: "print a DAG (default: the project's Env) as a tree",
    load: async () => (await import("./dag/show.ts")).dagShow,
  },
  {
    name: "dag diff",
    summary: "list paths added, removed and changed between two trees",
    load: async () => (await import("./dag/diff.ts")).dagDiff,
  },
  {
    name: "mount",
    summary: "project a stored tree on a directory (FUSE, lazy from the store)",
    load: async () => (await import("./mount.ts")).mount,
  },
  {
    name: "unmount",
    summary: "unmount a directory mounted with `hd mount`",
    load: async () => (await import("./unmount.ts")).unmount,
  },
  {
    name: "snapshot",
    summary: "store the view of a writable mount; print its root",
    load: async () => (await import("./snapshot.ts")).snapshot,
  },
  {
    name: "completions",
    summary: "print a shell completion script (bash, zsh or fish)",
    load: async () => (await import("./completions.ts")).completions,
  },
];

/**
 * Every command of the `hd` CLI, loaded on demand: `hd status` does not pay for compiling the
 * modules of `hd pull` or `hd mount`, nor (through src/sys/lazy.ts) for Deno reading them ahead. Add a command by writing its file and listing it here
 * (name as typed, and a loader of its exported Command).
 * @module
 */
import type { Command } from "./command.ts";
import { lazyImport } from "../sys/lazy.ts";
import { startMountEarly } from "./mount_early.ts";

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
  /**
   * Called with the command's arguments before its module and the store load: starts work that
   * needs neither (`hd mount` starts its server process), so both load side by side.
   */
  early?: (rest: string[]) => void;
}

/** All commands, in the order `hd --help` lists them. */
export const COMMANDS: CommandEntry[] = [
  {
    name: "cas add",
    summary: "store files or directories; print the root hash",
    load: async () =>
      (await lazyImport<typeof import("./cas/add.ts")>(new URL("./cas/add.ts", import.meta.url)))
        .casAdd,
  },
  {
    name: "cas checkout",
    summary: "write a stored tree into a new directory",
    load: async () =>
      (await lazyImport<typeof import("./cas/checkout.ts")>(
        new URL("./cas/checkout.ts", import.meta.url),
      ))
        .casCheckout,
  },
  {
    name: "cas cat",
    summary: "print a stored file, chunk, directory listing or node",
    load: async () =>
      (await lazyImport<typeof import("./cas/cat.ts")>(new URL("./cas/cat.ts", import.meta.url)))
        .casCat,
  },
  {
    name: "cas stats",
    summary: "show how many objects, manifests and refs the store holds",
    load: async () =>
      (await lazyImport<typeof import("./cas/stats.ts")>(
        new URL("./cas/stats.ts", import.meta.url),
      ))
        .casStats,
  },
  {
    name: "cas gc",
    summary: "delete objects no ref reaches (--dry-run to only report)",
    load: async () =>
      (await lazyImport<typeof import("./cas/gc.ts")>(new URL("./cas/gc.ts", import.meta.url)))
        .casGc,
  },
  {
    name: "cas verify",
    summary:
      "re-read and re-hash every object; report (--repair: re-supply) missing or corrupt ones",
    load: async () =>
      (await lazyImport<typeof import("./cas/verify.ts")>(
        new URL("./cas/verify.ts", import.meta.url),
      ))
        .casVerify,
  },
  {
    name: "pull",
    summary: "pull an OCI image into the store; print its digest and rootfs hash",
    load: async () =>
      (await lazyImport<typeof import("./pull.ts")>(new URL("./pull.ts", import.meta.url)))
        .pull,
  },
  {
    name: "cache push",
    summary: "upload the current environment's step results to the remote cache",
    load: async () =>
      (await lazyImport<typeof import("./cache.ts")>(new URL("./cache.ts", import.meta.url)))
        .cachePush,
  },
  {
    name: "cache ls",
    summary: "list the step results the remote cache holds (this environment's marked)",
    load: async () =>
      (await lazyImport<typeof import("./cache.ts")>(new URL("./cache.ts", import.meta.url)))
        .cacheLs,
  },
  {
    name: "cache pull",
    summary: "download the current environment's step results from the remote cache",
    load: async () =>
      (await lazyImport<typeof import("./cache.ts")>(new URL("./cache.ts", import.meta.url)))
        .cachePull,
  },
  {
    name: "export",
    summary: "export the environment as an OCI image (a layout, a docker archive, or a push)",
    load: async () =>
      (await lazyImport<typeof import("./export.ts")>(new URL("./export.ts", import.meta.url)))
        .exportCmd,
  },
  {
    name: "images",
    summary: "list pulled images",
    load: async () =>
      (await lazyImport<typeof import("./images.ts")>(new URL("./images.ts", import.meta.url)))
        .images,
  },
  {
    name: "images rm",
    summary: "forget pulled images (then `hd cas gc` frees what nothing else uses)",
    load: async () =>
      (await lazyImport<typeof import("./images_rm.ts")>(
        new URL("./images_rm.ts", import.meta.url),
      ))
        .imagesRm,
  },
  {
    name: "up",
    summary: "build the environment, start its services, and watch for changes",
    load: async () =>
      (await lazyImport<typeof import("./up.ts")>(new URL("./up.ts", import.meta.url)))
        .up,
  },
  {
    name: "down",
    summary: "stop the services of `hd up` (reverse dependency order)",
    load: async () =>
      (await lazyImport<typeof import("./down.ts")>(new URL("./down.ts", import.meta.url)))
        .down,
  },
  {
    name: "logs",
    summary: "show (and follow) the output of services, interleaved in time order",
    load: async () =>
      (await lazyImport<typeof import("./logs.ts")>(new URL("./logs.ts", import.meta.url)))
        .logs,
  },
  {
    name: "restart",
    summary: "restart a service (and its dependents) of the running environment",
    load: async () =>
      (await lazyImport<typeof import("./restart.ts")>(new URL("./restart.ts", import.meta.url)))
        .restart,
  },
  {
    name: "start",
    summary: "start services (and what they depend on) of the running environment",
    load: async () =>
      (await lazyImport<typeof import("./service_ctl.ts")>(
        new URL("./service_ctl.ts", import.meta.url),
      ))
        .start,
  },
  {
    name: "stop",
    summary: "stop services of the running environment (until `hd start`)",
    load: async () =>
      (await lazyImport<typeof import("./service_ctl.ts")>(
        new URL("./service_ctl.ts", import.meta.url),
      ))
        .stop,
  },
  {
    name: "ps",
    summary: "the services of the running environment: state, pid, restarts, port, health",
    load: async () =>
      (await lazyImport<typeof import("./service_ctl.ts")>(
        new URL("./service_ctl.ts", import.meta.url),
      ))
        .ps,
  },
  {
    name: "exec",
    summary: "run a command in the environment (its variables and working directory)",
    load: async () =>
      (await lazyImport<typeof import("./exec.ts")>(new URL("./exec.ts", import.meta.url)))
        .exec,
    passThrough: true,
  },
  {
    name: "shell",
    summary: "open a shell (or run a command) inside the environment's sandbox",
    load: async () =>
      (await lazyImport<typeof import("./shell.ts")>(new URL("./shell.ts", import.meta.url)))
        .shell,
    passThrough: true,
  },
  {
    name: "ingest",
    summary: "translate a Dockerfile or compose file into hd.toml",
    load: async () =>
      (await lazyImport<typeof import("./ingest.ts")>(new URL("./ingest.ts", import.meta.url)))
        .ingestCmd,
  },
  {
    name: "init",
    summary: "write a commented starter hd.toml",
    load: async () =>
      (await lazyImport<typeof import("./init.ts")>(new URL("./init.ts", import.meta.url)))
        .init,
  },
  {
    name: "lock",
    summary: "resolve dependencies and write hd.lock",
    load: async () =>
      (await lazyImport<typeof import("./lock.ts")>(new URL("./lock.ts", import.meta.url)))
        .lock,
  },
  {
    name: "status",
    summary: "show the environment: hashes, files, build steps, services, mounts",
    load: async () =>
      (await lazyImport<typeof import("./status.ts")>(new URL("./status.ts", import.meta.url)))
        .status,
  },
  {
    name: "dag show",
    summary: "print a DAG (default: the project's Env) as a tree",
    load: async () =>
      (await lazyImport<typeof import("./dag/show.ts")>(new URL("./dag/show.ts", import.meta.url)))
        .dagShow,
  },
  {
    name: "dag diff",
    summary: "list paths added, removed and changed between two trees",
    load: async () =>
      (await lazyImport<typeof import("./dag/diff.ts")>(new URL("./dag/diff.ts", import.meta.url)))
        .dagDiff,
  },
  {
    name: "mount",
    summary: "project a stored tree on a directory (FUSE, lazy from the store)",
    load: async () =>
      (await lazyImport<typeof import("./mount.ts")>(new URL("./mount.ts", import.meta.url)))
        .mount,
    early: startMountEarly,
  },
  {
    name: "unmount",
    summary: "unmount a directory mounted with `hd mount`",
    load: async () =>
      (await lazyImport<typeof import("./unmount.ts")>(new URL("./unmount.ts", import.meta.url)))
        .unmount,
  },
  {
    name: "snapshot",
    summary: "store the view of a writable mount; print its root",
    load: async () =>
      (await lazyImport<typeof import("./snapshot.ts")>(new URL("./snapshot.ts", import.meta.url)))
        .snapshot,
  },
  {
    name: "completions",
    summary: "print a shell completion script (bash, zsh or fish)",
    load: async () =>
      (await lazyImport<typeof import("./completions.ts")>(
        new URL("./completions.ts", import.meta.url),
      ))
        .completions,
  },
];

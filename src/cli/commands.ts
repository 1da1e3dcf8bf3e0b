/**
 * Every command of the `hd` CLI, loaded on demand: `hd status` does not pay for compiling the
 * modules of `hd pull` or `hd mount`. Add a command by writing its file and listing it here
 * (name as typed, and a loader of its exported Command).
 * @module
 */
import type { Command } from "./command.ts";
import { startMountEarly } from "./mount_early.ts";

/** A command known by name; its module loads only when it runs (or for `hd --help`). */
export interface CommandEntry {
  /** Full name, words separated by spaces ("cas add"). */
  name: string;
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
  { name: "cas add", load: async () => (await import("./cas/add.ts")).casAdd },
  { name: "cas checkout", load: async () => (await import("./cas/checkout.ts")).casCheckout },
  { name: "cas cat", load: async () => (await import("./cas/cat.ts")).casCat },
  { name: "cas stats", load: async () => (await import("./cas/stats.ts")).casStats },
  { name: "cas gc", load: async () => (await import("./cas/gc.ts")).casGc },
  { name: "cas verify", load: async () => (await import("./cas/verify.ts")).casVerify },
  { name: "pull", load: async () => (await import("./pull.ts")).pull },
  { name: "cache push", load: async () => (await import("./cache.ts")).cachePush },
  { name: "cache ls", load: async () => (await import("./cache.ts")).cacheLs },
  { name: "cache pull", load: async () => (await import("./cache.ts")).cachePull },
  { name: "export", load: async () => (await import("./export.ts")).exportCmd },
  { name: "images", load: async () => (await import("./images.ts")).images },
  { name: "images rm", load: async () => (await import("./images_rm.ts")).imagesRm },
  { name: "up", load: async () => (await import("./up.ts")).up },
  { name: "down", load: async () => (await import("./down.ts")).down },
  { name: "logs", load: async () => (await import("./logs.ts")).logs },
  { name: "restart", load: async () => (await import("./restart.ts")).restart },
  { name: "start", load: async () => (await import("./service_ctl.ts")).start },
  { name: "stop", load: async () => (await import("./service_ctl.ts")).stop },
  { name: "ps", load: async () => (await import("./service_ctl.ts")).ps },
  { name: "exec", load: async () => (await import("./exec.ts")).exec, passThrough: true },
  { name: "shell", load: async () => (await import("./shell.ts")).shell, passThrough: true },
  { name: "ingest", load: async () => (await import("./ingest.ts")).ingestCmd },
  { name: "init", load: async () => (await import("./init.ts")).init },
  { name: "lock", load: async () => (await import("./lock.ts")).lock },
  { name: "status", load: async () => (await import("./status.ts")).status },
  { name: "dag show", load: async () => (await import("./dag/show.ts")).dagShow },
  { name: "dag diff", load: async () => (await import("./dag/diff.ts")).dagDiff },
  {
    name: "mount",
    load: async () => (await import("./mount.ts")).mount,
    early: startMountEarly,
  },
  { name: "unmount", load: async () => (await import("./unmount.ts")).unmount },
  { name: "snapshot", load: async () => (await import("./snapshot.ts")).snapshot },
  { name: "completions", load: async () => (await import("./completions.ts")).completions },
];

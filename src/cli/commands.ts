/**
 * Every command of the `hd` CLI. Add a command by writing its file and listing it here.
 * @module
 */
import type { Command } from "./command.ts";
import { casAdd } from "./cas/add.ts";
import { casCat } from "./cas/cat.ts";
import { casCheckout } from "./cas/checkout.ts";
import { casGc } from "./cas/gc.ts";
import { casStats } from "./cas/stats.ts";
import { casVerify } from "./cas/verify.ts";
import { pull } from "./pull.ts";
import { images } from "./images.ts";
import { up } from "./up.ts";
import { down } from "./down.ts";
import { logs } from "./logs.ts";
import { restart } from "./restart.ts";
import { exec } from "./exec.ts";
import { init } from "./init.ts";
import { lock } from "./lock.ts";
import { status } from "./status.ts";
import { dagShow } from "./dag/show.ts";
import { dagDiff } from "./dag/diff.ts";
import { mount } from "./mount.ts";
import { unmount } from "./unmount.ts";
import { snapshot } from "./snapshot.ts";

/** All commands, in the order `hd --help` lists them. */
export const COMMANDS: Command[] = [
  casAdd,
  casCheckout,
  casCat,
  casStats,
  casGc,
  casVerify,
  pull,
  images,
  up,
  down,
  logs,
  restart,
  exec,
  init,
  lock,
  status,
  dagShow,
  dagDiff,
  mount,
  unmount,
  snapshot,
];

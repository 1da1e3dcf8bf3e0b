/**
 * A unix-socket listener that removes only its own socket file. Deno's listener unlinks the path
 * it was bound to when it closes, whatever is there by then: a server that stops after another
 * took its path over (a new server replacing a stale socket, a second spare supervisor) would
 * remove the newer one's socket and leave it unreachable. Here the socket is bound under a
 * temporary name beside `path` and renamed into place (which also replaces an old file there at
 * once, without a moment when the path is missing); Deno then unlinks only that temporary name,
 * long gone, and {@link UnixListen.unlinkIfOwn} removes `path` only while it is still this
 * socket's inode.
 *
 * @example
 * ```ts
 * import { listenUnix } from "./unix_listen.ts";
 * const l = listenUnix(`${Deno.makeTempDirSync()}/s.sock`);
 * l.listener.close();
 * l.unlinkIfOwn();
 * ```
 * @module
 */

/** A bound unix socket and what it needs to remove its own file later. */
export interface UnixListen {
  listener: Deno.Listener;
  /** The socket's path. */
  path: string;
  /** Removes `path` when it is still this socket (not another's that replaced it). */
  unlinkIfOwn(): void;
  /** True while `path` is still this socket. */
  owns(): boolean;
}

/**
 * Listens on the unix socket `path` (mode 0600: only its owner may connect), replacing any file
 * there. Throws what `Deno.listen` or the rename throws (the temporary socket is removed then).
 */
export function listenUnix(path: string): UnixListen {
  const cut = path.lastIndexOf("/");
  const dir = cut > 0 ? path.slice(0, cut) : cut === 0 ? "" : ".";
  for (let attempt = 0;; attempt++) {
    const tmp = `${dir}/.s-${Math.random().toString(36).slice(2, 8)}`;
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path: tmp });
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse && attempt < 8) continue; // a name taken: another
      throw e;
    }
    let ino: number | null;
    try {
      Deno.chmodSync(tmp, 0o600); // created under the umask
      ino = Deno.lstatSync(tmp).ino;
      Deno.renameSync(tmp, path);
    } catch (e) {
      try {
        listener.close(); // (unlinks tmp)
      } catch { /* closed */ }
      throw e;
    }
    const owns = () => {
      try {
        const st = Deno.lstatSync(path);
        return st.isSocket === true && st.ino === ino;
      } catch {
        return false;
      }
    };
    return {
      listener,
      path,
      owns,
      unlinkIfOwn() {
        if (!owns()) return;
        try {
          Deno.removeSync(path);
        } catch { /* gone */ }
      },
    };
  }
}

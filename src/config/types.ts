/**
 * The parsed, validated shape of hd.toml (an {@link EnvSpec}). Every other module reads this, never
 * the raw TOML. Positions point at the key in the source file for error messages.
 *
 * @example
 * ```ts
 * import type { EnvSpec } from "./types.ts";
 * function names(spec: EnvSpec) { return Object.keys(spec.services); }
 * ```
 * @module
 */

/** Where a key or value sits in hd.toml (1-based line and column). */
export interface Position {
  file: string;
  line: number;
  column: number;
}

/** One entry of [dependencies]: `provider = [...]`, `provider = "version"`, or `provider = { file }`. */
export type DependencySpec =
  | { provider: string; form: "list"; packages: string[]; at?: Position }
  | { provider: string; form: "version"; version: string; at?: Position }
  | { provider: string; form: "file"; file: string; at?: Position };

/** One build step. The string form chains (previous step + all tracked files); the table form
 * declares its inputs so that only they invalidate it. */
export interface BuildStepSpec {
  /** The shell command (run with `sh -c`). */
  run: string;
  /** Declared inputs (paths or globs relative to the project); null for the chained string form. */
  inputs: string[] | null;
  /** Declared outputs (paths relative to the project). */
  outputs: string[];
  /** Environment variables for this step. */
  env: Record<string, string>;
  /** `network = "none"` for a hermetic step; "host" by default. */
  network: "host" | "none";
  /** Index in [build].steps. */
  index: number;
  at?: Position;
  /**
   * `stage = "NAME"`: the build stage the step belongs to (a Dockerfile stage the environment
   * copies from). Steps of one stage run on its `image`, each on the layers of the stage's earlier
   * steps (chained, as Docker runs a stage's RUNs); none of them is part of the environment's root.
   */
  stage?: string;
  /** `image = "REF"`: the image a stage's steps run on (every step of the stage names it). */
  image?: string;
  /**
   * `copy = [{ from = "STAGE", src, dst }]` (COPY --from): the step runs nothing (its `run` is a
   * shell comment naming the copies, for listings); its layer is
   * `src` of each entry, read from the root stage `from` has at this point, placed at `dst`.
   */
  copy?: StepCopySpec[];
  /** `user`: who runs this step (as Dockerfile USER; absent: [environment].user, else root). */
  user?: string;
  /** `workdir`: where it runs (absolute, or relative to [environment].workdir; Dockerfile WORKDIR). */
  workdir?: string;
}

/** One entry of a step's `copy`: an absolute path of a stage's root copied to `dst`. */
export interface StepCopySpec {
  /** The stage (`stage` of earlier steps) whose resulting root is read. */
  from: string;
  /** Absolute, normalized path in that root (a file or a directory). */
  src: string;
  /** Absolute path in the step's layer; a trailing `/` puts a file inside that directory. */
  dst: string;
}

/** Restart policy of a service. */
export type RestartPolicy = "always" | "on_failure" | "never";

/** One [services.NAME] table. */
export interface ServiceSpec {
  name: string;
  /** The shell command (run with `sh -c`). */
  command: string;
  /** Globs (relative to the project) whose change restarts this service. */
  watch: string[];
  /** A TCP port the service listens on; readiness = one of its own processes holds a LISTEN socket on it. */
  port: number | null;
  /** Names of services that must be started (and ready) first. */
  depends_on: string[];
  restart_policy: RestartPolicy;
  /**
   * `reload = "warm"`: restart through a warm standby process that has loaded the unchanged modules
   * (src/services/warm.ts); absent or `"restart"`: a plain restart.
   */
  reload?: "warm" | "restart";
  /** Environment variables (on top of [environment].env). */
  env: Record<string, string>;
  /** Working directory relative to the project (default "."); absolute for an `image` service. */
  workdir: string;
  at?: Position;
  /** `healthcheck`: how hd checks that the service works (absent or null: no check). */
  healthcheck?: HealthcheckSpec | null;
  /**
   * Condition per dependency, from the table form of `depends_on`; a dependency without one (the
   * list form) gets the default: `healthy` when it has a healthcheck or a port, else `started`.
   */
  depends_conditions?: Record<string, DependsCondition>;
  /** `image = "REF"`: the service runs in its own sandbox on that image (absent: base or host). */
  image?: string;
  /** `command` in exec form (an array in hd.toml); absent for the string form (see `command`). */
  argv?: string[];
  /** `entrypoint` (a string becomes `/bin/sh -c STRING`); absent: the image's ENTRYPOINT. */
  entrypoint?: string[];
  /**
   * `user` as written: `name`, `uid`, `name:group`, `uid:gid`; absent: the image's USER (an image
   * service) or [environment].user (a service of the base).
   */
  user?: string;
  /** `volumes` then `tmpfs`, in order (absent: none). */
  volumes?: VolumeMount[];
  /** Names of `[secrets.NAME]` it receives (at /run/secrets/NAME in a sandbox). */
  secrets?: string[];
  /** Extra host names on the environment's network (besides the service's name). */
  aliases?: string[];
  /** Ports published on the host (`ports`). */
  ports?: PublishedPort[];
  /** Where port readiness connects (set by the sandbox runtime: the service's own address). */
  readyHost?: string;
  /** `profiles`: started only when one of them is active (`hd up --profile`); absent: always. */
  profiles?: string[];
  /** `labels`: free key/value metadata, kept and shown by `hd ps --json` / `hd status --json`. */
  labels?: Record<string, string>;
  /** `expose`: ports it serves besides `port` (documentation only: shown by `hd ps`). */
  expose?: number[];
  /** `stop_signal`: what stops it (SIGINT, SIGQUIT, …: see parse.ts stopSignalName); absent: SIGTERM. */
  stop_signal?: string;
  /** `restart_grace`: time between its stop signal and SIGKILL; absent: [options]. */
  restartGraceMs?: number;
  /** A replica of a `scale = N` service: the service's name as written and this one's number. */
  replicaOf?: { name: string; index: number; scale: number };
}

/** What a dependency must reach before a dependent starts (compose's `depends_on` conditions). */
export type DependsCondition = "started" | "healthy" | "completed_successfully";

/** The probe of a `healthcheck`. */
export type HealthProbe =
  | { kind: "cmd"; argv: string[] } // ["CMD", …]: exec form
  | { kind: "shell"; script: string } // ["CMD-SHELL", "…"] or a string: sh -c
  | { kind: "http"; url: string } // GET; 2xx/3xx is healthy
  | { kind: "tcp"; port: number }; // one of the service's processes listens on the port

/** A service's `healthcheck` (compose semantics; durations in ms). */
export interface HealthcheckSpec {
  probe: HealthProbe;
  /** Time between checks once the service has been healthy (default 30 s). */
  intervalMs: number;
  /** A check taking longer fails (default 30 s). */
  timeoutMs: number;
  /** Consecutive failures that make the service unhealthy (default 3). */
  retries: number;
  /** Failures within this time of the start do not count (default 0). */
  startPeriodMs: number;
  at?: Position;
}

/** A `[secrets.NAME]`: a project file, or a variable read when the service starts. */
export interface SecretSpec {
  name: string;
  /** Path relative to the project. */
  file?: string;
  /** Name of the variable (process environment, then the project's .env). */
  environment?: string;
}

/**
 * One mount of a service: a named volume (`source` its name; "" for an anonymous one, which
 * mounts nothing: the path stays in the container's own files), a bind of a project path
 * (`source` relative to the project, "." for the project), or a tmpfs.
 */
export interface VolumeMount {
  type: "volume" | "bind" | "tmpfs";
  source: string;
  /** Absolute, normalized path inside the container. */
  target: string;
  read_only: boolean;
  /** `:nocopy`: a new named volume is not seeded from the image. */
  nocopy?: boolean;
}

/** The whole hd.toml. */
export interface EnvSpec {
  /** Absolute path of hd.toml. */
  file: string;
  /** Absolute path of the project directory (where hd.toml sits). */
  dir: string;
  environment: {
    name: string;
    /** Base OCI image reference, or null to run on the host. */
    base: string | null;
    /** Environment variables for every step, service and `hd exec`. */
    env: Record<string, string>;
    /** Working directory inside the environment (default: the project dir on the host, /app in a sandbox). */
    workdir: string | null;
    /** `ca_certs = true`: the host's CA certificates in the sandbox (as `HD_HOST_CA=1`). */
    caCerts?: boolean;
    /** `user`: default user of the steps and services of the base (absent: root). */
    user?: string;
  };
  dependencies: DependencySpec[];
  build: {
    steps: BuildStepSpec[];
    /** Cache directories that persist across runs outside the layers (e.g. ~/.npm). */
    cache: string[];
    /** `shell`: the argv prefix that runs each step's command (Dockerfile SHELL); absent: sh -c. */
    shell?: string[];
  };
  /** Services in declaration order. */
  services: Record<string, ServiceSpec>;
  files: { include: string[]; exclude: string[] };
  options: {
    /** Time between SIGTERM and SIGKILL when stopping a service. */
    restartGraceMs: number;
    /** Quiet period before a burst of file changes is processed. */
    debounceMs: number;
    /**
     * `jobs`: at most this many independent build steps run at once (absent: one per core; see
     * `stepJobs` in src/services/plan.ts).
     */
    jobs?: number;
    /**
     * `layers`: how image and step layers reach the environment's overlay — served lazily by a
     * FUSE projection, or copied out of the store (absent: materialized; `HD_LAYERS` wins).
     */
    layers?: "lazy" | "materialized";
  };
  /** `[remote]`: the shared build cache (`REGISTRY/REPO` or `s3://BUCKET/PREFIX`), if any. */
  remote?: { cache: string | null };
  /** Names of the top-level `[volumes.NAME]` tables (absent: none declared). */
  volumes?: string[];
  /** The top-level `[secrets.NAME]` tables (absent: none). */
  secrets?: Record<string, SecretSpec>;
  /** Project files hd.toml's values were read from: `.env` and every `env_file` (relative). */
  configFiles?: string[];
}

/** One `ports` entry: `host_ip:published:target/tcp` (compose's short or long syntax). */
export interface PublishedPort {
  /** Host address to listen on (default 127.0.0.1). */
  hostIp: string;
  /** Host port; 0 = any free port (compose's `"3000"`). */
  published: number;
  /** The service's own port. */
  target: number;
  at?: Position;
}

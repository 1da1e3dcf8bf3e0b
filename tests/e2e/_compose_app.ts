/**
 * The three-service app of the compose proof (tests/e2e/compose_app_test.ts) and bench
 * (bench/compose.ts): `web` (node) asks `api` (node) which asks `redis` (redis-server, its data in
 * a named volume, append-only), all on the Debian image of COMPOSE_PACKAGES; `migrate` is a
 * one-shot init service writing a key into redis before `api` starts. `web` and `api` both listen
 * on 3000 inside their own namespaces; only `web` is published. Written both as hd.toml and as a
 * compose file with a Dockerfile (for podman-compose), so both run the same app.
 * @module
 */

/** Options of {@link writeComposeApp}. */
export interface ComposeAppOptions {
  /** The Debian + node + redis image reference (a registry on 127.0.0.1). */
  ref: string;
  /** The host port `web` is published on (127.0.0.1). */
  hostPort: number;
  /** The hd environment's name (and the compose project's). */
  name: string;
}

const dep = { banner: "file:vendor/banner" };

/** package-lock.json with root version `version` (what `npm ci` copies to its hidden lockfile). */
export function lockfile(name: string, version: string): string {
  return JSON.stringify(
    {
      name,
      version,
      lockfileVersion: 3,
      requires: true,
      packages: {
        "": { name, version, dependencies: dep },
        "node_modules/banner": { resolved: "vendor/banner", link: true },
        "vendor/banner": { version: "1.0.0", license: "MIT" },
      },
    },
    null,
    2,
  ) + "\n";
}

/** `web`'s answer: its message, the installed lockfile's version, then api's answer. */
const WEB = `const http = require("http");
const fs = require("fs");
const message = require("./message.js");
const lock = () => {
  try {
    return JSON.parse(fs.readFileSync(__dirname + "/../node_modules/.package-lock.json", "utf8")).version;
  } catch (e) {
    return "none";
  }
};
http.createServer((q, s) => {
  const api = { host: process.env.API_HOST || "api", port: Number(process.env.API_PORT || 3000) };
  http.get({ ...api, path: q.url }, (r) => {
    let b = "";
    r.on("data", (d) => (b += d));
    r.on("end", () => {
      s.writeHead(r.statusCode, { "content-type": "text/plain" });
      s.end("web " + message + " lock=" + lock() + " | " + b);
    });
  }).on("error", (e) => {
    s.writeHead(502);
    s.end("web: api unreachable: " + e.message + "\\n");
  });
}).listen(Number(process.env.PORT || 3000), "0.0.0.0", () => console.log("web listening"));
`;

/**
 * `api`: a few redis commands over RESP (no npm package): GET /seed reads migrate's key, /boot
 * what it held when api started, /set/K/V and /get/K write and read keys; API_CRASH=1 makes it
 * exit 1 at start.
 */
const API = `const http = require("http");
const net = require("net");
const os = require("os");
if (process.env.API_CRASH === "1") {
  console.error("api: crashing on purpose (API_CRASH=1)");
  process.exit(1);
}
function redis(...args) {
  return new Promise((resolve, reject) => {
    const c = net.connect(6379, "redis");
    let buf = "";
    c.on("error", reject);
    c.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\\r\\n");
      if (nl < 0) return;
      const head = buf.slice(0, nl);
      if (head[0] === "$") {
        const n = Number(head.slice(1));
        if (n < 0) { c.end(); return resolve(null); }
        if (buf.length < nl + 2 + n + 2) return;
        c.end();
        return resolve(buf.slice(nl + 2, nl + 2 + n));
      }
      c.end();
      if (head[0] === "-") return reject(new Error(head.slice(1)));
      resolve(head.slice(1));
    });
    c.write("*" + args.length + "\\r\\n" + args.map((a) => "$" + Buffer.byteLength(a) + "\\r\\n" + a + "\\r\\n").join(""));
  });
}
// what redis held when api started: migrate's key, when migrate ran first
const boot = redis("GET", "seeded").catch((e) => "error " + e.message);
http.createServer(async (q, s) => {
  try {
    const p = q.url.split("/").filter(Boolean).map(decodeURIComponent);
    let out;
    if (p[0] === "set") out = await redis("SET", p[1], p[2]);
    else if (p[0] === "get") out = await redis("GET", p[1]);
    else if (p[0] === "seed") out = await redis("GET", "seeded");
    else if (p[0] === "boot") out = "seed at start " + (await boot);
    else out = "on " + os.hostname();
    s.end("api " + out + "\\n");
  } catch (e) {
    s.writeHead(500);
    s.end("api: redis failed: " + e.message + "\\n");
  }
}).listen(Number(process.env.PORT || 3000), "0.0.0.0", () => console.log("api listening"));
`;

const REDIS_ARGS = [
  "redis-server",
  "--appendonly",
  "yes",
  "--dir",
  "/data",
  "--protected-mode",
  "no",
];

/** The hd.toml of the app (`API_CRASH` interpolated: `API_CRASH=1 hd up` crashes `api`). */
export function composeHdToml(o: ComposeAppOptions): string {
  return `[environment]
name = "${o.name}"
base = "${o.ref}"
env = { NODE_ENV = "development" }

[build]
steps = [
  { run = "npm ci", inputs = ["package.json", "package-lock.json", ".npmrc", "vendor"], outputs = ["node_modules"] },
]
cache = ["~/.npm"]

[services.redis]
image = "${o.ref}"
command = ${JSON.stringify(REDIS_ARGS)}
volumes = ["redisdata:/data"]
healthcheck = { test = ["CMD", "redis-cli", "ping"], interval = "1s", retries = 30 }

[services.migrate]
command = "redis-cli -h redis set seeded by-migrate"
restart_policy = "never"
depends_on = { redis = "healthy" }

[services.api]
command = "node api/server.js"
watch = ["api/**"]
depends_on = { redis = "healthy", migrate = "completed_successfully" }
healthcheck = { tcp = 3000, interval = "1s" }
env = { API_CRASH = "\${API_CRASH:-0}" }

[services.web]
command = "node web/server.js"
watch = ["web/**"]
port = 3000
ports = ["127.0.0.1:${o.hostPort}:3000"]
depends_on = ["api"]

[volumes.redisdata]

[options]
restart_grace = "1s"
debounce = "10ms"
`;
}

/**
 * The same app for compose: one image built from the Dockerfile (npm ci in a layer keyed by the
 * package files, then the sources) runs web, api and migrate; redis runs on the base image.
 */
export function composeYaml(o: ComposeAppOptions): string {
  return `services:
  redis:
    image: ${o.ref}
    command: ${JSON.stringify(REDIS_ARGS)}
    volumes: ["redisdata:/data"]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      retries: 30
  migrate:
    build: .
    image: localhost/${o.name}-app:latest
    command: ["sh", "-c", "redis-cli -h redis set seeded by-migrate"]
    restart: "no"
    depends_on: { redis: { condition: service_healthy } }
  api:
    image: localhost/${o.name}-app:latest
    command: ["node", "api/server.js"]
    depends_on:
      redis: { condition: service_healthy }
      migrate: { condition: service_completed_successfully }
  web:
    image: localhost/${o.name}-app:latest
    command: ["node", "web/server.js"]
    ports: ["127.0.0.1:${o.hostPort}:3000"]
    depends_on: [api]
volumes:
  redisdata: {}
`;
}

/**
 * The same web and api in host mode (no base, no redis: `/` does not reach it), for the edit →
 * answer baseline: on the host the two share one network, so they take two ports.
 */
export function hostHdToml(name: string, webPort: number, apiPort: number): string {
  return `[environment]
name = "${name}"

[build]
steps = [
  { run = "npm ci", inputs = ["package.json", "package-lock.json", ".npmrc", "vendor"], outputs = ["node_modules"] },
]

[services.api]
command = "node api/server.js"
watch = ["api/**"]
port = ${apiPort}
env = { PORT = "${apiPort}" }

[services.web]
command = "node web/server.js"
watch = ["web/**"]
port = ${webPort}
depends_on = ["api"]
env = { PORT = "${webPort}", API_HOST = "127.0.0.1", API_PORT = "${apiPort}" }

[options]
restart_grace = "1s"
debounce = "10ms"
`;
}

/** Writes the app (sources, package files, hd.toml, compose.yaml, Dockerfile) into `dir`. */
export function writeComposeApp(dir: string, o: ComposeAppOptions): void {
  for (const d of ["web", "api", "vendor/banner"]) {
    Deno.mkdirSync(`${dir}/${d}`, { recursive: true });
  }
  const w = (f: string, s: string) => Deno.writeTextFileSync(`${dir}/${f}`, s);
  w(
    "package.json",
    JSON.stringify({ name: o.name, version: "1.0.0", private: true, dependencies: dep }, null, 2) +
      "\n",
  );
  w("package-lock.json", lockfile(o.name, "1.0.0"));
  w(".npmrc", "offline=true\naudit=false\nfund=false\nupdate-notifier=false\n");
  w(
    "vendor/banner/package.json",
    JSON.stringify({ name: "banner", version: "1.0.0", main: "index.js", license: "MIT" }) + "\n",
  );
  w("vendor/banner/index.js", 'module.exports = (s) => "** " + s + " **";\n');
  w("web/message.js", 'module.exports = "v0";\n');
  w("web/server.js", WEB);
  w("api/server.js", API);
  w("hd.toml", composeHdToml(o));
  w("compose.yaml", composeYaml(o));
  w(
    "Dockerfile",
    `FROM ${o.ref}\nWORKDIR /app\nCOPY package.json package-lock.json .npmrc ./\n` +
      `COPY vendor vendor\nRUN npm ci\nCOPY api api\nCOPY web web\nENV NODE_ENV=development\n`,
  );
  w(".dockerignore", "node_modules\n.hd\n*.log\n");
}

// Express (Debian's node-express, found on Node's global path /usr/share/nodejs) serving the
// message and the built page.
const express = require("express");
const banner = require("banner");
const path = require("path");
const message = require("./message");
const os = require("os");
const { version } = require("../package.json");

const app = express();
app.get("/", (_req, res) => res.type("text/plain").send(banner(message) + "\n"));
app.get(
  "/whoami",
  (_req, res) =>
    res.json({
      hostname: os.hostname(),
      pid: process.pid,
      cwd: process.cwd(),
      node: process.version,
    }),
);
app.get("/version", (_req, res) => res.type("text/plain").send(version + "\n"));
app.use("/static", express.static(path.join(__dirname, "..", "dist")));
const port = Number(process.env.PORT ?? 3000);
app.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));

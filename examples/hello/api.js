// The API service: answers GET /api with JSON. Port from $API_PORT (default 3001).
const http = require("node:http");
const { message } = require("./src/message.js");
const port = Number(process.env.API_PORT || 3001);
http
  .createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ message, path: req.url }) + "\n");
  })
  .listen(port, "127.0.0.1", () => console.log(`api listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));

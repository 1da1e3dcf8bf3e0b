// The web service: plain Node.js, no npm install needed. It asks the API service and answers
// GET / with a line of text. Ports from $PORT (default 3000) and $API_PORT (default 3001).
const http = require("node:http");
const port = Number(process.env.PORT || 3000);
const apiPort = Number(process.env.API_PORT || 3001);

function askApi() {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port: apiPort, path: "/api" }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => {
          try {
            resolve(JSON.parse(body).message);
          } catch {
            resolve("(api sent no JSON)");
          }
        });
      })
      .on("error", () => resolve("(api not reachable)"));
  });
}

http
  .createServer(async (req, res) => {
    if (req.url === "/health") {
      res.writeHead(200);
      return res.end("ok\n");
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`web: ${await askApi()}\n`);
  })
  .listen(port, "127.0.0.1", () => console.log(`web listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));

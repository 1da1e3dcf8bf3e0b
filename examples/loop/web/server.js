// The web service: GET / asks the api and answers one line of text. Port from $WEB_PORT.
const http = require("node:http");
const { render } = require("./page.js");
const port = Number(process.env.WEB_PORT || 18082);
const apiPort = Number(process.env.API_PORT || 18081);

function askApi() {
  return new Promise((resolve) => {
    http
      .get({ host: "127.0.0.1", port: apiPort, path: "/" }, (res) => {
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
  .createServer(async (_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(render(await askApi()) + "\n");
  })
  .listen(
    port,
    "127.0.0.1",
    () => console.log(`web listening on 127.0.0.1:${port}`),
  );
process.on("SIGTERM", () => process.exit(0));

// The api service: GET / answers {"message": …} as JSON. Port from $API_PORT.
const http = require("node:http");
const { message } = require("./message.js");
const greet = require("greet");
const port = Number(process.env.API_PORT || 18081);
http
  .createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        message,
        greeting: greet(process.env.GREETING || "hi"),
      }) + "\n",
    );
  })
  .listen(
    port,
    "127.0.0.1",
    () => console.log(`api listening on 127.0.0.1:${port}`),
  );
process.on("SIGTERM", () => process.exit(0));

// The chained build step: writes dist/info.json from the sources, using the `greet` package that
// the `npm ci` step installed (a local link, so no network is needed).
const fs = require("node:fs");
const greet = require("greet");
const { message } = require("./src/message.js");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/info.json", JSON.stringify({ message, greeting: greet("hd") }) + "\n");
console.log("wrote dist/info.json");

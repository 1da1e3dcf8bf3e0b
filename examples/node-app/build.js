// The build step: renders public/*.html into dist/ with a build stamp.
const fs = require("fs");
const path = require("path");
fs.mkdirSync(path.join(__dirname, "dist"), { recursive: true });
for (const f of fs.readdirSync(path.join(__dirname, "public"))) {
  const src = fs.readFileSync(path.join(__dirname, "public", f), "utf8");
  fs.writeFileSync(
    path.join(__dirname, "dist", f),
    src.replace("{{built}}", new Date().toISOString()),
  );
}
console.log("built", fs.readdirSync(path.join(__dirname, "dist")).join(", "));

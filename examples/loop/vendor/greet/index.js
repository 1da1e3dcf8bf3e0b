// A local package, installed by `npm ci` as a link (no network needed).
module.exports = (name) => `hello, ${name}`;

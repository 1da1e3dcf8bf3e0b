// A tiny local dependency: installed by `npm ci` as a link, no network needed.
module.exports = function greet(name) {
  return `hello, ${name}`;
};

// A vendored dependency, so `npm ci --offline` has something to install without a registry.
module.exports = (text) => `** ${text} **`;

// Edited often: changing this file rebuilds the chained build step and restarts the services,
// but does not invalidate `npm ci` (its inputs are only package.json and package-lock.json).
module.exports = { message: "hello from hd" };

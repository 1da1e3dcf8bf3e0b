// Edit me while `hd up` runs: api restarts, then web (it depends on api); nothing else re-runs.
module.exports = { message: "hello from api" };

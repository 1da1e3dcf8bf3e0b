// Edit me while `hd up` runs: only web restarts.
module.exports = { render: (apiMessage) => `web v1 | api says: ${apiMessage}` };

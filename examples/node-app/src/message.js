module.exports = "hello from the sandbox";

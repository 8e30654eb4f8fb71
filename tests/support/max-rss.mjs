// Preloaded with `node --import` into a CLI run: prints the process's peak resident memory (bytes)
// to stderr at exit, as "max-rss N", so a test can check that a command's memory stays bounded.
process.on('exit', () => process.stderr.write(`max-rss ${process.resourceUsage().maxRSS * 1024}\n`));

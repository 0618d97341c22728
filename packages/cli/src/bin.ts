#!/usr/bin/env node
import { runCli } from './cli.js';

/**
 * Time left for open handles to close after a command has finished, in milliseconds. Every
 * command closes what it opens; this bounds the wait if a library keeps a socket open.
 */
const EXIT_GRACE_MS = 5_000;

const exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});
process.exitCode = exitCode;
setTimeout(() => process.exit(exitCode), EXIT_GRACE_MS).unref();

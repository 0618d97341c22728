export { type CommandSpec, type OptionSpec, parseCommandArgs } from './args.js';
export { COMMANDS, runCli } from './cli.js';
export type { Command } from './commands/command.js';
export type { TokenStatusRow } from './commands/status.js';
export type { DemoWorkerResult } from './demo-protocol.js';
export { type DemoOptions, type DemoSummary, runDemo } from './demo-run.js';
export {
  CliError,
  type CliErrorCode,
  CommandFailedError,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  RedisNotFoundError,
  UsageError,
} from './errors.js';
export type { CliIo } from './output.js';
export {
  type LaunchedRedis,
  type LaunchRedisOptions,
  launchRedis,
  type RedisSource,
} from './redis-launcher.js';

/** Exit code of a run that succeeded. */
export const EXIT_OK = 0;

/** Exit code of a runtime failure: Redis unreachable, token request rejected, demo check failed. */
export const EXIT_FAILURE = 1;

/** Exit code of a usage error: unknown command or option, missing flag or variable. */
export const EXIT_USAGE = 2;

/** Stable codes of the errors that the `tokenfleet` command raises itself. */
export type CliErrorCode =
  | 'TOKENFLEET_CLI_USAGE'
  | 'TOKENFLEET_CLI_REDIS_UNAVAILABLE'
  | 'TOKENFLEET_CLI_FAILED';

/**
 * Base class of the command's own errors. The message is one line and safe to print, because it
 * never contains a secret or a token.
 */
export class CliError extends Error {
  readonly code: CliErrorCode;
  readonly exitCode: number;

  constructor(
    code: CliErrorCode,
    message: string,
    exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** The command line is wrong: the run exits with {@link EXIT_USAGE}. */
export class UsageError extends CliError {
  constructor(message: string) {
    super('TOKENFLEET_CLI_USAGE', message, EXIT_USAGE);
  }
}

/** No Redis server could be found or started for the demo. */
export class RedisNotFoundError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENFLEET_CLI_REDIS_UNAVAILABLE', message, EXIT_FAILURE, options);
  }
}

/** A runtime step failed: the run exits with {@link EXIT_FAILURE}. */
export class CommandFailedError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENFLEET_CLI_FAILED', message, EXIT_FAILURE, options);
  }
}

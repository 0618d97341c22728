import type { OptionSpec, ParsedOptions } from '../args.js';
import {
  logLevelOption,
  PROVIDER_OPTIONS,
  REDIS_OPTIONS,
  resolveLogLevel,
  resolveProviderConfig,
  resolveRedisConfig,
} from '../config.js';
import { createCliLogger } from '../logging.js';
import type { CliIo } from '../output.js';
import { openTokenSession, type TokenSession, type TokenSessionOptions } from '../token-session.js';

/** Options of the commands that work on the token of one client: get, invalidate, refresh. */
export const TOKEN_COMMAND_OPTIONS: Record<string, OptionSpec> = {
  ...REDIS_OPTIONS,
  ...PROVIDER_OPTIONS,
  'no-renewal': {
    type: 'boolean',
    description: 'Add no renewal job to the queue after a refresh.',
  },
  'log-level': logLevelOption('silent', 'stderr'),
};

/**
 * Resolves the Redis, client and logging settings of a token command. Raises `UsageError` for a
 * missing or invalid one, before anything connects.
 */
export function resolveSessionOptions(values: ParsedOptions, io: CliIo): TokenSessionOptions {
  const redis = resolveRedisConfig(values, io.env);
  const provider = resolveProviderConfig(values, io.env);
  const logger = createCliLogger(resolveLogLevel(values, io.env, 'silent'), 2);
  return { redis, provider, renewal: values['no-renewal'] !== true, reconnect: false, logger };
}

/** Resolves every setting, then opens the token cache of the configured client. */
export async function openSessionFromOptions(
  values: ParsedOptions,
  io: CliIo,
): Promise<TokenSession> {
  return openTokenSession(resolveSessionOptions(values, io));
}

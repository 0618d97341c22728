import { parseArgs } from 'node:util';
import type { MockOAuthClient, MockOAuthServerOptions } from './options.js';

/** Help text of `tokenfleet-mock-oauth`. */
export const USAGE = `Usage: tokenfleet-mock-oauth [options]

Starts a Quiqup-compatible OAuth2 token endpoint (POST /oauth/token) and a protected resource
(/api/orders), prints the base URL on stdout and logs pino JSON on stderr.

Options (a flag overrides its environment variable):
  --port <n>            TCP port; 0 picks a free one (MOCK_OAUTH_PORT, default 0)
  --host <address>      address to listen on (MOCK_OAUTH_HOST, default 127.0.0.1)
  --preset <name>       token lifetime of production (604800 s) or staging (3600 s)
                        (MOCK_OAUTH_PRESET, default production)
  --expires-in <s>      token lifetime in seconds, fractions allowed; replaces the preset
                        (MOCK_OAUTH_EXPIRES_IN)
  --client <id:secret>  an accepted client; repeat for more (MOCK_OAUTH_CLIENTS, comma-separated,
                        default demo-client:demo-secret)
  --log-level <level>   pino level: trace, debug, info, warn, error, fatal, silent
                        (MOCK_OAUTH_LOG_LEVEL, default info)
  -h, --help            print this help
`;

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** Settings of one command run, after flags and environment are merged. */
export interface CliConfig {
  help: boolean;
  logLevel: string;
  serverOptions: Omit<MockOAuthServerOptions, 'logger'>;
}

/** A flag or environment variable with an invalid value; the command exits with status 2. */
export class CliUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliUsageError';
  }
}

/** Merges command-line flags over `MOCK_OAUTH_*` environment variables. */
export function parseCliConfig(argv: readonly string[], env: NodeJS.ProcessEnv): CliConfig {
  let values: ReturnType<typeof parseFlags>['values'];
  try {
    values = parseFlags(argv).values;
  } catch (error) {
    throw new CliUsageError((error as Error).message);
  }

  const serverOptions: CliConfig['serverOptions'] = {};

  const port = values.port ?? env.MOCK_OAUTH_PORT;
  if (port !== undefined) {
    serverOptions.port = parseNumber(
      port,
      '--port',
      (value) => Number.isInteger(value) && value >= 0 && value <= 65_535,
      'an integer from 0 to 65535',
    );
  }

  const host = values.host ?? env.MOCK_OAUTH_HOST;
  if (host !== undefined && host !== '') {
    serverOptions.host = host;
  }

  // Flags win as a pair: `--preset` on the command line replaces MOCK_OAUTH_EXPIRES_IN too.
  const flagLifetime = { preset: values.preset, expiresIn: values['expires-in'] };
  const envLifetime = { preset: env.MOCK_OAUTH_PRESET, expiresIn: env.MOCK_OAUTH_EXPIRES_IN };
  const lifetime =
    flagLifetime.preset !== undefined || flagLifetime.expiresIn !== undefined
      ? flagLifetime
      : envLifetime;
  if (lifetime.preset !== undefined && lifetime.expiresIn !== undefined) {
    throw new CliUsageError('--preset and --expires-in cannot be combined; pass one of them');
  }
  if (lifetime.preset !== undefined) {
    if (lifetime.preset !== 'production' && lifetime.preset !== 'staging') {
      throw new CliUsageError(
        `--preset must be "production" or "staging", received "${lifetime.preset}"`,
      );
    }
    serverOptions.preset = lifetime.preset;
  }
  if (lifetime.expiresIn !== undefined) {
    serverOptions.expiresIn = parseNumber(
      lifetime.expiresIn,
      '--expires-in',
      (value) => Number.isFinite(value) && value >= 0,
      'a number of seconds, 0 or more',
    );
  }

  const clientSpecs = values.client ?? splitList(env.MOCK_OAUTH_CLIENTS);
  if (clientSpecs.length > 0) {
    serverOptions.clients = clientSpecs.map((spec, index) => parseClient(spec, index));
  }

  const logLevel = values['log-level'] ?? env.MOCK_OAUTH_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) {
    throw new CliUsageError(
      `--log-level must be one of ${[...LOG_LEVELS].join(', ')}, received "${logLevel}"`,
    );
  }

  return { help: values.help === true, logLevel, serverOptions };
}

function parseFlags(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      preset: { type: 'string' },
      'expires-in': { type: 'string' },
      client: { type: 'string', multiple: true },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function parseNumber(
  text: string,
  flag: string,
  isValid: (value: number) => boolean,
  requirement: string,
): number {
  const value = text.trim() === '' ? Number.NaN : Number(text);
  if (!isValid(value)) {
    throw new CliUsageError(`${flag} must be ${requirement}, received "${text}"`);
  }
  return value;
}

function splitList(text: string | undefined): string[] {
  if (text === undefined) {
    return [];
  }
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Parses `id:secret`; the secret may contain colons, the id may not. */
function parseClient(spec: string, index: number): MockOAuthClient {
  const colon = spec.indexOf(':');
  if (colon <= 0) {
    // The entry may be a bare secret, so the message never shows it.
    throw new CliUsageError(
      `client ${index + 1} (--client or MOCK_OAUTH_CLIENTS) must be "id:secret" with a non-empty id`,
    );
  }
  return { clientId: spec.slice(0, colon), clientSecret: spec.slice(colon + 1) };
}

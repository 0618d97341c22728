import { type Logger, pino } from 'pino';

/**
 * Paths that pino replaces with `[redacted]`: the secret and token fields of the wire format and
 * the authorization header, at the top level and one level down.
 */
export const REDACT_PATHS = [
  'client_secret',
  'clientSecret',
  'access_token',
  'accessToken',
  'token',
  'authorization',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.accessToken',
  '*.token',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

/**
 * Creates the logger of one run. `destination` is a file descriptor (1 stdout, 2 stderr) or a
 * file path that lines are appended to; `silent` writes nothing.
 */
export function createCliLogger(level: string, destination: number | string): Logger {
  if (level === 'silent') {
    return pino({ level: 'silent' });
  }
  // Synchronous writes: a one-shot command exits right after its last line, and the demo's
  // processes append to one file, where each line must land whole.
  const stream = pino.destination({ dest: destination, sync: true, append: true, mkdir: true });
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    stream,
  );
}

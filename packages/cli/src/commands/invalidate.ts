import type { ParsedOptions } from '../args.js';
import { SECRET_NOTE } from '../config.js';
import { EXIT_OK, UsageError } from '../errors.js';
import { type CliIo, writeJson, writeLine } from '../output.js';
import { openTokenSession } from '../token-session.js';
import type { Command } from './command.js';
import { resolveSessionOptions, TOKEN_COMMAND_OPTIONS } from './token-options.js';

/**
 * Maximum size of the token read from stdin, in bytes. It is far above any bearer token and low
 * enough to stop a file piped in by mistake.
 */
const MAX_STDIN_BYTES = 64 * 1024;

/** `tokenfleet invalidate`: deletes the stored token if it is still the given one. */
export const invalidateCommand: Command = {
  spec: {
    name: 'invalidate',
    title: 'Delete the stored token if it is still the given one.',
    summary:
      'Deletes the stored token only while Redis still holds the given token, so a newer token ' +
      'that another pod stored is kept. Prints whether it was deleted; both outcomes exit 0.',
    usage: 'tokenfleet invalidate [--token TOKEN] [options] (or the token on stdin)',
    options: {
      token: {
        type: 'string',
        valueName: 'TOKEN',
        description: 'The token to invalidate. Default: read from stdin.',
      },
      json: {
        type: 'boolean',
        description: 'Print {"deleted":true|false} as one JSON line.',
      },
      ...TOKEN_COMMAND_OPTIONS,
    },
    notes: [
      'Prefer stdin, such as `tokenfleet get | tokenfleet invalidate`: a token passed with ' +
        '--token shows in the process list.',
      SECRET_NOTE,
    ],
  },

  async run(values, io) {
    const options = resolveSessionOptions(values, io);
    const token = await readToken(values, io);
    const session = await openTokenSession(options);
    try {
      const deleted = await session.cache.invalidate(token);
      if (values.json === true) {
        writeJson(io.stdout, { deleted });
      } else {
        writeLine(
          io.stdout,
          deleted ? 'deleted' : 'not deleted: Redis holds another token or none',
        );
      }
    } finally {
      await session.close();
    }
    return EXIT_OK;
  },
};

/** Takes the token from `--token`, else from stdin unless stdin is a terminal. */
async function readToken(values: ParsedOptions, io: CliIo): Promise<string> {
  if (typeof values.token === 'string') {
    return values.token;
  }
  if (io.stdin.isTTY) {
    throw new UsageError('missing token: pass --token or pipe the token on stdin');
  }

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) {
      throw new UsageError(`token on stdin exceeds ${MAX_STDIN_BYTES} bytes`);
    }
    chunks.push(buffer);
  }

  const token = Buffer.concat(chunks).toString('utf8').trim();
  if (token === '') {
    throw new UsageError('missing token: stdin was empty; pass --token or pipe the token on stdin');
  }
  if (/\s/.test(token)) {
    throw new UsageError(
      'invalid token on stdin: expected one token without spaces or line breaks',
    );
  }
  return token;
}

import { SECRET_NOTE } from '../config.js';
import { EXIT_OK } from '../errors.js';
import { formatDuration, writeJson, writeLine } from '../output.js';
import type { Command } from './command.js';
import { openSessionFromOptions, TOKEN_COMMAND_OPTIONS } from './token-options.js';

/** `tokenfleet refresh`: fetches a new token now; prints its generation and remaining life. */
export const refreshCommand: Command = {
  spec: {
    name: 'refresh',
    title: 'Fetch a new token now.',
    summary:
      'Fetches a new token now, under the fleet lock, and stores it for every pod. Prints the ' +
      'generation and remaining life; the token only with --print-token.',
    usage: 'tokenfleet refresh [options]',
    options: {
      json: {
        type: 'boolean',
        description: 'Print {"generation","remainingMs","source"} as one JSON line.',
      },
      'print-token': {
        type: 'boolean',
        description: 'Also print the new token: on a second line, or as "token" in the JSON.',
      },
      ...TOKEN_COMMAND_OPTIONS,
    },
    notes: [SECRET_NOTE],
  },

  async run(values, io) {
    const printToken = values['print-token'] === true;
    const session = await openSessionFromOptions(values, io);
    try {
      const info = await session.cache.refresh();
      if (values.json === true) {
        writeJson(io.stdout, {
          generation: info.generation,
          remainingMs: info.remainingMs,
          source: info.source,
          ...(printToken && { token: info.token }),
        });
      } else {
        writeLine(
          io.stdout,
          `refreshed: generation ${info.generation}, remaining ${formatDuration(info.remainingMs)}`,
        );
        if (printToken) {
          writeLine(io.stdout, info.token);
        }
      }
    } finally {
      await session.close();
    }
    return EXIT_OK;
  },
};

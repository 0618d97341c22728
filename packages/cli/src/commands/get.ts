import { SECRET_NOTE } from '../config.js';
import { EXIT_OK } from '../errors.js';
import { writeJson, writeLine } from '../output.js';
import type { Command } from './command.js';
import { openSessionFromOptions, TOKEN_COMMAND_OPTIONS } from './token-options.js';

/** `tokenfleet get`: prints a usable token, and nothing else, to stdout. */
export const getCommand: Command = {
  spec: {
    name: 'get',
    title: 'Print a usable token (for scripts).',
    summary:
      'Prints a usable access token to stdout, and nothing else, from Redis or, when Redis ' +
      'holds none, from the token endpoint under the fleet lock.',
    usage: 'tokenfleet get [options]',
    options: {
      json: {
        type: 'boolean',
        description: 'Print {"token","remainingMs","generation","source"} as one JSON line.',
      },
      ...TOKEN_COMMAND_OPTIONS,
    },
    notes: [SECRET_NOTE],
  },

  async run(values, io) {
    const session = await openSessionFromOptions(values, io);
    try {
      const info = await session.cache.getTokenInfo();
      if (values.json === true) {
        writeJson(io.stdout, {
          token: info.token,
          remainingMs: info.remainingMs,
          generation: info.generation,
          source: info.source,
        });
      } else {
        writeLine(io.stdout, info.token);
      }
    } finally {
      await session.close();
    }
    return EXIT_OK;
  },
};

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ENV } from '../src/config.js';
import { DEFAULT_REFRESHER_OPTIONS } from '../src/index.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const CONFIG_SOURCE = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');

/** Default column of the configuration table, by variable; cells are trimmed of table padding. */
const DEFAULTS_BY_VARIABLE = new Map(
  README.split('\n')
    .map((line) => line.split('|').map((cell) => cell.trim()))
    .filter((cells) => /^`[A-Z_]+`$/.test(cells[1] ?? ''))
    .map((cells) => [cells[1]!.slice(1, -1), cells[2]!] as const),
);

describe('README configuration table', () => {
  it.each([
    ['TOKENFLEET_REDIS_URL', DEFAULT_ENV.TOKENFLEET_REDIS_URL],
    ['TOKENFLEET_QUEUE', DEFAULT_REFRESHER_OPTIONS.queueName],
    ['TOKENFLEET_QUEUE_PREFIX', DEFAULT_REFRESHER_OPTIONS.prefix],
    ['TOKENFLEET_REFRESHER_PORT', String(DEFAULT_ENV.TOKENFLEET_REFRESHER_PORT)],
    ['TOKENFLEET_REFRESHER_HOST', DEFAULT_REFRESHER_OPTIONS.host],
    ['TOKENFLEET_SWEEP_INTERVAL_MS', String(DEFAULT_REFRESHER_OPTIONS.sweepIntervalMs)],
    ['TOKENFLEET_WORKER_CONCURRENCY', String(DEFAULT_REFRESHER_OPTIONS.concurrency)],
    ['TOKENFLEET_SHUTDOWN_TIMEOUT_MS', String(DEFAULT_REFRESHER_OPTIONS.shutdownTimeoutMs)],
    ['LOG_LEVEL', DEFAULT_ENV.LOG_LEVEL],
  ])('gives %s the default %s', (variable, value) => {
    expect(DEFAULTS_BY_VARIABLE.get(variable)).toBe(`\`${value}\``);
  });

  it('lists every variable that the service reads', () => {
    const variables = new Set(
      [...CONFIG_SOURCE.matchAll(/'((?:TOKENFLEET|QUIQUP)_[A-Z_]+|LOG_LEVEL)'/g)].map(
        (match) => match[1]!,
      ),
    );

    expect(variables.size).toBeGreaterThanOrEqual(17);
    for (const variable of variables) {
      expect(DEFAULTS_BY_VARIABLE.has(variable), variable).toBe(true);
    }
  });
});

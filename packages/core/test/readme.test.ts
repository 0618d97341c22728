import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TOKEN_CACHE_OPTIONS, defaultRefreshAheadMs } from '../src/index.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

/** Returns the default column of the configuration table's row for `option`. */
function documentedDefault(option: string): string {
  const row = readme.split('\n').find((line) => line.split('|')[1]?.trim() === `\`${option}\``);
  if (row === undefined) {
    throw new Error(`README.md has no configuration row for ${option}`);
  }
  return row.split('|')[2]?.trim() ?? '';
}

describe('README configuration table', () => {
  it.each([
    ['skewMs', DEFAULT_TOKEN_CACHE_OPTIONS.skewMs],
    ['lockTtlMs', DEFAULT_TOKEN_CACHE_OPTIONS.lockTtlMs],
    ['requestTimeoutMs', DEFAULT_TOKEN_CACHE_OPTIONS.requestTimeoutMs],
    ['redisTimeoutMs', DEFAULT_TOKEN_CACHE_OPTIONS.redisTimeoutMs],
    ['rejectedClientCooldownMs', DEFAULT_TOKEN_CACHE_OPTIONS.rejectedClientCooldownMs],
  ])('documents the default of %s', (option, value) => {
    expect(documentedDefault(option)).toBe(String(value));
  });

  it('documents the default key prefix', () => {
    expect(documentedDefault('keyPrefix')).toBe(`\`${DEFAULT_TOKEN_CACHE_OPTIONS.keyPrefix}\``);
  });

  it('documents the default retries', () => {
    const { attempts, baseDelayMs, maxDelayMs } = DEFAULT_TOKEN_CACHE_OPTIONS.retry;
    expect(documentedDefault('retry')).toBe(
      `${attempts} attempts, ${baseDelayMs} ms doubling to ${maxDelayMs / 1000} s`,
    );
  });

  it('documents the default refresh-ahead margin', () => {
    expect(documentedDefault('refreshAheadMs')).toBe('20% of the life, at most 1 h');
    expect(defaultRefreshAheadMs(3_540_000)).toBe(708_000);
    expect(defaultRefreshAheadMs(7 * 24 * 3_600_000)).toBe(3_600_000);
  });
});

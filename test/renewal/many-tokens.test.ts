// 1,000 tokens of 1,000 clients on one renewal queue: one worker renews every token once before it
// expires. many-tokens.ts runs the same scenario with tighter timing and prints its numbers.
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { MANY_TOKENS_SETTINGS, runManyTokens } from './many-tokens-run.js';

const TOKENS = 1_000;

/**
 * Looser than the script's timing, since another test file shares the two cores: a 12 s token
 * is renewed 6.8 s after its fetch and has 5 s left in Redis when its job is due.
 */
const TIMING = { expiresIn: 12, skewMs: 200, refreshAheadMs: 5_000 };

const redisUrl = inject('redisUrl');

describe('renewal queue with many tokens', () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => {
    warnings.push(warning);
  };

  beforeEach(() => {
    warnings.length = 0;
    process.on('warning', onWarning);
  });

  afterEach(() => {
    process.off('warning', onWarning);
  });

  it('renews each of 1,000 tokens once before it expires', async () => {
    const report = await runManyTokens({
      ...MANY_TOKENS_SETTINGS,
      ...TIMING,
      redisUrl,
      count: TOKENS,
    });

    expect(report.tokens).toBe(TOKENS);
    expect(report.renewedInTime).toBe(TOKENS);
    expect(report.renewedLate).toBe(0);
    expect(report.notRenewed).toBe(0);
    expect(report.renewedTwice).toBe(0);
    expect(report.tokenRequests).toBe(2 * TOKENS);
    expect(report.renewalRequests).toBe(TOKENS);
    expect(report.outcomes).toEqual({ refreshed: TOKENS });
    // Every cache shares one Redis client, as in the refresher service.
    expect(warnings.map((warning) => warning.name)).toEqual([]);
  });
});

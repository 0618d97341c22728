import { describe, expect, it } from 'vitest';
import { computeRetryDelayMs, STOP_RETRYING } from '../src/index.js';

const base = {
  baseDelayMs: 1_000,
  maxDelayMs: 8_000,
  retryAfterMs: undefined,
  remainingMs: undefined,
};

describe('computeRetryDelayMs', () => {
  describe('when nothing bounds the delay', () => {
    it.each([
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
      [4, 8_000],
      [9, 8_000],
    ])('caps run %i at %i ms', (attemptsMade, ceilingMs) => {
      const highest = computeRetryDelayMs({ ...base, attemptsMade, random: () => 0.999_999 });
      const lowest = computeRetryDelayMs({ ...base, attemptsMade, random: () => 0 });

      expect(highest).toBe(ceilingMs - 1);
      expect(lowest).toBe(0);
    });

    it('spreads delays with full jitter', () => {
      const delay = computeRetryDelayMs({ ...base, attemptsMade: 3, random: () => 0.5 });

      expect(delay).toBe(2_000);
    });
  });

  describe('when the endpoint sent Retry-After', () => {
    it('waits at least that long', () => {
      const delay = computeRetryDelayMs({
        ...base,
        attemptsMade: 1,
        retryAfterMs: 30_000,
        random: () => 0.5,
      });

      expect(delay).toBe(30_000);
    });

    it('keeps a longer jittered delay', () => {
      const delay = computeRetryDelayMs({
        ...base,
        attemptsMade: 4,
        retryAfterMs: 10,
        random: () => 0.5,
      });

      expect(delay).toBe(4_000);
    });
  });

  describe('when the token expires first', () => {
    it('stops retrying', () => {
      const delay = computeRetryDelayMs({
        ...base,
        attemptsMade: 1,
        retryAfterMs: 5_000,
        remainingMs: 4_000,
      });

      expect(delay).toBe(STOP_RETRYING);
    });

    it('stops retrying when no token is stored', () => {
      const delay = computeRetryDelayMs({
        ...base,
        attemptsMade: 1,
        remainingMs: 0,
        random: () => 0,
      });

      expect(delay).toBe(STOP_RETRYING);
    });

    it('retries while the delay fits the remaining life', () => {
      const delay = computeRetryDelayMs({
        ...base,
        attemptsMade: 1,
        remainingMs: 600,
        random: () => 0.5,
      });

      expect(delay).toBe(500);
    });
  });
});

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createTokenCache, quiqup, type TokenCacheOptions } from '../src/index.js';
import { resolveTokenCacheOptions } from '../src/options.js';
import { MAX_TIMER_DELAY_MS } from '../src/timers.js';

/** A provider that is never asked for a token: these tests stop at option validation. */
const provider = quiqup({
  environment: 'staging',
  baseUrl: 'http://127.0.0.1:9',
  clientId: 'options-client',
  clientSecret: 'options-secret',
});

/** Nothing listens here, and no test below gets as far as connecting. */
const REDIS_URL = 'redis://127.0.0.1:9';

function resolve(overrides: Record<string, unknown>) {
  return resolveTokenCacheOptions({
    redis: REDIS_URL,
    provider,
    ...overrides,
  } as TokenCacheOptions);
}

function expectTypeError(overrides: Record<string, unknown>, code: string, message: string): void {
  expect(() => resolve(overrides)).toThrow(
    expect.objectContaining({ name: 'TypeError', code, message }),
  );
}

const TIMER_LIMIT = `at most ${MAX_TIMER_DELAY_MS} (2^31 - 1 ms, the longest delay of a Node.js timer)`;

const DRIFT_RULE =
  "exceeds options.requestTimeoutMs by 500 ms after Redlock's clock drift allowance of 1% + 2 ms";

describe('resolveTokenCacheOptions', () => {
  describe('when lockTtlMs leaves too little validity after the drift allowance', () => {
    it.each([
      [500, 1_013],
      [1_000, 1_518],
      [5_000, 5_558],
      [100_000, 101_518],
    ])(
      'accepts the smallest valid lockTtlMs for requestTimeoutMs %i',
      (requestTimeoutMs, smallest) => {
        const resolved = resolve({ requestTimeoutMs, lockTtlMs: smallest });

        expect(resolved.lockTtlMs).toBe(smallest);
      },
    );

    it.each([
      [500, 1_013],
      [1_000, 1_518],
      [5_000, 5_558],
      [100_000, 101_518],
    ])(
      'rejects one less for requestTimeoutMs %i, naming the smallest',
      (requestTimeoutMs, smallest) => {
        expectTypeError(
          { requestTimeoutMs, lockTtlMs: smallest - 1 },
          'ERR_INVALID_ARG_VALUE',
          `"options.lockTtlMs" must be at least ${smallest}, so that it ${DRIFT_RULE}, received ${smallest - 1}`,
        );
      },
    );

    it('rejects requestTimeoutMs + 1000 once the drift passes 500 ms', () => {
      expectTypeError(
        { requestTimeoutMs: 100_000, lockTtlMs: 101_000 },
        'ERR_INVALID_ARG_VALUE',
        `"options.lockTtlMs" must be at least 101518, so that it ${DRIFT_RULE}, received 101000`,
      );
    });

    it('checks the default lockTtlMs against a long requestTimeoutMs', () => {
      expectTypeError(
        { requestTimeoutMs: 29_500 },
        'ERR_INVALID_ARG_VALUE',
        `"options.lockTtlMs" must be at least 30306, so that it ${DRIFT_RULE}, received 30000`,
      );
    });

    it('names requestTimeoutMs when no lockTtlMs within the timer limit fits', () => {
      expectTypeError(
        { requestTimeoutMs: 2_126_008_309, lockTtlMs: MAX_TIMER_DELAY_MS },
        'ERR_INVALID_ARG_VALUE',
        `"options.requestTimeoutMs" must be at most 2126008308, so that an options.lockTtlMs of at most ${MAX_TIMER_DELAY_MS} ${DRIFT_RULE}, received 2126008309`,
      );
    });
  });

  describe('when a millisecond option exceeds the timer limit', () => {
    it.each([
      ['skewMs', { skewMs: MAX_TIMER_DELAY_MS + 1 }],
      ['requestTimeoutMs', { requestTimeoutMs: MAX_TIMER_DELAY_MS + 1 }],
      ['lockTtlMs', { lockTtlMs: MAX_TIMER_DELAY_MS + 1 }],
      ['lockWaitTimeoutMs', { lockWaitTimeoutMs: MAX_TIMER_DELAY_MS + 1 }],
      ['redisTimeoutMs', { redisTimeoutMs: MAX_TIMER_DELAY_MS + 1 }],
      ['rejectedClientCooldownMs', { rejectedClientCooldownMs: MAX_TIMER_DELAY_MS + 1 }],
      ['refreshAheadMs', { refreshAheadMs: MAX_TIMER_DELAY_MS + 1 }],
      ['retry.baseDelayMs', { retry: { baseDelayMs: MAX_TIMER_DELAY_MS + 1 } }],
      ['retry.maxDelayMs', { retry: { maxDelayMs: MAX_TIMER_DELAY_MS + 1 } }],
    ])('rejects options.%s, naming the limit', (path, overrides) => {
      expectTypeError(
        overrides,
        'ERR_INVALID_ARG_VALUE',
        `"options.${path}" must be ${TIMER_LIMIT}, received ${MAX_TIMER_DELAY_MS + 1}`,
      );
    });

    it('accepts every timer option at the limit', () => {
      const resolved = resolve({
        skewMs: MAX_TIMER_DELAY_MS,
        lockTtlMs: MAX_TIMER_DELAY_MS,
        lockWaitTimeoutMs: MAX_TIMER_DELAY_MS,
        redisTimeoutMs: MAX_TIMER_DELAY_MS,
        rejectedClientCooldownMs: MAX_TIMER_DELAY_MS,
        refreshAheadMs: MAX_TIMER_DELAY_MS,
        retry: { baseDelayMs: MAX_TIMER_DELAY_MS, maxDelayMs: MAX_TIMER_DELAY_MS },
      });

      expect(resolved.skewMs).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.lockTtlMs).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.lockWaitTimeoutMs).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.redisTimeoutMs).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.rejectedClientCooldownMs).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.refreshAheadMs(1_000)).toBe(MAX_TIMER_DELAY_MS);
      expect(resolved.retry).toEqual({
        attempts: 3,
        baseDelayMs: MAX_TIMER_DELAY_MS,
        maxDelayMs: MAX_TIMER_DELAY_MS,
      });
    });

    it('caps the default lockWaitTimeoutMs at the limit', () => {
      const resolved = resolve({ lockTtlMs: MAX_TIMER_DELAY_MS });

      expect(resolved.lockWaitTimeoutMs).toBe(MAX_TIMER_DELAY_MS);
    });

    it('keeps the default lockWaitTimeoutMs below the limit', () => {
      const resolved = resolve({});

      expect(resolved.lockWaitTimeoutMs).toBe(40_000);
    });
  });

  describe('when retry is not an object', () => {
    it.each([
      [5, 'received 5'],
      [null, 'received null'],
      ['fast', 'received a string of length 4'],
    ])('rejects %s', (retry, received) => {
      expectTypeError(
        { retry },
        'ERR_INVALID_ARG_TYPE',
        `"options.retry" must be an object, ${received}`,
      );
    });
  });

  describe('when renewal has no scheduleRenewal function', () => {
    it.each([
      ['an empty object', {}, 'type object'],
      ['null', null, 'null'],
      ['a non-function scheduleRenewal', { scheduleRenewal: true }, 'type object'],
    ])('rejects %s', (_name, renewal, received) => {
      expectTypeError(
        { renewal },
        'ERR_INVALID_ARG_TYPE',
        `"options.renewal" must be an object with a scheduleRenewal() method, such as createRenewalQueue(), received ${received}`,
      );
    });

    it('accepts an object with scheduleRenewal()', () => {
      const renewal = { scheduleRenewal: async () => {} };

      expect(resolve({ renewal }).renewal).toBe(renewal);
    });
  });

  describe('when metricsRegistry is not a prom-client Registry', () => {
    it.each([
      ['an empty object', {}, 'type object'],
      ['a registry without getSingleMetric', { registerMetric() {} }, 'type object'],
      ['a string', 'registry', 'a string of length 8'],
    ])('rejects %s', (_name, metricsRegistry, received) => {
      expectTypeError(
        { metricsRegistry },
        'ERR_INVALID_ARG_TYPE',
        `"options.metricsRegistry" must be a prom-client Registry, received ${received}`,
      );
    });

    it('accepts a Registry', () => {
      const metricsRegistry = new Registry();

      expect(resolve({ metricsRegistry }).metricsRegistry).toBe(metricsRegistry);
    });
  });

  describe('when sealingKeys is invalid', () => {
    const good = { id: 'k1', key: new Uint8Array(32) };

    it.each([
      [
        'not an array',
        good,
        'ERR_INVALID_ARG_TYPE',
        '"options.sealingKeys" must be an array of sealing keys',
      ],
      [
        'empty',
        [],
        'ERR_INVALID_ARG_VALUE',
        '"options.sealingKeys" must contain at least one sealing key',
      ],
      [
        'a short key',
        [{ id: 'k1', key: new Uint8Array(16) }],
        'ERR_INVALID_ARG_VALUE',
        '"options.sealingKeys[0].key" must be 32 bytes long (received 16)',
      ],
      [
        'a string key',
        [good, { id: 'k2', key: 'x'.repeat(32) }],
        'ERR_INVALID_ARG_TYPE',
        '"options.sealingKeys[1].key" must be a Uint8Array',
      ],
      [
        'a repeated id',
        [good, { ...good }],
        'ERR_INVALID_ARG_VALUE',
        '"options.sealingKeys[1].id" repeats the id "k1"',
      ],
    ])('rejects %s', (_name, sealingKeys, code, message) => {
      expectTypeError({ sealingKeys }, code, message);
    });

    it('copies a valid ring', () => {
      const sealingKeys = [good];
      const resolved = resolve({ sealingKeys });

      expect(resolved.sealingKeys).toEqual([good]);
      expect(resolved.sealingKeys).not.toBe(sealingKeys);
    });
  });

  describe('when refreshAheadMs is neither a number nor a function', () => {
    it.each([
      ['a string', '60000', 'a string of length 5'],
      ['an object', {}, 'type object'],
      ['null', null, 'null'],
    ])('rejects %s', (_name, refreshAheadMs, received) => {
      expectTypeError(
        { refreshAheadMs },
        'ERR_INVALID_ARG_TYPE',
        `"options.refreshAheadMs" must be a number of milliseconds or a function of the stored life, received ${received}`,
      );
    });

    it('keeps a function as it is', () => {
      const refreshAheadMs = (lifetimeMs: number) => lifetimeMs / 4;

      expect(resolve({ refreshAheadMs }).refreshAheadMs).toBe(refreshAheadMs);
    });
  });

  describe('when the options are frozen', () => {
    it('resolves them without writing to them', () => {
      const options = Object.freeze({
        redis: REDIS_URL,
        provider,
        retry: Object.freeze({ attempts: 2 }),
        sealingKeys: Object.freeze([{ id: 'k1', key: new Uint8Array(32) }]),
      });

      const resolved = resolveTokenCacheOptions(options as unknown as TokenCacheOptions);

      expect(resolved.retry).toEqual({ attempts: 2, baseDelayMs: 250, maxDelayMs: 5_000 });
    });
  });
});

describe('createTokenCache', () => {
  describe('when an option is invalid', () => {
    it('throws before it connects to Redis', () => {
      const create = () =>
        createTokenCache({ redis: REDIS_URL, provider, redisTimeoutMs: 2 ** 31 });

      expect(create).toThrow(
        expect.objectContaining({
          code: 'ERR_INVALID_ARG_VALUE',
          message: `"options.redisTimeoutMs" must be ${TIMER_LIMIT}, received 2147483648`,
        }),
      );
    });
  });
});

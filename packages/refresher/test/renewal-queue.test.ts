import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRenewalQueue,
  DEFAULT_REFRESHER_OPTIONS,
  RENEWAL_BACKOFF_TYPE,
  type RenewalQueue,
  renewalJobId,
} from '../src/index.js';
import { destroyQueue, openRedis, REDIS_URL, uniqueQueue } from './helpers.js';

const TOKEN_ID = '0123456789abcdef0123456789abcdef';

describe('createRenewalQueue', () => {
  let names: ReturnType<typeof uniqueQueue>;
  let queues: RenewalQueue[];

  beforeEach(() => {
    names = uniqueQueue();
    queues = [];
  });

  afterEach(async () => {
    const [first, ...others] = queues;
    await Promise.all(others.map((queue) => queue.close()));
    if (first !== undefined) {
      await destroyQueue(first);
    }
  });

  function openQueue(
    options: Partial<Parameters<typeof createRenewalQueue>[0]> = {},
  ): RenewalQueue {
    const queue = createRenewalQueue({ connection: REDIS_URL, ...names, ...options });
    queues.push(queue);
    return queue;
  }

  describe('when five schedulers add the same generation', () => {
    it('keeps exactly one delayed job', async () => {
      const schedulers = Array.from({ length: 5 }, () => openQueue());

      await Promise.all(
        schedulers.map((queue) =>
          queue.scheduleRenewal({
            tokenId: TOKEN_ID,
            generation: 7,
            delayMs: 60_000,
            remainingMs: 90_000,
          }),
        ),
      );

      const counts = await schedulers[0]!.bullQueue.getJobCounts('delayed', 'waiting', 'active');
      expect(counts.delayed).toBe(1);
      expect(counts.waiting).toBe(0);
      expect(counts.active).toBe(0);
      const job = await schedulers[0]!.getRenewalJob(TOKEN_ID, 7);
      expect(job?.id).toBe(`renew-${TOKEN_ID}-7`);
    });
  });

  describe('when a job is added', () => {
    it('stores the data, delay, attempts, backoff and retention', async () => {
      const queue = openQueue({ attempts: 4, backoffDelayMs: 250 });
      const before = Date.now();

      await queue.scheduleRenewal({
        tokenId: TOKEN_ID,
        generation: 3,
        delayMs: 5_000,
        remainingMs: 9_000,
      });

      const job = await queue.getRenewalJob(TOKEN_ID, 3);
      expect(job?.data.tokenId).toBe(TOKEN_ID);
      expect(job?.data.generation).toBe(3);
      expect(job?.data.dueAt).toBeGreaterThanOrEqual(before + 5_000);
      expect(job?.opts.delay).toBe(5_000);
      expect(job?.opts.attempts).toBe(4);
      expect(job?.opts.backoff).toEqual({ type: RENEWAL_BACKOFF_TYPE, delay: 250 });
      expect(job?.opts.removeOnComplete).toEqual({
        age: DEFAULT_REFRESHER_OPTIONS.keepCompleted.ageSeconds,
        count: DEFAULT_REFRESHER_OPTIONS.keepCompleted.count,
      });
      expect(job?.opts.removeOnFail).toEqual({
        age: DEFAULT_REFRESHER_OPTIONS.keepFailed.ageSeconds,
        count: DEFAULT_REFRESHER_OPTIONS.keepFailed.count,
      });
      expect(await queue.getRenewalJobState(TOKEN_ID, 3)).toBe('delayed');
    });

    it('makes an overdue job wait for a worker at once', async () => {
      const queue = openQueue();

      await queue.scheduleRenewal({
        tokenId: TOKEN_ID,
        generation: 1,
        delayMs: -500,
        remainingMs: 100,
      });

      expect(await queue.getRenewalJobState(TOKEN_ID, 1)).toBe('waiting');
    });

    it('accepts a delay longer than a setTimeout can wait', async () => {
      const queue = openQueue();
      const sevenDaysMs = 7 * 24 * 3_600_000;

      await queue.scheduleRenewal({
        tokenId: TOKEN_ID,
        generation: 2,
        delayMs: sevenDaysMs,
        remainingMs: sevenDaysMs,
      });

      const job = await queue.getRenewalJob(TOKEN_ID, 2);
      expect(job?.opts.delay).toBe(sevenDaysMs);
      expect(await queue.getRenewalJobState(TOKEN_ID, 2)).toBe('delayed');
    });
  });

  describe('when a request is invalid', () => {
    it.each([
      [
        'a token id with a colon',
        { tokenId: 'a:b', generation: 1, delayMs: 0, remainingMs: 1 },
        'request.tokenId',
      ],
      [
        'a negative generation',
        { tokenId: TOKEN_ID, generation: -1, delayMs: 0, remainingMs: 1 },
        'request.generation',
      ],
      [
        'a delay that is not finite',
        { tokenId: TOKEN_ID, generation: 1, delayMs: Number.NaN, remainingMs: 1 },
        'request.delayMs',
      ],
    ])('rejects %s', async (_case, request, path) => {
      const queue = openQueue();

      const error = await queue.scheduleRenewal(request).catch((err: unknown) => err);

      expect(error).toBeInstanceOf(TypeError);
      expect((error as NodeJS.ErrnoException).code).toBe('ERR_INVALID_ARG_VALUE');
      expect((error as Error).message).toContain(`"${path}"`);
    });
  });

  describe('when options are invalid', () => {
    it('rejects zero attempts', () => {
      const create = () => createRenewalQueue({ connection: REDIS_URL, attempts: 0 });

      expect(create).toThrow(TypeError);
      expect(create).toThrow('"options.attempts" must be an integer of at least 1, received 0');
    });

    it('rejects a connection that is not a client or URL', () => {
      const create = () => createRenewalQueue({ connection: 42 as never });

      expect(create).toThrow(
        '"options.connection" must be an ioredis Redis or Cluster client or a redis:// URL',
      );
    });
  });

  describe('when the caller passes a connection', () => {
    it('leaves it open after close', async () => {
      const redis = openRedis();
      const queue = createRenewalQueue({ connection: redis, ...names });
      await queue.scheduleRenewal({
        tokenId: TOKEN_ID,
        generation: 1,
        delayMs: 1_000,
        remainingMs: 2_000,
      });

      await queue.bullQueue.obliterate({ force: true });
      await queue.close();

      expect(await redis.ping()).toBe('PONG');
      await redis.quit();
    });
  });
});

describe('renewalJobId', () => {
  it('joins token id and generation without a colon', () => {
    expect(renewalJobId(TOKEN_ID, 12)).toBe(`renew-${TOKEN_ID}-12`);
  });
});

// A pod refreshed the token on its own (lazily in getToken() or by refresh()) before the renewal
// job of the older generation ran: that job completes as superseded without a token request, and
// the job of the new generation is the one that waits.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RefreshedEvent } from '@tokenfleet/core';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { RenewalFixture } from './renewal-fixture.js';

/**
 * A 4 s token stored for 3.8 s. Its job is due 1.5 s before the stored end (at about 2.3 s), and
 * pods refresh on their own at half that margin (at about 3.05 s).
 */
const CACHE_OPTIONS = { skewMs: 200, refreshAheadMs: 1_500 };

/** Pause between two getToken() calls of the pod while it waits for its lazy refresh. */
const POLL_MS = 50;

const redisUrl = inject('redisUrl');

describe('renewal job of an older generation', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'superseded', redisUrl, expiresIn: 4 });
  });

  afterEach(async () => {
    await fixture.close();
  });

  describe('when getToken() refreshed lazily while no worker ran', () => {
    it('completes as superseded and leaves the new job delayed', async () => {
      const pod = fixture.openCache(CACHE_OPTIONS);
      const queue = fixture.openQueue();
      const first = await pod.getTokenInfo();
      expect(await queue.getRenewalJobState(pod.id, first.generation)).toBe('delayed');

      let lazy: RefreshedEvent | undefined;
      pod.on('refreshed', (event) => {
        lazy ??= event;
      });
      while (lazy === undefined) {
        await pod.getToken();
        await sleep(POLL_MS);
      }
      expect(lazy).toMatchObject({ generation: 2, reason: 'refresh-ahead', origin: 'local' });
      await fixture.waitForJobState(queue, pod.id, 2, ['delayed']);
      // BullMQ moves a due job out of the delayed set only when a worker asks for jobs.
      const due = (await queue.getRenewalJob(pod.id, 1))!;
      expect(await due.getState()).toBe('delayed');
      expect(due.timestamp + due.delay).toBeLessThan(Date.now());

      const worker = fixture.startWorker([fixture.openCache(CACHE_OPTIONS)]);
      await worker.waitUntilReady();
      await fixture.waitForJobState(queue, pod.id, 1, ['completed', 'failed']);

      const older = (await queue.getRenewalJob(pod.id, 1))!;
      expect(older.returnvalue).toMatchObject({ outcome: 'superseded', generation: 2 });
      expect(await queue.getRenewalJobState(pod.id, 2)).toBe('delayed');
      expect(fixture.mock.counts().tokenRequests).toBe(2);
    });
  });

  describe('when refresh() replaced the token before its job was due', () => {
    it('completes as superseded and leaves the new job delayed', async () => {
      const pod = fixture.openCache(CACHE_OPTIONS);
      const queue = fixture.openQueue();
      const first = await pod.getTokenInfo();
      const forced = await pod.refresh();
      expect(forced.generation).toBe(first.generation + 1);
      const worker = fixture.startWorker([fixture.openCache(CACHE_OPTIONS)]);
      await worker.waitUntilReady();

      const completed = once(worker.bullWorker, 'completed');
      await (await queue.getRenewalJob(pod.id, first.generation))!.promote();
      await completed;

      const older = (await queue.getRenewalJob(pod.id, first.generation))!;
      expect(older.returnvalue).toMatchObject({ outcome: 'superseded', generation: 2 });
      expect(await queue.getRenewalJobState(pod.id, forced.generation)).toBe('delayed');
      expect(fixture.mock.counts().tokenRequests).toBe(2);
    });
  });
});

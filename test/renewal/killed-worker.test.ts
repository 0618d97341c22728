// A worker process dies (SIGKILL) while its token request is in flight. Its job lock lapses, the
// other worker's stalled-job check moves the job back to the waiting list, and that worker renews
// the token: one renewed token in all.
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, startWorker, type WorkerProcess } from '../harness/processes.js';
import { waitFor } from '../harness/wait-for.js';
import { RenewalFixture } from './renewal-fixture.js';
import {
  type RenewalWorkerConfig,
  type RenewalWorkerResult,
  WORKER_CONFIG_ENV,
  WORKER_READY_LINE,
} from './worker-contract.js';

const WORKER_SCRIPT = new URL('./renewal-worker-process.ts', import.meta.url);

/**
 * A 60 s token. The fleet lock of the dead worker lapses 3 s after it took it, so the surviving
 * worker waits at most that long before it sends its own request.
 */
const CACHE_OPTIONS = {
  skewMs: 1_000,
  refreshAheadMs: 20_000,
  requestTimeoutMs: 2_000,
  lockTtlMs: 3_000,
};

/** BullMQ lock settings short enough that the dead worker's job is recovered within seconds. */
const STALL_OPTIONS = { lockDurationMs: 1_000, stalledIntervalMs: 500 };

/** Longer than the test: the request of the killed worker never gets its token. */
const HANGING_REQUEST_MS = 60_000;

const redisUrl = inject('redisUrl');

describe('renewal worker killed mid-job', () => {
  let fixture: RenewalFixture;

  beforeEach(async () => {
    fixture = await RenewalFixture.start({ name: 'killed-worker', redisUrl, expiresIn: 60 });
  });

  afterEach(async () => {
    await killAll();
    await fixture.close();
  });

  it('is recovered by another worker and renews the token once', async () => {
    const pod = fixture.openCache(CACHE_OPTIONS);
    const queue = fixture.openQueue();
    const first = await pod.getTokenInfo();
    const config: RenewalWorkerConfig = {
      redisUrl,
      mockUrl: fixture.mock.url,
      clients: [...fixture.clients],
      keyPrefix: fixture.keyPrefix,
      queueName: fixture.queueName,
      queuePrefix: fixture.queuePrefix,
      cacheOptions: CACHE_OPTIONS,
      workerOptions: STALL_OPTIONS,
    };
    const workers = [0, 1].map((index) =>
      startWorker<RenewalWorkerResult>({
        script: WORKER_SCRIPT,
        env: { [WORKER_CONFIG_ENV]: JSON.stringify(config) },
        index,
        count: 2,
      }),
    );
    await Promise.all(workers.map((worker) => worker.waitForOutput(WORKER_READY_LINE, 30_000)));

    fixture.mock.setFaults({ latencyMs: HANGING_REQUEST_MS, times: 1 });
    await (await queue.getRenewalJob(pod.id, first.generation))!.promote();
    const victim = await Promise.race(
      workers.map((worker) =>
        worker.waitForOutput('"msg":"renewing token"').then((): WorkerProcess => worker),
      ),
    );
    const survivor = workers.find((worker) => worker !== victim)!;
    await waitFor(() => fixture.mock.counts().tokenRequests === 2, {
      description: 'the first worker to send its token request',
    });
    const killed = await victim.kill('SIGKILL');

    await fixture.waitForJobState(queue, pod.id, first.generation, ['completed', 'failed'], 30_000);
    const job = (await queue.getRenewalJob(pod.id, first.generation))!;
    expect(killed.signal).toBe('SIGKILL');
    expect(job.failedReason).toBeUndefined();
    expect(job.stalledCounter).toBe(1);
    // The dead worker took generation 2 for its request, so the survivor's token is generation 3.
    expect(job.returnvalue).toMatchObject({ outcome: 'refreshed', generation: 3 });
    expect(fixture.mock.counts()).toMatchObject({ tokenRequests: 3, tokenSuccesses: 2 });
    expect(await pod.status()).toMatchObject({ generation: 3, generationCounter: 3 });
    expect(await queue.getRenewalJobState(pod.id, 3)).toBe('delayed');

    await survivor.kill('SIGTERM');
    const result = await survivor.result;
    expect(result.outcomes).toEqual(['refreshed']);
  });
});

// Test-side helpers of the fleet tests: start a fleet of fleet-worker.ts processes, release them
// together, and remove what a test left in Redis.
import type { Redis } from 'ioredis';
import { startWorker, type WorkerProcess } from '../harness/processes.js';
import { type FleetWorkerEnv, type FleetWorkerResult, READY_LINE } from './fleet-contract.js';

const FLEET_WORKER_SCRIPT = new URL('./fleet-worker.ts', import.meta.url);

/**
 * How long each worker may take to print READY, in milliseconds. Eight processes that each load
 * tsx, ioredis and BullMQ at once take several seconds on two cores, more than waitForOutput's
 * default of 10 s allows under a loaded test run.
 */
const READY_TIMEOUT_MS = 40_000;

/** Starts `count` fleet workers with the same environment. Each waits for the start signal. */
export function startFleet(count: number, env: FleetWorkerEnv): WorkerProcess<FleetWorkerResult>[] {
  const variables: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined) {
      variables[name] = value;
    }
  }

  const workers: WorkerProcess<FleetWorkerResult>[] = [];
  for (let index = 0; index < count; index++) {
    workers.push(
      startWorker<FleetWorkerResult>({
        script: FLEET_WORKER_SCRIPT,
        env: variables,
        index,
        count,
      }),
    );
  }
  return workers;
}

/**
 * Waits until every worker has printed READY, then pushes one entry per worker onto the start
 * list, so that the workers make their first calls at about the same time.
 */
export async function releaseFleet(
  redis: Redis,
  startList: string,
  workers: readonly WorkerProcess<FleetWorkerResult>[],
): Promise<void> {
  await Promise.all(workers.map((worker) => worker.waitForOutput(READY_LINE, READY_TIMEOUT_MS)));
  await redis.rpush(startList, ...workers.map((worker) => `start ${worker.index}`));
}

/** Deletes every key that starts with `prefix:`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } while (cursor !== '0');
}

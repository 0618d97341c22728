// The worker side of the benchmark fleets: the shared clock, commands from the bench process
// through a Redis list, and tagged result lines on stdout. Worker scripts import this, never vitest.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

/** Start of a stdout line that carries one tagged benchmark record: `BENCH <tag> <json>`. */
export const BENCH_LINE_PREFIX = 'BENCH ';

/**
 * Seconds of one BLPOP for the next command. Between two waits the worker checks that the bench
 * process is still its parent, so a worker orphaned by a killed bench exits within this time.
 */
const COMMAND_POLL_SECONDS = 5;

/** Before a scheduled start, the last stretch that a worker spins through instead of sleeping. */
const SPIN_BEFORE_START_MS = 3;

/**
 * Returns the time in milliseconds since the epoch with sub-millisecond resolution. All bench
 * processes run on one machine, so this value is comparable between them: each process adds its
 * own monotonic clock to the wall-clock time at which it started.
 */
export function sharedNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Resolves at `sharedTime` (a {@link sharedNow} value): sleeps, then spins the last 3 ms. */
export async function waitUntil(sharedTime: number): Promise<void> {
  const sleepMs = sharedTime - sharedNow() - SPIN_BEFORE_START_MS;
  if (sleepMs > 0) {
    await sleep(sleepMs);
  }
  while (sharedNow() < sharedTime) {
    // Spins: a timer fires up to a millisecond late, and every worker must start at once.
  }
}

/** Writes one `BENCH <tag> <json>` line and resolves once it is flushed. */
export function emitLine(tag: string, value: unknown): Promise<void> {
  const line = `${BENCH_LINE_PREFIX}${tag} ${JSON.stringify(value)}\n`;
  return new Promise((resolve, reject) => {
    process.stdout.write(line, (err) => (err ? reject(err) : resolve()));
  });
}

/** Name of the Redis list from which worker `index` reads its commands. */
export function commandList(controlPrefix: string, index: number): string {
  return `${controlPrefix}:commands:${index}`;
}

/** Reads JSON commands that the bench process pushes onto this worker's Redis list. */
export class CommandReader {
  readonly #redis: Redis;
  readonly #list: string;
  readonly #parentPid = process.ppid;

  constructor(redisUrl: string, list: string) {
    // BLPOP blocks its connection, so commands get a connection of their own.
    this.#redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    this.#list = list;
  }

  /** Waits for the next command; throws when the bench process that started this worker is gone. */
  async next<T>(): Promise<T> {
    for (;;) {
      const entry = await this.#redis.blpop(this.#list, COMMAND_POLL_SECONDS);
      if (entry !== null) {
        return JSON.parse(entry[1]) as T;
      }
      if (process.ppid !== this.#parentPid) {
        throw new Error(`the bench process ${this.#parentPid} is gone; worker exits`);
      }
    }
  }

  close(): void {
    this.#redis.disconnect();
  }
}

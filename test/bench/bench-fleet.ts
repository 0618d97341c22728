// The bench-process side of the benchmark fleets: starts worker processes through the test
// harness, sends them commands through Redis lists and collects their tagged stdout lines.
import type { Redis } from 'ioredis';
import { startWorker, type WorkerProcess } from '../harness/processes.js';
import { BENCH_LINE_PREFIX, commandList } from './bench-io.js';

/**
 * How long a worker may take to print a line the bench waits for, in milliseconds. Sixteen
 * processes that load tsx, ioredis and the packages at once take several seconds on two cores.
 */
const DEFAULT_LINE_TIMEOUT_MS = 60_000;

export interface BenchFleetOptions {
  /** The worker script, as a file URL. */
  script: URL;
  count: number;
  /** Environment of every worker, added to the bench process's own. */
  env: Record<string, string>;
  /** Prefix of the command lists; see {@link commandList}. */
  controlPrefix: string;
  /** Connection that pushes the commands. */
  redis: Redis;
}

/** Worker processes that take commands and answer with tagged lines. */
export class BenchFleet<TResult = unknown> {
  readonly workers: WorkerProcess<TResult>[];
  readonly #options: BenchFleetOptions;

  constructor(options: BenchFleetOptions) {
    this.#options = options;
    this.workers = Array.from({ length: options.count }, (_, index) =>
      startWorker<TResult>({
        script: options.script,
        env: options.env,
        index,
        count: options.count,
      }),
    );
  }

  /** Pushes `command` onto the list of each worker in `indices` (default: every worker). */
  async send(command: unknown, indices: readonly number[] = this.#allIndices()): Promise<void> {
    const text = JSON.stringify(command);
    const pipeline = this.#options.redis.pipeline();
    for (const index of indices) {
      pipeline.rpush(commandList(this.#options.controlPrefix, index), text);
    }
    await pipeline.exec();
  }

  /**
   * Waits for the line `BENCH <tag> <json>` of each worker in `indices` and returns the parsed
   * JSON in index order. Tags must be unique within a worker's life: earlier lines match too.
   */
  async collect<T>(
    tag: string,
    indices: readonly number[] = this.#allIndices(),
    timeoutMs = DEFAULT_LINE_TIMEOUT_MS,
  ): Promise<T[]> {
    const prefix = `${BENCH_LINE_PREFIX}${tag} `;
    const lines = await Promise.all(
      indices.map((index) => this.workers[index]!.waitForOutput(prefix, timeoutMs)),
    );
    return lines.map((line) => JSON.parse(line.slice(line.indexOf(prefix) + prefix.length)) as T);
  }

  /** Waits for every worker's RESULT line and exit; rejects with the stderr tail of a failed one. */
  results(): Promise<TResult[]> {
    return Promise.all(this.workers.map((worker) => worker.result));
  }

  /** Kills every worker that is still running. */
  async kill(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.kill('SIGKILL')));
  }

  #allIndices(): number[] {
    return this.workers.map((_, index) => index);
  }
}

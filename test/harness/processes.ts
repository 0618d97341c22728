import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { killOnExit } from './child-cleanup.js';
import { RESULT_PREFIX, WORKER_COUNT_ENV, WORKER_INDEX_ENV } from './worker-io.js';

export { type WaitForOptions, waitFor } from './wait-for.js';
export { RESULT_PREFIX, WORKER_COUNT_ENV, WORKER_INDEX_ENV } from './worker-io.js';

/** Repository root: worker processes run here, so `--import tsx` resolves the root's tsx. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Default for `deadlineMs` of `runWorkers()`. It stays below the 60 s test timeout so that the
 * helper's error, with each worker's stderr, is what a hanging fleet test reports.
 */
const DEFAULT_DEADLINE_MS = 45_000;

/** Default for `timeoutMs` of `waitForOutput()`. */
const DEFAULT_OUTPUT_TIMEOUT_MS = 10_000;

/** Characters of a worker's stderr kept for error messages. */
const STDERR_TAIL_CHARS = 2_000;

/** Non-result stdout lines kept per worker for `waitForOutput()`. */
const STDOUT_LINES_KEPT = 500;

export interface StartWorkerOptions {
  /** The TypeScript worker script: a file URL, an absolute path or a path from the repository root. */
  script: string | URL;
  /** Arguments after the script path. */
  args?: string[];
  /** Variables added to the inherited environment. */
  env?: Record<string, string>;
  /** This worker's index in its fleet, passed as TOKENFLEET_WORKER_INDEX. Default 0. */
  index?: number;
  /** Number of workers in the fleet, passed as TOKENFLEET_WORKER_COUNT. Default 1. */
  count?: number;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One worker child process started by `startWorker()` or `runWorkers()`. */
export interface WorkerProcess<T = unknown> {
  readonly index: number;
  readonly pid: number;
  /**
   * The parsed JSON of the worker's `RESULT` line. Rejects with the stderr tail when the process
   * exits with a code other than 0, by a signal, or without exactly one `RESULT` line.
   */
  readonly result: Promise<T>;
  /** Resolves once the process has exited and its output is read. */
  readonly exited: Promise<WorkerExit>;
  /** Resolves with the first stdout line that matches, including lines printed before the call. */
  waitForOutput(pattern: string | RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<WorkerExit>;
  /** The last 2 000 characters that the worker wrote to stderr. */
  stderrTail(): string;
}

export interface RunWorkersOptions {
  script: string | URL;
  /** Number of worker processes, at least 1. */
  count: number;
  /** Arguments after the script path, the same for all workers or per worker index. */
  args?: string[] | ((index: number) => string[]);
  /** Variables added to the inherited environment, the same for all workers or per worker index. */
  env?: Record<string, string> | ((index: number) => Record<string, string>);
  /**
   * Milliseconds after which every worker still running gets SIGKILL and `runWorkers()` rejects
   * with their stderr tails. Default 45 000.
   */
  deadlineMs?: number;
}

const liveWorkers = new Set<WorkerHandle<unknown>>();

/**
 * Starts one worker process: `node --import tsx <script> ...args` in the repository root, with
 * stdout and stderr piped to the test.
 */
export function startWorker<T = unknown>(options: StartWorkerOptions): WorkerProcess<T> {
  return new WorkerHandle<T>(options);
}

/**
 * Starts `count` workers of one script at once and resolves with their results in index order.
 * When one worker fails, the others get SIGKILL and the promise rejects with that worker's error.
 */
export async function runWorkers<T = unknown>(options: RunWorkersOptions): Promise<T[]> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  if (!Number.isInteger(options.count) || options.count < 1) {
    throw new TypeError(`"options.count" must be a positive integer, got ${options.count}`);
  }
  if (!(deadlineMs > 0)) {
    throw new TypeError(`"options.deadlineMs" must be a positive number, got ${deadlineMs}`);
  }

  const workers: WorkerHandle<T>[] = [];
  for (let index = 0; index < options.count; index++) {
    workers.push(
      new WorkerHandle<T>({
        script: options.script,
        args: typeof options.args === 'function' ? options.args(index) : options.args,
        env: typeof options.env === 'function' ? options.env(index) : options.env,
        index,
        count: options.count,
      }),
    );
  }

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded()), deadlineMs);
  });

  try {
    return await Promise.race([Promise.all(workers.map((worker) => worker.result)), deadline]);
  } catch (err) {
    const unfinished = workers.filter((worker) => !worker.hasExited);
    await Promise.all(unfinished.map((worker) => worker.kill('SIGKILL')));
    if (!(err instanceof DeadlineExceeded)) {
      throw err;
    }

    const tails = unfinished.map((worker) => worker.describe()).join('\n');
    throw new Error(
      `${unfinished.length} of ${options.count} worker processes did not finish within ` +
        `${deadlineMs} ms (options.deadlineMs) and were killed with SIGKILL\n${tails}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Kills every worker process that is still running, with SIGKILL. Call it in `afterEach`. */
export async function killAll(): Promise<void> {
  await Promise.all([...liveWorkers].map((worker) => worker.kill('SIGKILL')));
}

class DeadlineExceeded extends Error {}

interface OutputWaiter {
  pattern: string | RegExp;
  resolve: (line: string) => void;
}

class WorkerHandle<T> implements WorkerProcess<T> {
  readonly index: number;
  readonly pid: number;
  readonly result: Promise<T>;
  readonly exited: Promise<WorkerExit>;
  hasExited = false;

  private readonly child: ChildProcess;
  private stderr = '';
  private readonly stdoutLines: string[] = [];
  private readonly resultLines: string[] = [];
  private readonly outputWaiters = new Set<OutputWaiter>();

  constructor(options: StartWorkerOptions) {
    this.index = options.index ?? 0;
    const script =
      options.script instanceof URL
        ? fileURLToPath(options.script)
        : resolve(REPO_ROOT, options.script);

    this.child = spawn(process.execPath, ['--import', 'tsx', script, ...(options.args ?? [])], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...options.env,
        [WORKER_INDEX_ENV]: String(this.index),
        [WORKER_COUNT_ENV]: String(options.count ?? 1),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Without a listener, a failed spawn would throw from the 'error' event.
    this.child.on('error', (err) => {
      this.stderr += `\n${err.message}`;
    });
    if (this.child.pid === undefined) {
      throw new Error(`could not start worker ${this.index} (${process.execPath} ${script})`);
    }
    this.pid = this.child.pid;
    killOnExit(this.child);
    liveWorkers.add(this);

    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onStdoutLine(line));

    this.exited = new Promise((resolveExit) => {
      this.child.once('close', (code, signal) => {
        this.hasExited = true;
        liveWorkers.delete(this);
        resolveExit({ code, signal });
      });
    });
    this.result = this.exited.then((exit) => this.parseResult(exit));
    // A rejected `result` that no caller awaits must not fail the run as an unhandled rejection.
    // Awaiting `result` still rejects.
    this.result.catch(() => {});
  }

  waitForOutput(pattern: string | RegExp, timeoutMs = DEFAULT_OUTPUT_TIMEOUT_MS): Promise<string> {
    const earlier = this.stdoutLines.find((line) => lineMatches(line, pattern));
    if (earlier !== undefined) {
      return Promise.resolve(earlier);
    }

    return new Promise((resolveLine, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: OutputWaiter = {
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolveLine(line);
        },
      };
      const fail = (reason: string) => {
        if (this.outputWaiters.delete(waiter)) {
          clearTimeout(timer);
          reject(new Error(`worker ${this.index} (pid ${this.pid}) ${reason}\n${this.describe()}`));
        }
      };

      this.outputWaiters.add(waiter);
      timer = setTimeout(
        () => fail(`printed no stdout line matching ${pattern} within ${timeoutMs} ms`),
        timeoutMs,
      );
      void this.exited.then(() => fail(`exited before printing a stdout line matching ${pattern}`));
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<WorkerExit> {
    if (!this.hasExited) {
      this.child.kill(signal);
    }
    return this.exited;
  }

  stderrTail(): string {
    return this.stderr;
  }

  /** Names the worker and shows its stderr tail, for error messages. */
  describe(): string {
    const tail = this.stderr.trimEnd() || '(empty)';
    return `--- worker ${this.index} (pid ${this.pid}) stderr tail:\n${tail}`;
  }

  private onStdoutLine(line: string): void {
    if (line.startsWith(RESULT_PREFIX)) {
      this.resultLines.push(line.slice(RESULT_PREFIX.length));
      return;
    }

    this.stdoutLines.push(line);
    if (this.stdoutLines.length > STDOUT_LINES_KEPT) {
      this.stdoutLines.shift();
    }
    for (const waiter of this.outputWaiters) {
      if (lineMatches(line, waiter.pattern)) {
        this.outputWaiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  }

  private parseResult(exit: WorkerExit): T {
    const name = `worker ${this.index} (pid ${this.pid})`;
    if (exit.code !== 0) {
      const outcome = exit.signal
        ? `was killed by ${exit.signal}`
        : `exited with code ${exit.code}`;
      throw new Error(`${name} ${outcome}\n${this.describe()}`);
    }
    if (this.resultLines.length !== 1) {
      throw new Error(
        `${name} printed ${this.resultLines.length} "${RESULT_PREFIX.trim()}" lines, expected 1\n${this.describe()}`,
      );
    }

    try {
      return JSON.parse(this.resultLines[0]!) as T;
    } catch (err) {
      throw new Error(`${name} printed a ${RESULT_PREFIX.trim()} line that is not JSON`, {
        cause: err,
      });
    }
  }
}

function lineMatches(line: string, pattern: string | RegExp): boolean {
  return typeof pattern === 'string' ? line.includes(pattern) : pattern.test(line);
}

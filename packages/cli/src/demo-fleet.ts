import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  CONFIG_PREFIX,
  type DemoWorkerConfig,
  type DemoWorkerResult,
  ERROR_PREFIX,
  GO_LINE,
  READY_LINE,
  RESULT_PREFIX,
} from './demo-protocol.js';
import { CommandFailedError } from './errors.js';
import { stopChild } from './redis-launcher.js';

/** Characters of a worker's stderr kept to explain a crash. */
const STDERR_TAIL_CHARS = 2_000;

/** Worker processes of the demo, started together and released together. */
export interface WorkerFleet {
  /** Resolves when every worker has set up its cache; rejects when one fails first. */
  ready: Promise<void>;
  /** Resolves with every worker's result, in index order; rejects when one fails. */
  results: Promise<DemoWorkerResult[]>;
  /** Sends the start signal to every worker. */
  go(): void;
  /** Stops every worker that still runs. */
  stop(): Promise<void>;
}

/**
 * Spawns `count` worker processes. Each gets its configuration on stdin and waits for `go()`, so
 * all of them ask for a token at the same moment, with none stored yet: a cold start.
 */
export function startWorkerFleet(
  count: number,
  configFor: (index: number) => DemoWorkerConfig,
): WorkerFleet {
  const workers = Array.from({ length: count }, (_, index) => startWorker(configFor(index)));
  const ready = Promise.all(workers.map((worker) => worker.ready)).then(() => undefined);
  const results = Promise.all(workers.map((worker) => worker.result));
  // The caller awaits one of the two and stops after a failure, so the other one's rejection
  // must not count as unhandled. The awaited promise still reports the failure.
  ready.catch(() => {});
  results.catch(() => {});

  return {
    ready,
    results,
    go: () => {
      for (const worker of workers) {
        worker.child.stdin?.write(`${GO_LINE}\n`);
      }
    },
    stop: async () => {
      await Promise.all(workers.map((worker) => stopChild(worker.child)));
    },
  };
}

interface StartedWorker {
  child: ChildProcess;
  ready: Promise<void>;
  result: Promise<DemoWorkerResult>;
}

function startWorker(config: DemoWorkerConfig): StartedWorker {
  const { command, args } = workerCommand();
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const name = `worker ${config.index}`;

  let stderrTail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_CHARS);
  });
  // A worker that exits early closes its stdin; the error is reported through `exit`.
  child.stdin?.on('error', () => {});

  const ready = deferred<void>();
  const result = deferred<DemoWorkerResult>();
  // Rejecting a settled promise changes nothing, so a late failure only reaches what is pending.
  const fail = (error: Error) => {
    ready.reject(error);
    result.reject(error);
  };

  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    if (line === READY_LINE) {
      ready.resolve();
    } else if (line.startsWith(RESULT_PREFIX)) {
      result.resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as DemoWorkerResult);
    } else if (line.startsWith(ERROR_PREFIX)) {
      fail(new CommandFailedError(`${name} failed: ${line.slice(ERROR_PREFIX.length)}`));
    }
  });
  child.once('error', (err) => {
    fail(new CommandFailedError(`${name} could not start: ${err.message}`, { cause: err }));
  });
  // 'close' comes after the last stdout line, unlike 'exit', so a RESULT line is never missed.
  child.once('close', (code, signal) => {
    const tail = lastLine(stderrTail);
    const how = signal ?? `code ${code}`;
    fail(
      new CommandFailedError(
        `${name} exited with ${how} before its result${tail ? `: ${tail}` : ''}`,
      ),
    );
  });

  child.stdin?.write(`${CONFIG_PREFIX}${JSON.stringify(config)}\n`);
  return { child, ready: ready.promise, result: result.promise };
}

/**
 * Returns how to run `demo-worker`: through tsx when this file is TypeScript source, as in the
 * repository, or with plain Node.js when it is the compiled JavaScript of a published package.
 */
function workerCommand(): { command: string; args: string[] } {
  const source = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(
    new URL(source ? './demo-worker.ts' : './demo-worker.js', import.meta.url),
  );
  const args = source ? ['--import', import.meta.resolve('tsx'), script] : [script];
  return { command: process.execPath, args };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

/** Creates a promise with its resolve and reject functions; its rejection never counts as unhandled. */
function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<T>((resolvePromise, rejectPromise) => {
    resolve = resolvePromise;
    reject = rejectPromise;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim();
}

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

/** The command under test, run from source through tsx as `pnpm demo` does. */
export const BIN_PATH = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

/** The package folder; `--import tsx` resolves tsx from there up to the repository root. */
export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/** Maximum run time of one command before the test kills it, in milliseconds. */
const RUN_TIMEOUT_MS = 60_000;

/** Redis server of the tests: the run's shared server, else the machine's default one. */
export const TEST_REDIS_URL = process.env.TOKENFLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The whole environment of the child; nothing is inherited from the test process. */
  env?: Record<string, string>;
  /** Written to stdin, which is then closed. Default: stdin is closed at once. */
  input?: string;
}

/** Returns a minimal environment of PATH and HOME, so no TOKENFLEET_* or QUIQUP_* variable leaks in. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra };
}

/** Runs `tokenfleet <args>` in a child process and collects its output and exit code. */
export function runTokenfleet(args: string[], options: RunOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN_PATH, ...args], {
      cwd: PACKAGE_DIR,
      env: options.env ?? cleanEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Returns a name unique to this test run, for key prefixes and queue names. */
export function uniqueName(kind: string): string {
  return `tokenfleet-cli-test-${kind}-${randomBytes(4).toString('hex')}`;
}

/** Deletes every key that matches `pattern`; the pattern must be unique to the test. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  for await (const keys of redis.scanStream({ match: pattern, count: 500 })) {
    const batch = keys as string[];
    if (batch.length > 0) {
      await redis.del(...batch);
    }
  }
}

/** Counts the keys that match `pattern`. */
export async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let count = 0;
  for await (const keys of redis.scanStream({ match: pattern, count: 500 })) {
    count += (keys as string[]).length;
  }
  return count;
}

export function openTestRedis(): Redis {
  return new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
}

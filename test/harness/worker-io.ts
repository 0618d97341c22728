/**
 * The worker side of `processes.ts`: a worker script imports these to read its place in the fleet
 * and to send its result. It runs under plain `node --import tsx`, so it must not import vitest.
 */

/** Start of the stdout line that carries a worker's JSON result; other stdout lines are logs. */
export const RESULT_PREFIX = 'RESULT ';

/** Environment variable with the worker's index in its fleet, from 0. */
export const WORKER_INDEX_ENV = 'TOKENFLEET_WORKER_INDEX';

/** Environment variable with the number of workers in the fleet. */
export const WORKER_COUNT_ENV = 'TOKENFLEET_WORKER_COUNT';

/** Returns this worker's index in its fleet, from 0. */
export function workerIndex(): number {
  return Number(requireEnv(WORKER_INDEX_ENV));
}

/** Returns the number of workers in this worker's fleet. */
export function workerCount(): number {
  return Number(requireEnv(WORKER_COUNT_ENV));
}

/** Returns the environment variable `name`, or throws when it is missing or empty. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`environment variable ${name} is missing; the test must pass it to the worker`);
  }
  return value;
}

/**
 * Writes `value` as one `RESULT <json>` line to stdout and resolves once the line is flushed, so
 * the worker may exit right after. Send exactly one result per process.
 */
export function reportResult(value: unknown): Promise<void> {
  const line = `${RESULT_PREFIX}${JSON.stringify(value)}\n`;
  return new Promise((resolve, reject) => {
    process.stdout.write(line, (err) => (err ? reject(err) : resolve()));
  });
}

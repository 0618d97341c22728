import { setTimeout as sleep } from 'node:timers/promises';

/** Default for `timeoutMs` of `waitFor()`. */
const DEFAULT_TIMEOUT_MS = 10_000;

/** Default for `intervalMs` of `waitFor()`. */
const DEFAULT_INTERVAL_MS = 50;

export interface WaitForOptions {
  /** Milliseconds after which `waitFor()` rejects. Default 10 000. */
  timeoutMs?: number;
  /** Milliseconds between two calls of the predicate. Default 50. */
  intervalMs?: number;
  /** What is awaited, for the timeout message, such as `"3 workers ready"`. */
  description?: string;
}

/**
 * Calls `predicate` until it returns a truthy value and resolves with that value. A predicate that
 * throws counts as not yet true. Rejects after `timeoutMs` with the last thrown error as `cause`.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;

  for (;;) {
    try {
      const value = await predicate();
      if (value) {
        return value;
      }
    } catch (err) {
      lastError = err;
    }

    if (Date.now() >= deadline) {
      const target = options.description ?? 'the condition';
      const reason = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`waitFor timed out after ${timeoutMs} ms waiting for ${target}${reason}`, {
        cause: lastError,
      });
    }
    await sleep(intervalMs);
  }
}

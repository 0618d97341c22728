/** Input of the retry delay computation for one failed renewal run. */
export interface RetryInput {
  /** Runs made so far, the failed one included (BullMQ's `attemptsMade` + 1 at this point). */
  attemptsMade: number;
  /** Ceiling of the first retry delay, in milliseconds. */
  baseDelayMs: number;
  /** Upper bound of the jittered delay, in milliseconds. */
  maxDelayMs: number;
  /** Wait that the token endpoint or the fleet cooldown asked for, in milliseconds. */
  retryAfterMs: number | undefined;
  /** Life left of the stored token, in milliseconds; 0 when none is stored, `undefined` when unknown. */
  remainingMs: number | undefined;
  /** Uniform random number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** Returned instead of a delay when a retry would start after the token has expired. */
export const STOP_RETRYING = -1;

/**
 * Computes the delay before the next renewal run: exponential back-off with full jitter (a
 * uniform delay between 0 and the doubled ceiling), at least `retryAfterMs`. Returns
 * {@link STOP_RETRYING}, which BullMQ reads as "fail the job now", when the delay would reach
 * the end of the token's life: from then on the lazy refresh in `getToken()` takes over.
 */
export function computeRetryDelayMs(input: RetryInput): number {
  const random = input.random ?? Math.random;
  const exponent = Math.max(0, input.attemptsMade - 1);
  const ceilingMs = Math.min(input.maxDelayMs, input.baseDelayMs * 2 ** exponent);
  let delayMs = Math.floor(random() * ceilingMs);

  if (input.retryAfterMs !== undefined && input.retryAfterMs > delayMs) {
    delayMs = Math.ceil(input.retryAfterMs);
  }
  if (input.remainingMs !== undefined && delayMs >= input.remainingMs) {
    return STOP_RETRYING;
  }
  return delayMs;
}

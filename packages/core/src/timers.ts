import { invalidArgument } from './errors.js';
/**
 * Node's timers store the delay in a signed 32-bit integer: a larger delay (Quiqup production
 * tokens live 7 days, renewals may wait longer) is silently replaced by 1 ms and fires at once.
 * Every timer here is armed with at most this delay and re-armed until the full wait has passed.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Options of {@link sleep} and {@link setLongTimeout}. */
export interface TimerOptions {
  /**
   * When true, the timer does not keep the Node.js event loop alive, so a pending wait never
   * keeps a process running at shutdown. Default: false, like `setTimeout`.
   */
  unref?: boolean;
}

/** A timer made by {@link setLongTimeout}. */
export interface LongTimeout {
  /** Cancels the timer. Calling it after the timer fired, or a second time, does nothing. */
  clear(): void;
}

/**
 * Calls `callback` once after `delayMs` milliseconds, for any finite delay. The wait is measured
 * on the monotonic clock (`performance.now()`), so a change of the wall clock does not move it.
 */
export function setLongTimeout(
  callback: () => void,
  delayMs: number,
  options: TimerOptions = {},
): LongTimeout {
  if (typeof callback !== 'function') {
    throw invalidArgument('ERR_INVALID_ARG_TYPE', '"callback" must be a function');
  }
  assertDelay(delayMs);

  const deadline = performance.now() + delayMs;
  let timer: NodeJS.Timeout | undefined;
  let cleared = false;

  const arm = (waitMs: number): void => {
    timer = setTimeout(onTimer, Math.min(waitMs, MAX_TIMER_DELAY_MS));
    if (options.unref === true) {
      timer.unref();
    }
  };

  function onTimer(): void {
    if (cleared) {
      return;
    }

    // Every chunk but the last ends before the deadline, and Node's millisecond timer clock may
    // fire the last one a fraction of a millisecond early, so re-arm for whatever is left.
    const remainingMs = deadline - performance.now();
    if (remainingMs > 0) {
      arm(remainingMs);
      return;
    }

    timer = undefined;
    cleared = true;
    callback();
  }

  arm(delayMs);

  return {
    clear(): void {
      cleared = true;
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
    },
  };
}

/**
 * Resolves after `delayMs` milliseconds, for any finite delay.
 *
 * When `signal` aborts first, the timer is cleared and the promise rejects with `signal.reason`
 * (an `AbortError` DOMException unless the caller passed another reason). An already aborted
 * signal rejects at once.
 */
export function sleep(
  delayMs: number,
  signal?: AbortSignal,
  options: TimerOptions = {},
): Promise<void> {
  assertDelay(delayMs);
  if (signal?.aborted) {
    return Promise.reject(signal.reason);
  }

  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      timeout.clear();
      reject(signal?.reason);
    };

    const timeout = setLongTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      },
      delayMs,
      options,
    );

    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function assertDelay(delayMs: number): void {
  if (typeof delayMs !== 'number') {
    throw invalidArgument(
      'ERR_INVALID_ARG_TYPE',
      `"delayMs" must be a number (received ${typeof delayMs})`,
    );
  }
  if (!Number.isFinite(delayMs) || delayMs < 0) {
    throw invalidArgument(
      'ERR_INVALID_ARG_VALUE',
      `"delayMs" must be a finite number >= 0 (received ${delayMs})`,
    );
  }
}

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_DELAY_MS, setLongTimeout, sleep } from '../src/timers.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Returns every delay handed to setTimeout so far. */
function armedDelays(spy: { mock: { calls: unknown[][] } }): number[] {
  return spy.mock.calls.map((call) => call[1] as number);
}

describe('MAX_TIMER_DELAY_MS', () => {
  it('is the largest delay Node stores', () => {
    expect(MAX_TIMER_DELAY_MS).toBe(2_147_483_647);
  });
});

describe('sleep', () => {
  describe('with fake timers', () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });

    afterEach(() => {
      // Restore the spy first: it wraps the fake setTimeout, which must not outlive the test.
      vi.restoreAllMocks();
      vi.useRealTimers();
    });

    it('waits 30 days without passing more than 2^31-1 to setTimeout', async () => {
      const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
      let resolved = false;
      const sleeping = sleep(30 * DAY_MS).then(() => {
        resolved = true;
      });

      await vi.advanceTimersByTimeAsync(30 * DAY_MS - 1);
      expect(resolved).toBe(false);

      await vi.advanceTimersByTimeAsync(1);
      await sleeping;
      expect(resolved).toBe(true);
      const delays = armedDelays(setTimeoutSpy);
      // 30 days is 2,592,000,000 ms: one full chunk and the rest.
      expect(delays).toEqual([MAX_TIMER_DELAY_MS, 30 * DAY_MS - MAX_TIMER_DELAY_MS]);
      expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_TIMER_DELAY_MS);
    });

    it('rejects with the abort reason and clears the timer', async () => {
      const controller = new AbortController();
      const reason = new Error('stopped');
      const sleeping = sleep(10 * DAY_MS, controller.signal);

      await vi.advanceTimersByTimeAsync(DAY_MS);
      controller.abort(reason);

      await expect(sleeping).rejects.toBe(reason);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('rejects at once for an aborted signal', async () => {
      const reason = new Error('already stopped');

      await expect(sleep(1000, AbortSignal.abort(reason))).rejects.toBe(reason);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('resolves a 0 ms sleep', async () => {
      const sleeping = sleep(0);

      await vi.advanceTimersByTimeAsync(0);

      await expect(sleeping).resolves.toBeUndefined();
    });
  });

  describe('when the caller asks for unref', () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it('unrefs the timer', async () => {
      const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');

      await sleep(1, undefined, { unref: true });

      const timer = setTimeoutSpy.mock.results[0]!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false);
    });

    it('keeps the timer referenced by default', async () => {
      const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');

      await sleep(1);

      const timer = setTimeoutSpy.mock.results[0]!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(true);
    });
  });

  describe('when the delay is invalid', () => {
    it.each([
      [-1, 'ERR_INVALID_ARG_VALUE', '"delayMs" must be a finite number >= 0 (received -1)'],
      [
        Number.NaN,
        'ERR_INVALID_ARG_VALUE',
        '"delayMs" must be a finite number >= 0 (received NaN)',
      ],
      [
        Number.POSITIVE_INFINITY,
        'ERR_INVALID_ARG_VALUE',
        '"delayMs" must be a finite number >= 0 (received Infinity)',
      ],
      ['5', 'ERR_INVALID_ARG_TYPE', '"delayMs" must be a number (received string)'],
    ])('throws for %s', (delayMs, code, message) => {
      expect(() => sleep(delayMs as number)).toThrow(
        expect.objectContaining({ name: 'TypeError', code, message }),
      );
    });
  });
});

describe('setLongTimeout', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it('calls back once after a delay beyond 2^31-1', async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const callback = vi.fn();
    const delayMs = 3 * MAX_TIMER_DELAY_MS + 5;

    setLongTimeout(callback, delayMs);
    await vi.advanceTimersByTimeAsync(delayMs - 1);
    expect(callback).toHaveBeenCalledTimes(0);

    await vi.advanceTimersByTimeAsync(1);
    expect(callback).toHaveBeenCalledTimes(1);

    await vi.advanceTimersByTimeAsync(10 * DAY_MS);
    expect(callback).toHaveBeenCalledTimes(1);
    expect(armedDelays(setTimeoutSpy)).toEqual([
      MAX_TIMER_DELAY_MS,
      MAX_TIMER_DELAY_MS,
      MAX_TIMER_DELAY_MS,
      5,
    ]);
  });

  it('never calls back after clear() between chunks', async () => {
    const callback = vi.fn();
    const timeout = setLongTimeout(callback, 60 * DAY_MS);

    await vi.advanceTimersByTimeAsync(MAX_TIMER_DELAY_MS + 1);
    timeout.clear();
    await vi.advanceTimersByTimeAsync(60 * DAY_MS);

    expect(callback).toHaveBeenCalledTimes(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does nothing on clear() after it fired', async () => {
    const callback = vi.fn();
    const timeout = setLongTimeout(callback, 10);
    await vi.advanceTimersByTimeAsync(10);

    timeout.clear();
    timeout.clear();

    expect(callback).toHaveBeenCalledTimes(1);
  });

  it('unrefs every chunk when asked', async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');

    setLongTimeout(() => {}, MAX_TIMER_DELAY_MS + 10, { unref: true });
    await vi.advanceTimersByTimeAsync(MAX_TIMER_DELAY_MS);

    const timers = setTimeoutSpy.mock.results.map((result) => result.value as NodeJS.Timeout);
    expect(timers).toHaveLength(2);
    expect(timers.map((timer) => timer.hasRef())).toEqual([false, false]);
    await vi.advanceTimersByTimeAsync(10);
  });

  it('throws for a callback that is not a function', () => {
    expect(() => setLongTimeout('later' as never, 10)).toThrow(
      expect.objectContaining({
        name: 'TypeError',
        code: 'ERR_INVALID_ARG_TYPE',
        message: '"callback" must be a function',
      }),
    );
  });
});

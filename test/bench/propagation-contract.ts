// What propagation-worker.ts and propagation.bench.ts agree on. It lives apart from the worker
// because importing the worker would run it.

/**
 * A message on the bare channel. A `ping` is timed. After `watch-events` the bare subscriber also
 * listens on the cache's events channel. `stop` ends the worker.
 */
export type BareMessage =
  | { kind: 'ping'; seq: number }
  | { kind: 'watch-events' }
  | { kind: 'stop' };

/** When one pod received one message or token, as a `sharedNow()` time. */
export interface ArrivalSample {
  /** The ping's `seq`, or the generation of the token. */
  id: number;
  at: number;
}

export interface PropagationWorkerResult {
  /** Arrivals of bare pings, after JSON.parse of the message. */
  bare: ArrivalSample[];
  /**
   * Arrivals of the `refreshed` message at the bare subscriber, after JSON.parse, by generation,
   * from the `watch-events` message on.
   */
  deliveries: ArrivalSample[];
  /** Arrivals of new tokens: the cache's `refreshed` event with origin `remote`. */
  tokens: ArrivalSample[];
  /** SHA-256 of the token in memory when the worker stopped, so the bench can check it. */
  lastTokenHash: string;
}

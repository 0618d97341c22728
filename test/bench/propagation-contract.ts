// What propagation-worker.ts and propagation.bench.ts agree on. It lives apart from the worker
// because importing the worker would run it.

/** A message of the bare pub/sub comparison; `stop` ends the worker. */
export type BareMessage = { kind: 'ping'; seq: number } | { kind: 'stop' };

/** When one pod received one message or token, as a `sharedNow()` time. */
export interface ArrivalSample {
  /** The ping's `seq`, or the generation of the token. */
  id: number;
  at: number;
}

export interface PropagationWorkerResult {
  /** Arrivals of bare pings, after JSON.parse of the message. */
  bare: ArrivalSample[];
  /** Arrivals of new tokens: the cache's `refreshed` event with origin `remote`. */
  tokens: ArrivalSample[];
  /** SHA-256 of the token in memory when the worker stopped, so the bench can check it. */
  lastTokenHash: string;
}

// A pod of the day test: a token cache on the test's Redis and mock OAuth server, with the
// renewal queue that real pods get. It prints READY, waits until the test has stored the first
// token, then calls getTokenInfo() and the protected resource in a loop until SIGTERM, and reports
// a DayPodResult.
//
// Environment: the DayPodEnv variables, plus TOKENFLEET_TEST_REDIS_URL (the test run's Redis).
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createAuthorizedFetch,
  createTokenCache,
  quiqup,
  type TokenSource,
} from '@tokenfleet/core';
import { RESOURCE_PATH } from '@tokenfleet/mock-oauth';
import { createRenewalQueue } from '@tokenfleet/refresher';
import { reportResult, requireEnv, workerIndex } from '../harness/worker-io.js';
import { type DayPodResult, READY_LINE } from './day-contract.js';

/**
 * How long a pod waits for the first token, in milliseconds. The test stores it once all eight
 * pods and the refresher have started, which takes about 10 s on two cores.
 */
const WARM_TOKEN_TIMEOUT_MS = 60_000;

/** Time between two checks for the first token, in milliseconds. */
const WARM_TOKEN_POLL_MS = 20;

/** Error messages kept for the result. `errorCount` counts the rest too. */
const ERRORS_KEPT = 5;

const redisUrl = requireEnv('TOKENFLEET_TEST_REDIS_URL');
const mockUrl = requireEnv('DAY_MOCK_URL');
const pauseMs = readInteger('DAY_PAUSE_MS');
const skewMs = readInteger('DAY_SKEW_MS');

// The loop runs until the test sends SIGTERM. The listener also keeps Node from exiting on it.
let stopRequested = false;
process.once('SIGTERM', () => {
  stopRequested = true;
});

const queue = createRenewalQueue({
  connection: redisUrl,
  queueName: requireEnv('DAY_QUEUE_NAME'),
  prefix: requireEnv('DAY_QUEUE_PREFIX'),
});
const cache = createTokenCache({
  redis: redisUrl,
  keyPrefix: requireEnv('DAY_KEY_PREFIX'),
  provider: quiqup({
    environment: 'staging',
    baseUrl: mockUrl,
    clientId: requireEnv('DAY_CLIENT_ID'),
    clientSecret: requireEnv('DAY_CLIENT_SECRET'),
  }),
  skewMs,
  renewal: queue,
});

const result: DayPodResult = {
  rounds: 0,
  sources: { memory: 0, redis: 0, upstream: 0 },
  statuses: {},
  unauthorizedAttempts: 0,
  localRefreshes: 0,
  remoteRefreshes: [],
  errors: [],
  errorCount: 0,
};
cache.on('refreshed', (event) => {
  if (event.origin === 'local') {
    result.localRefreshes += 1;
    return;
  }
  result.remoteRefreshes.push({ generation: event.generation, reason: event.reason });
});

// The authorized fetch takes its tokens through getTokenInfo() too, so that every token the pod
// sends is counted by where it came from.
const countingCache = {
  getToken: async () => (await getCountedTokenInfo()).token,
  invalidate: (token: string) => cache.invalidate(token),
};
const authorizedFetch = createAuthorizedFetch(countingCache, { fetch: countingFetch });
const resourceUrl = `${mockUrl}${RESOURCE_PATH}`;

try {
  await waitForWarmToken();

  while (!stopRequested) {
    await settle(getCountedTokenInfo());
    await settle(requestResource());
    result.rounds += 1;
    await sleep(pauseMs);
  }

  await reportResult(result);
} finally {
  await cache.close();
  await queue.close();
}

async function getCountedTokenInfo() {
  const info = await cache.getTokenInfo();
  const source: TokenSource = info.source;
  result.sources[source] += 1;
  return info;
}

async function requestResource(): Promise<void> {
  const response = await authorizedFetch(resourceUrl);
  // Reading the body frees the connection for the next request.
  await response.arrayBuffer();
  const status = String(response.status);
  result.statuses[status] = (result.statuses[status] ?? 0) + 1;
}

/** Sends one request and counts a 401, which the authorized fetch retries and so hides. */
async function countingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const response = await fetch(input, init);
  if (response.status === 401) {
    result.unauthorizedAttempts += 1;
  }
  return response;
}

/** Records the error of a call instead of letting it reject. */
async function settle(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    result.errorCount += 1;
    if (result.errors.length < ERRORS_KEPT) {
      result.errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  }
}

/**
 * Prints READY once the cache is connected and resolves when Redis holds a token, so that no call
 * of the loop waits for a token request.
 */
async function waitForWarmToken(): Promise<void> {
  const deadline = Date.now() + WARM_TOKEN_TIMEOUT_MS;
  let status = await cache.status();
  console.log(READY_LINE);
  while (status.generation === undefined) {
    if (Date.now() >= deadline) {
      throw new Error(
        `pod ${workerIndex()} found no stored token within ${WARM_TOKEN_TIMEOUT_MS} ms`,
      );
    }
    await sleep(WARM_TOKEN_POLL_MS);
    status = await cache.status();
  }
}

function readInteger(name: string): number {
  const text = requireEnv(name);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got "${text}"`);
  }
  return value;
}

// A fleet member for the fleet tests: a pod with its own token cache on the test's Redis and mock
// OAuth server. It prints READY, waits for the start signal, runs its mode (see FleetMode) and
// reports a FleetWorkerResult with the SHA-256 of the tokens it saw, never a token.
//
// Environment: the FleetWorkerEnv variables, plus TOKENFLEET_TEST_REDIS_URL (the test run's Redis).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAuthorizedFetch, createTokenCache, quiqup } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS, RESOURCE_PATH } from '@tokenfleet/mock-oauth';
import { createRenewalQueue, type RenewalQueue } from '@tokenfleet/refresher';
import { Redis } from 'ioredis';
import { reportResult, requireEnv, workerIndex } from '../harness/worker-io.js';
import {
  type FleetCacheOptions,
  type FleetMode,
  type FleetWorkerResult,
  type ObservedRefresh,
  READY_LINE,
} from './fleet-contract.js';

/** How long a worker waits for the start signal, in seconds. It stays below the 60 s test timeout. */
const START_TIMEOUT_SECONDS = 30;

/** Error messages kept for the result. `errorCount` counts the rest too. */
const ERRORS_KEPT = 5;

const redisUrl = requireEnv('TOKENFLEET_TEST_REDIS_URL');
const mode = requireEnv('FLEET_MODE') as FleetMode;
const calls = Number(requireEnv('FLEET_CALLS'));
if (!Number.isInteger(calls) || calls < 1) {
  throw new Error(`FLEET_CALLS must be a positive integer, got ${process.env.FLEET_CALLS}`);
}
const pauseMs = Number(process.env.FLEET_PAUSE_MS ?? 0);
const mockUrl = requireEnv('FLEET_MOCK_URL');
const resourceUrl = `${mockUrl}${RESOURCE_PATH}`;
const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;

// `continuous` runs until the test sends SIGTERM. The listener also keeps Node from exiting on it.
let stopRequested = false;
process.once('SIGTERM', () => {
  stopRequested = true;
});

let queue: RenewalQueue | undefined;
if (process.env.FLEET_QUEUE_NAME) {
  queue = createRenewalQueue({
    connection: redisUrl,
    queueName: process.env.FLEET_QUEUE_NAME,
    prefix: process.env.FLEET_QUEUE_PREFIX,
  });
}
const cacheOptions = JSON.parse(process.env.FLEET_CACHE_OPTIONS ?? '{}') as FleetCacheOptions;
const cache = createTokenCache({
  ...cacheOptions,
  redis: redisUrl,
  keyPrefix: requireEnv('FLEET_KEY_PREFIX'),
  provider: quiqup({
    environment: 'staging',
    baseUrl: mockUrl,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  }),
  renewal: queue,
});

const result: FleetWorkerResult = {
  mode,
  calls: 0,
  tokenHashes: [],
  statuses: {},
  unauthorizedAttempts: 0,
  errors: [],
  errorCount: 0,
  refreshes: [],
};
const tokenHashes = new Set<string>();
cache.on('refreshed', (event) => {
  const refresh: ObservedRefresh = {
    generation: event.generation,
    reason: event.reason,
    origin: event.origin,
  };
  result.refreshes.push(refresh);
});

// The authorized fetch gets its tokens through this wrapper, which records each token it sends.
const recordingCache = {
  getToken: async () => {
    const token = await cache.getToken();
    tokenHashes.add(createHash('sha256').update(token).digest('hex'));
    return token;
  },
  invalidate: (token: string) => cache.invalidate(token),
};
const authorizedFetch = createAuthorizedFetch(recordingCache, { fetch: countingFetch });

try {
  // A status read opens the cache's connection, so the start signal finds every pod connected.
  await cache.status();
  await waitForStartSignal(requireEnv('FLEET_START_LIST'));

  switch (mode) {
    case 'get-token':
      await Promise.all(Array.from({ length: calls }, () => settle(recordingCache.getToken())));
      break;
    case 'authorized-fetch':
      await Promise.all(Array.from({ length: calls }, () => settle(requestResource())));
      break;
    case 'continuous':
      await Promise.all(Array.from({ length: calls }, () => requestUntilStopped()));
      break;
    default:
      throw new Error(`unknown FLEET_MODE ${String(mode)}`);
  }

  result.tokenHashes = [...tokenHashes].sort();
  await reportResult(result);
} finally {
  await cache.close();
  await queue?.close();
}

async function requestUntilStopped(): Promise<void> {
  while (!stopRequested) {
    await settle(requestResource());
    if (pauseMs > 0) {
      await sleep(pauseMs);
    }
  }
}

/** Sends one request and counts a 401, which the authorized fetch retries and so hides. */
async function countingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const response = await fetch(input, init);
  if (response.status === 401) {
    result.unauthorizedAttempts += 1;
  }
  return response;
}

async function requestResource(): Promise<void> {
  const response = await authorizedFetch(resourceUrl);
  // Reading the body frees the connection for the next request.
  await response.arrayBuffer();
  const status = String(response.status);
  result.statuses[status] = (result.statuses[status] ?? 0) + 1;
}

/** Counts one call and records its error instead of letting it reject. */
async function settle(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    result.errorCount += 1;
    if (result.errors.length < ERRORS_KEPT) {
      result.errors.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    }
  } finally {
    result.calls += 1;
  }
}

/** Prints READY and blocks until the test pushes an entry onto `listKey`. */
async function waitForStartSignal(listKey: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await redis.ping();
    console.log(READY_LINE);
    const entry = await redis.blpop(listKey, START_TIMEOUT_SECONDS);
    if (entry === null) {
      throw new Error(
        `worker ${workerIndex()} got no start signal on ${listKey} within ${START_TIMEOUT_SECONDS} s`,
      );
    }
  } finally {
    redis.disconnect();
  }
}

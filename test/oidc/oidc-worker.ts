// A fleet member for oidc-provider.test.ts: builds a token cache with oauth2ClientCredentials()
// against the test's oidc-provider, calls getToken() concurrently and reports the SHA-256 of the
// tokens it received, never a token.
//
// Environment:
//   OIDC_TOKEN_URL, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_AUTH_METHOD  the client
//   OIDC_KEY_PREFIX             key prefix of the token cache
//   OIDC_CALLS                  concurrent getToken() calls (default 8)
//   OIDC_START_LIST             optional Redis list: print READY, then wait for one entry in it
//   TOKENFLEET_TEST_REDIS_URL   the test run's Redis server
import { createHash } from 'node:crypto';
import { type ClientAuthMethod, createTokenCache, oauth2ClientCredentials } from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { reportResult, requireEnv, workerIndex } from '../harness/worker-io.js';
import { type OidcWorkerResult, READY_LINE } from './oidc-worker-contract.js';

/** Default of OIDC_CALLS. */
const DEFAULT_CALLS = 8;

/** How long a worker waits for the start signal, in seconds. It stays below the 60 s test timeout. */
const START_TIMEOUT_SECONDS = 30;

const redisUrl = requireEnv('TOKENFLEET_TEST_REDIS_URL');
const calls = Number(process.env.OIDC_CALLS ?? DEFAULT_CALLS);
if (!Number.isInteger(calls) || calls < 1) {
  throw new Error(`OIDC_CALLS must be a positive integer, got ${process.env.OIDC_CALLS}`);
}

const cache = createTokenCache({
  redis: redisUrl,
  keyPrefix: requireEnv('OIDC_KEY_PREFIX'),
  provider: oauth2ClientCredentials({
    tokenUrl: requireEnv('OIDC_TOKEN_URL'),
    clientId: requireEnv('OIDC_CLIENT_ID'),
    clientSecret: requireEnv('OIDC_CLIENT_SECRET'),
    authMethod: requireEnv('OIDC_AUTH_METHOD') as ClientAuthMethod,
  }),
});

try {
  await waitForStartSignal(process.env.OIDC_START_LIST);

  const tokens = await Promise.all(Array.from({ length: calls }, () => cache.getToken()));
  const hashes = tokens.map((token) => createHash('sha256').update(token).digest('hex'));

  const result: OidcWorkerResult = {
    tokenHash: hashes[0]!,
    distinctTokens: new Set(hashes).size,
    calls,
  };
  await reportResult(result);
} finally {
  await cache.close();
}

/**
 * Prints READY and blocks until the test pushes an entry onto `listKey`, so that every worker sends
 * its first getToken() at about the same time. Without a list key the worker starts at once.
 */
async function waitForStartSignal(listKey: string | undefined): Promise<void> {
  if (listKey === undefined || listKey === '') {
    return;
  }

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

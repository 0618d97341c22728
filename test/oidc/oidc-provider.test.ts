// The generic provider against an independent OAuth2 server: oidc-provider 9.13.3 issues the
// tokens, several worker processes share them through Redis, and its introspection endpoint
// confirms that the shared token is valid.
import { createHash } from 'node:crypto';
import {
  type ClientAuthMethod,
  ClientRejectedError,
  createTokenCache,
  InvalidClientError,
  oauth2ClientCredentials,
  type TokenCache,
} from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { killAll, startWorker, type WorkerProcess } from '../harness/processes.js';
import { uniquePrefix } from '../harness/redis.js';
import { introspect, type OidcClient, type OidcServer, startOidcServer } from './oidc-server.js';
import { type OidcWorkerResult, READY_LINE } from './oidc-worker-contract.js';

const WORKER_SCRIPT = new URL('./oidc-worker.ts', import.meta.url);
const WORKER_COUNT = 4;
const CALLS_PER_WORKER = 8;
const AUTH_METHODS: ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

const redisUrl = inject('redisUrl');

describe('oauth2ClientCredentials with oidc-provider', () => {
  let server: OidcServer;
  let redis: Redis;
  let prefix: string;
  const caches: TokenCache[] = [];

  beforeEach(async () => {
    server = await startOidcServer();
    redis = new Redis(redisUrl);
    prefix = uniquePrefix('oidc-provider');
  });

  afterEach(async () => {
    await killAll();
    await Promise.all(caches.splice(0).map((cache) => cache.close()));
    await deleteKeys(redis, prefix);
    redis.disconnect();
    await server.close();
  });

  /** Creates a cache in the test process; afterEach closes it. */
  function openCache(client: OidcClient, options: { bodyFormat?: 'form' | 'json' } = {}) {
    const cache = createTokenCache({
      redis: redisUrl,
      keyPrefix: prefix,
      provider: oauth2ClientCredentials({
        tokenUrl: server.tokenUrl,
        clientId: client.clientId,
        clientSecret: client.clientSecret,
        authMethod: client.authMethod,
        bodyFormat: options.bodyFormat,
      }),
    });
    caches.push(cache);
    return cache;
  }

  describe.each(AUTH_METHODS)('when the client uses %s', (authMethod) => {
    it('shares one active token among 4 processes', async () => {
      const client = server.clients[authMethod];

      const results = await runFleet(server, client, prefix, redis);

      expect(server.counts().tokenRequests).toBe(1);
      expect(server.counts().tokensIssued).toBe(1);
      expect(server.counts().tokenErrors).toBe(0);
      const firstHash = results[0]!.tokenHash;
      expect(firstHash).toMatch(/^[0-9a-f]{64}$/);
      for (const result of results) {
        expect(result.tokenHash).toBe(firstHash);
        expect(result.distinctTokens).toBe(1);
        expect(result.calls).toBe(CALLS_PER_WORKER);
      }

      const info = await openCache(client).getTokenInfo();

      expect(info.source).toBe('redis');
      expect(sha256(info.token)).toBe(firstHash);
      expect(server.counts().tokenRequests).toBe(1);

      const introspection = await introspect(server, client, info.token);

      expect(introspection.active).toBe(true);
      expect(introspection.client_id).toBe(client.clientId);
      expect(introspection.token_type).toBe('Bearer');
      expect(introspection.iss).toBe(server.issuer);
      expect(server.counts().introspectionRequests).toBe(1);
    });
  });

  describe.each(AUTH_METHODS)('when the %s client sends a wrong secret', (authMethod) => {
    it('rejects with InvalidClientError after one request', async () => {
      const client = server.clients[authMethod];
      const wrongSecret = `${client.clientSecret}-wrong`;
      const cache = openCache({ ...client, clientSecret: wrongSecret });

      const error = await cache.getToken().catch((err: unknown) => err);

      expect(error).toBeInstanceOf(InvalidClientError);
      expect((error as InvalidClientError).code).toBe('TOKENFLEET_INVALID_CLIENT');
      expect((error as InvalidClientError).status).toBe(401);
      expect((error as InvalidClientError).oauthError).toBe('invalid_client');
      expect(JSON.stringify(error)).not.toContain(wrongSecret);
      expect(server.counts().tokenRequests).toBe(1);
      expect(server.counts().tokensIssued).toBe(0);
    });
  });

  describe('when the token request body is JSON', () => {
    it('rejects with invalid_request', async () => {
      const cache = openCache(server.clients.client_secret_basic, { bodyFormat: 'json' });

      const error = await cache.getToken().catch((err: unknown) => err);

      // oidc-provider accepts only application/x-www-form-urlencoded on POST /token, as
      // RFC 6749 section 4.4.2 defines the request.
      expect(error).toBeInstanceOf(ClientRejectedError);
      expect((error as ClientRejectedError).code).toBe('TOKENFLEET_CLIENT_REJECTED');
      expect((error as ClientRejectedError).status).toBe(400);
      expect((error as ClientRejectedError).oauthError).toBe('invalid_request');
      expect((error as ClientRejectedError).bodyPreview).toContain(
        'only application/x-www-form-urlencoded',
      );
      expect(server.counts().tokenRequests).toBe(1);
    });
  });
});

/**
 * Starts WORKER_COUNT workers, waits until each one blocks on the start list, then releases them
 * together, so their first getToken() calls race for the refresh.
 */
async function runFleet(
  server: OidcServer,
  client: OidcClient,
  prefix: string,
  redis: Redis,
): Promise<OidcWorkerResult[]> {
  const startList = `${prefix}:start-signal`;
  const workers: WorkerProcess<OidcWorkerResult>[] = [];
  for (let index = 0; index < WORKER_COUNT; index++) {
    workers.push(
      startWorker<OidcWorkerResult>({
        script: WORKER_SCRIPT,
        index,
        count: WORKER_COUNT,
        env: {
          TOKENFLEET_TEST_REDIS_URL: redisUrl,
          OIDC_TOKEN_URL: server.tokenUrl,
          OIDC_CLIENT_ID: client.clientId,
          OIDC_CLIENT_SECRET: client.clientSecret,
          OIDC_AUTH_METHOD: client.authMethod,
          OIDC_KEY_PREFIX: prefix,
          OIDC_CALLS: String(CALLS_PER_WORKER),
          OIDC_START_LIST: startList,
        },
      }),
    );
  }

  await Promise.all(workers.map((worker) => worker.waitForOutput(READY_LINE, 30_000)));
  await redis.rpush(startList, ...workers.map((worker) => String(worker.index)));

  return Promise.all(workers.map((worker) => worker.result));
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Deletes every key under `prefix`, so the shared server keeps no state from this test. */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } while (cursor !== '0');
}

// A pod of the propagation measurement: a warm tokenfleet cache and, on a connection of its own,
// a bare ioredis subscriber. It records when each new token reaches its memory and when each bare
// ping arrives, then reports both once the bench publishes `stop`.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_BARE_CHANNEL.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTokenCache, quiqup } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import { emitLine, sharedNow } from './bench-io.js';
import type {
  ArrivalSample,
  BareMessage,
  PropagationWorkerResult,
} from './propagation-contract.js';

/** How long the cache may take to serve from memory after its first token, in milliseconds. */
const WARM_UP_TIMEOUT_MS = 20_000;

const redisUrl = requireEnv('BENCH_REDIS_URL');
const bareChannel = requireEnv('BENCH_BARE_CHANNEL');
const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;

const cache = createTokenCache({
  redis: redisUrl,
  keyPrefix: requireEnv('BENCH_KEY_PREFIX'),
  provider: quiqup({
    environment: 'production',
    baseUrl: requireEnv('BENCH_MOCK_URL'),
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  }),
});
const subscriber = new Redis(redisUrl);

const bare: ArrivalSample[] = [];
const tokens: ArrivalSample[] = [];
cache.on('refreshed', (event) => {
  if (event.origin === 'remote') {
    tokens.push({ id: event.generation, at: sharedNow() });
  }
});

try {
  const stopped = new Promise<void>((resolve) => {
    subscriber.on('message', (_channel: string, text: string) => {
      const message = JSON.parse(text) as BareMessage;
      const at = sharedNow();
      if (message.kind === 'ping') {
        bare.push({ id: message.seq, at });
      } else {
        resolve();
      }
    });
  });
  await subscriber.subscribe(bareChannel);
  await warmUp();
  await emitLine('ready', { tokenId: cache.id });

  await stopped;
  const token = await cache.getToken();
  const result: PropagationWorkerResult = {
    bare,
    tokens,
    lastTokenHash: createHash('sha256').update(token).digest('hex'),
  };
  await reportResult(result);
} finally {
  subscriber.disconnect();
  await cache.close();
}

/** Calls until the cache serves from memory: the token is held and the subscription is up. */
async function warmUp(): Promise<void> {
  const deadline = Date.now() + WARM_UP_TIMEOUT_MS;
  while ((await cache.getTokenInfo()).source !== 'memory') {
    if (Date.now() > deadline) {
      throw new Error(`the cache did not serve from memory within ${WARM_UP_TIMEOUT_MS} ms`);
    }
    await sleep(20);
  }
}

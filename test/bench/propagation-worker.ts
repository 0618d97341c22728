// A pod of the propagation measurement: a warm tokenfleet cache and, on a connection of its own,
// a bare ioredis subscriber. It records when each new token reaches its memory and when each bare
// ping arrives, then reports both once the bench publishes `stop`. After `watch-events` the bare
// subscriber also listens on the cache's events channel, to time the `refreshed` message apart
// from the cache that handles it.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_KEY_PREFIX, BENCH_BARE_CHANNEL.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildTokenKeys, createTokenCache, quiqup } from '@tokenfleet/core';
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

const eventsChannel = buildTokenKeys(requireEnv('BENCH_KEY_PREFIX'), cache.id).events;
const bare: ArrivalSample[] = [];
const deliveries: ArrivalSample[] = [];
const tokens: ArrivalSample[] = [];
cache.on('refreshed', (event) => {
  if (event.origin === 'remote') {
    tokens.push({ id: event.generation, at: sharedNow() });
  }
});

try {
  const stopped = new Promise<void>((resolve) => {
    subscriber.on('message', (channel: string, text: string) => {
      if (channel === eventsChannel) {
        const event = JSON.parse(text) as { type: string; g?: number };
        if (event.type === 'refreshed' && typeof event.g === 'number') {
          deliveries.push({ id: event.g, at: sharedNow() });
        }
        return;
      }
      const message = JSON.parse(text) as BareMessage;
      const at = sharedNow();
      if (message.kind === 'ping') {
        bare.push({ id: message.seq, at });
      } else if (message.kind === 'watch-events') {
        void subscriber.subscribe(eventsChannel);
      } else {
        resolve();
      }
    });
  });
  // A SUBSCRIBE sent before the connection is ready can break ioredis's ready check, which then
  // sends INFO on a connection in subscriber mode.
  if (subscriber.status !== 'ready') {
    await once(subscriber, 'ready');
  }
  await subscriber.subscribe(bareChannel);
  await warmUp();
  await emitLine('ready', { tokenId: cache.id });

  await stopped;
  const token = await cache.getToken();
  const result: PropagationWorkerResult = {
    bare,
    deliveries,
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

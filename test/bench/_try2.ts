import { performance } from 'node:perf_hooks';
import { createTokenCache, quiqup } from '@tokenfleet/core';
import { startMockOAuthServer, DEFAULT_MOCK_OAUTH_OPTIONS } from '@tokenfleet/mock-oauth';
import { pino } from 'pino';
import { spawnRedisServer } from '../harness/redis.js';
const server = await spawnRedisServer();
const mock = await startMockOAuthServer({ preset: 'production' });
mock.setFaults({ latencyMs: 50 });
const c = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;
const t0 = performance.now();
const logger = pino({ level: 'debug', timestamp: () => `,"t":${(performance.now()-t0).toFixed(1)}` });
for (const n of [1, 500, 1, 500, 1, 500]) {
  const cache = createTokenCache({ redis: server.url, keyPrefix: 'x' + Math.random(), logger: n === 1 ? undefined : logger,
    provider: quiqup({ environment: 'production', baseUrl: mock.url, clientId: c.clientId, clientSecret: c.clientSecret }) });
  await cache.status();
  await new Promise(r => setTimeout(r, 200));
  const s = performance.now();
  console.log('start', (s - t0).toFixed(1));
  await Promise.all(Array.from({ length: n }, () => cache.getToken()));
  console.log(n, 'callers took', (performance.now() - s).toFixed(1));
  await cache.close();
}
await mock.close(); await server.stop();

// Renews 1,000 tokens on one queue and prints the report as JSON:
//
//   node --import tsx test/renewal/many-tokens.ts [count]
//
// It uses the Redis server in TOKENFLEET_TEST_REDIS_URL or REDIS_URL, or starts a redis-server
// of its own on a free port. many-tokens.test.ts runs the same scenario with fewer tokens.
import { spawnRedisServer } from '../harness/redis-server.js';
import { MANY_TOKENS_SETTINGS, runManyTokens } from './many-tokens-run.js';

const count = Number(process.argv[2] ?? 1_000);
if (!Number.isSafeInteger(count) || count < 1) {
  process.stderr.write(
    `usage: many-tokens.ts [count], a positive integer (got ${process.argv[2]})\n`,
  );
  process.exit(2);
}

const givenUrl = process.env.TOKENFLEET_TEST_REDIS_URL ?? process.env.REDIS_URL;
const server = givenUrl === undefined ? await spawnRedisServer() : undefined;
try {
  const report = await runManyTokens({
    ...MANY_TOKENS_SETTINGS,
    redisUrl: givenUrl ?? server!.url,
    count,
  });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await server?.stop();
}

import { Redis } from 'ioredis';
import { spawnRedisServer } from '../harness/redis.js';
import { runMemory } from './memory.bench.js';
import { runRedisCost } from './redis-cost.bench.js';
import { renderSectionForTerminal } from './report.js';
const server = await spawnRedisServer();
const admin = new Redis(server.url);
try {
  const ctx = { redisUrl: server.url, admin, log: console.log };
  const c = await runRedisCost(ctx, { rounds: 3, calls: 100000 });
  console.log(renderSectionForTerminal(c.section), JSON.stringify(c.rounds));
  const s = await runMemory(ctx, { tokens: 1000, rounds: 2 });
  console.log(renderSectionForTerminal(s));
} finally { await admin.quit(); await server.stop(); }

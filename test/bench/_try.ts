import { Redis } from 'ioredis';
import { spawnRedisServer } from '../harness/redis.js';
import { runHotPath } from './hot-path.bench.js';
import { renderSectionForTerminal } from './report.js';
const server = await spawnRedisServer();
const admin = new Redis(server.url);
try {
  const s = await runHotPath({ redisUrl: server.url, admin, log: console.log }, { rounds: 5, roundMs: 300 });
  console.log(renderSectionForTerminal(s));
} finally { await admin.quit(); await server.stop(); }

import { Redis } from 'ioredis';
import { spawnRedisServer } from '../harness/redis.js';
import { runRenewal } from './renewal.bench.js';
import { renderSectionForTerminal } from './report.js';
const server = await spawnRedisServer();
const admin = new Redis(server.url);
try {
  const s = await runRenewal({ redisUrl: server.url, admin, log: console.log }, { pods: 8, renewals: Number(process.argv[2] ?? 6) });
  for (const x of s.sections) console.log(renderSectionForTerminal(x));
  console.log(JSON.stringify(s.requestsPerToken));
} finally { await admin.quit(); await server.stop(); }

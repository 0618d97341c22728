import { Redis } from 'ioredis';
import { spawnRedisServer } from '../harness/redis.js';
import { runColdStart } from './cold-start.bench.js';
const server = await spawnRedisServer();
const admin = new Redis(server.url);
const variants = (process.argv[2] ?? 'tokenfleet').split(',') as any;
const F = (process.argv[3] ?? '1').split(',').map(Number);
try {
  const s = await runColdStart({ redisUrl: server.url, admin, log: console.log }, { processCounts: F, callers: 500, repetitions: 4, upstreamLatencyMs: 50, bareP99Ms: 5, variants });
  console.log(JSON.stringify(s.rounds.map(r=>[r.variant,r.processes,r.tokenRequests,Math.round(r.p50Ms),Math.round(r.p99Ms),Math.round(r.maxMs),r.errorCount])));
} finally { await admin.quit(); await server.stop(); }

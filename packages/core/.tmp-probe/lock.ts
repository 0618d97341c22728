import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { createRedlockFleetLock } from '../src/fleet-lock.js';
import { spawnRedisServer } from '../../../test/harness/index.js';
const srv = await spawnRedisServer({ extraArgs: ['--requirepass', 'right-pw'] });
const r = new Redis(srv.url.replace('redis://', 'redis://:secret-pw-77@'), { maxRetriesPerRequest: 1 });
r.on('error', () => {});
const lock = createRedlockFleetLock([r], 1000);
try { await lock.tryAcquire('x', 5000); } catch (e) {
  const text = inspect(e, { depth: 6 }) + JSON.stringify(e);
  console.log(e instanceof Error && e.name, e.message, 'leaks:', text.includes('secret-pw-77'));
}
r.disconnect(); await srv.stop();

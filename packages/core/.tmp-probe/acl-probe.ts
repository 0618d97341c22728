import { Redis } from 'ioredis';
import { spawnRedisServer } from '../../../test/harness/index.js';
const srv = await spawnRedisServer();
const admin = new Redis(srv.url);
await admin.call('ACL', 'SETUSER', 'nochan', 'on', '>pw1', '~*', '+@all', 'resetchannels');
await admin.call('ACL', 'SETUSER', 'nopubsub', 'on', '>pw2', '~*', '&*', '+@all', '-@pubsub');
await admin.call('ACL', 'SETUSER', 'noincr', 'on', '>pw3', '~*', '&*', '+@all', '-incr');
await admin.call('ACL', 'SETUSER', 'nokeys', 'on', '>pw4', '&*', '+@all');
const port = srv.port;
async function probe(user: string, pw: string, fn: (r: Redis) => Promise<unknown>) {
  const r = new Redis({ host: '127.0.0.1', port, username: user, password: pw, maxRetriesPerRequest: 1, lazyConnect: false });
  r.on('error', (e) => console.log('EVENT', user, e.message, (e as any).command));
  try { console.log(user, 'ok', await fn(r)); } catch (e: any) { console.log(user, 'ERR', e.name, JSON.stringify(e.message), e.code, JSON.stringify(e.command), Object.keys(e)); }
  r.disconnect();
}
const script = "redis.call('SET', KEYS[1], 'x') return redis.call('PUBLISH', ARGV[1], 'm')";
await probe('nochan', 'pw1', (r) => r.eval(script, 1, 'p:{a}:token', 'p:{a}:events'));
await probe('nochan', 'pw1', (r) => r.publish('p:{a}:events', 'x'));
await probe('nochan', 'pw1', (r) => r.subscribe('p:{a}:events'));
await probe('nopubsub', 'pw2', (r) => r.eval(script, 1, 'p:{a}:token', 'p:{a}:events'));
await probe('nopubsub', 'pw2', (r) => r.subscribe('p:{a}:events'));
await probe('noincr', 'pw3', (r) => r.incr('p:{a}:generation'));
await probe('nokeys', 'pw4', (r) => r.get('p:{a}:generation'));
await probe('nokeys', 'pw4', (r) => r.eval(script, 1, 'p:{a}:token', 'p:{a}:events'));
await probe('nochan', 'wrong', (r) => r.get('x'));
const r2 = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
await admin.call('CONFIG', 'SET', 'requirepass', 'pp');
await probe('default', '', (r) => r.get('x'));
admin.disconnect(); r2.disconnect();
await srv.stop();

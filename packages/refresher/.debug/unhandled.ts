import { quiqup } from '@tokenfleet/core';
import { Redis } from 'ioredis';
import { startRefresher } from '../src/index.js';

const original = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, command: any, stream?: any) {
  const site = new Error('call site').stack;
  const promise = (command as any).promise as Promise<unknown>;
  promise.catch((err: any) => { err.callSite = `${command.name} ${site}`; });
  return original.call(this, command, stream);
};
process.on('unhandledRejection', (err: any) => {
  console.log('UNHANDLED', err.message, err.callSite);
});
const client = new Redis('redis://127.0.0.1:6379');
const r = await startRefresher({ redis: client, providers: [quiqup({ environment: 'staging', baseUrl: 'http://127.0.0.1:9', clientId: 'x', clientSecret: 'y' })], queueName: 'dbg-' + Date.now(), port: 0 });
client.disconnect();
await fetch(`${r.url}/healthz`).then((x) => x.text()).then(console.log);
await r.close();

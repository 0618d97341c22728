import { resolveTokenCacheOptions } from '../src/options.js';
const base = { redis: 'redis://127.0.0.1:1', provider: { requestToken() {} } as never };
for (const o of [{ requestTimeoutMs: 5000, lockTtlMs: 6000 }, { requestTimeoutMs: 5000, lockTtlMs: 6063 }, { requestTimeoutMs: 100000, lockTtlMs: 101000 }, { requestTimeoutMs: 2**31-1 }, { redisTimeoutMs: 2**31 }, {retry: 5}, {renewal: {}}, {metricsRegistry: {}}, {sealingKeys: [{id:'k', key: new Uint8Array(16)}]}, {sealingKeys: []}, {sealingKeys: 'x'}, {refreshAheadMs: 'x'}, {refreshAheadMs: 2**31}, {requestTimeoutMs: 29500}]) {
  try { const r = resolveTokenCacheOptions({ ...base, ...o } as never); console.log('OK', JSON.stringify(o), r.lockTtlMs, r.lockWaitTimeoutMs); } catch (e: any) { console.log(e.code, e.message); }
}

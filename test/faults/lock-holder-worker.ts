// A pod for lock-holder.test.ts that takes the fleet lock and refreshes, so the test can kill or
// freeze it while it holds the lock. It reports what its getTokenInfo() ended with and whether
// its own write was fenced, never a token.
//
// Argument: the mode.
//   hold               Refresh normally. The test kills or stops the process during the request.
//   stop-after-grant   Stop with SIGSTOP right after the token response is read, so the pause
//                      falls between the response and the fenced write. The test sends SIGCONT
//                      once another pod has written a newer generation.
//
// Environment:
//   FAULT_REDIS_URL, FAULT_TOKEN_BASE_URL, FAULT_KEY_PREFIX   where the pod works
//   FAULT_LOCK_TTL_MS, FAULT_REQUEST_TIMEOUT_MS               the cache's lock settings
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { createTokenCache, quiqup, type TokenProvider } from '@tokenfleet/core';
import { pino } from 'pino';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import {
  type LockHolderResult,
  STOPPING_LINE,
  TOKEN_REQUEST_LINE,
} from './lock-holder-contract.js';

const mode = process.argv[2];
if (mode !== 'hold' && mode !== 'stop-after-grant') {
  throw new Error(`unknown mode ${mode}; expected hold or stop-after-grant`);
}

const messages: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() !== '') {
          messages.push((JSON.parse(text) as { msg: string }).msg);
        }
      }
      callback();
    },
  }),
);

const quiqupProvider = quiqup({
  environment: 'staging',
  baseUrl: requireEnv('FAULT_TOKEN_BASE_URL'),
  clientId: 'demo-client',
  clientSecret: 'demo-secret',
});
const provider: TokenProvider = {
  name: quiqupProvider.name,
  identity: quiqupProvider.identity,
  label: quiqupProvider.label,
  sealingSecret: quiqupProvider.sealingSecret,
  async requestToken(context) {
    console.log(TOKEN_REQUEST_LINE);
    const grant = await quiqupProvider.requestToken(context);
    if (mode === 'stop-after-grant') {
      console.log(STOPPING_LINE);
      // The process stops here until the test sends SIGCONT, and no timer fires in between.
      process.kill(process.pid, 'SIGSTOP');
    }
    return grant;
  },
};

const cache = createTokenCache({
  redis: requireEnv('FAULT_REDIS_URL'),
  keyPrefix: requireEnv('FAULT_KEY_PREFIX'),
  provider,
  lockTtlMs: Number(requireEnv('FAULT_LOCK_TTL_MS')),
  requestTimeoutMs: Number(requireEnv('FAULT_REQUEST_TIMEOUT_MS')),
  logger,
});
const refreshedOrigins: string[] = [];
cache.on('refreshed', (event) => refreshedOrigins.push(event.origin));

try {
  const info = await cache.getTokenInfo();
  const result: LockHolderResult = {
    tokenHash: createHash('sha256').update(info.token).digest('hex'),
    generation: info.generation,
    source: info.source,
    localRefreshes: refreshedOrigins.filter((origin) => origin === 'local').length,
    writeFenced: messages.includes('token write rejected by a newer generation'),
  };
  await reportResult(result);
} finally {
  await cache.close();
}

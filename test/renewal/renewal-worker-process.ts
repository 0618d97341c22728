// A renewal worker in a process of its own: one cache per client of the mock and a BullMQ worker
// on the test's queue. It prints its pino log lines on stdout, READY once connected, and on
// SIGTERM it closes everything and reports the outcomes of its runs. Tests kill it with SIGKILL
// or stop it with SIGSTOP to play a worker that dies or stalls mid-job.
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { createRenewalQueue, startRenewalWorker } from '@tokenfleet/refresher';
import { pino } from 'pino';
import { reportResult, requireEnv } from '../harness/worker-io.js';
import {
  type RenewalWorkerConfig,
  type RenewalWorkerResult,
  WORKER_CONFIG_ENV,
  WORKER_READY_LINE,
} from './worker-contract.js';

const config = JSON.parse(requireEnv(WORKER_CONFIG_ENV)) as RenewalWorkerConfig;
const warnings: string[] = [];
process.on('warning', (warning) => {
  warnings.push(warning.name);
});

// Synchronous writes keep every line when the process exits right after shutting down.
const logger = pino(
  { level: 'info', base: { pid: process.pid } },
  pino.destination({ dest: 1, sync: true }),
);
const queue = createRenewalQueue({
  connection: config.redisUrl,
  queueName: config.queueName,
  prefix: config.queuePrefix,
});
const caches: TokenCache[] = config.clients.map((client) =>
  createTokenCache({
    ...config.cacheOptions,
    redis: config.redisUrl,
    provider: quiqup({
      environment: 'staging',
      baseUrl: config.mockUrl,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
    }),
    keyPrefix: config.keyPrefix,
    renewal: queue,
    logger,
  }),
);
const worker = startRenewalWorker({
  ...config.workerOptions,
  connection: config.redisUrl,
  caches,
  queueName: config.queueName,
  prefix: config.queuePrefix,
  logger,
});

const outcomes: string[] = [];
worker.bullWorker.on('completed', (_job, result) => {
  outcomes.push(result.outcome);
});

process.once('SIGTERM', () => {
  void shutDown();
});

await worker.waitUntilReady();
process.stdout.write(`${WORKER_READY_LINE}\n`);

async function shutDown(): Promise<void> {
  await worker.close();
  await Promise.all(caches.map((cache) => cache.close()));
  await queue.close();
  const result: RenewalWorkerResult = { outcomes, warnings };
  await reportResult(result);
  process.exit(0);
}

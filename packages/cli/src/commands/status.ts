import { inspectTokens, type TokenStatus } from '@tokenfleet/core';
import { createRenewalQueue, type RenewalQueue } from '@tokenfleet/refresher';
import { optionOrEnv, type ParsedOptions } from '../args.js';
import {
  logLevelOption,
  PROVIDER_OPTIONS,
  REDIS_OPTIONS,
  type RedisConfig,
  resolveLogLevel,
  resolveProviderConfig,
  resolveRedisConfig,
} from '../config.js';
import { EXIT_OK } from '../errors.js';
import { createCliLogger } from '../logging.js';
import { type CliIo, formatDuration, formatTable, writeJson, writeLine } from '../output.js';
import { closeRedis, connectRedis } from '../redis-connection.js';
import { openTokenSession } from '../token-session.js';
import type { Command } from './command.js';

/** One row of `tokenfleet status`; the JSON output has the same fields. */
export interface TokenStatusRow {
  tokenId: string;
  label: string | null;
  /** Life left of the stored token, in milliseconds, or null when Redis contains none. */
  remainingMs: number | null;
  /** Generation of the stored token, or null when Redis contains none. */
  generation: number | null;
  /** Refresh attempts so far: the generation counter. */
  generationCounter: number;
  /** Wall-clock time of the last refresh, ISO 8601, from the refreshing pod's clock. */
  refreshedAt: string | null;
  refreshReason: string | null;
  cooldownMs: number;
  /** Renewal job of the stored generation and its BullMQ state (`unknown`: no such job). */
  renewalJob: { id: string; state: string } | null;
}

/** `tokenfleet status`: every token under the key prefix, with its renewal job. */
export const statusCommand: Command = {
  spec: {
    name: 'status',
    title: 'List the tokens in Redis, without the tokens.',
    summary:
      'Lists every token under the key prefix: life left, generation, last refresh, cooldown ' +
      'and the state of its renewal job. Needs no client secret and never prints a token.',
    usage: 'tokenfleet status [options]',
    options: {
      json: {
        type: 'boolean',
        description: 'Print {"keyPrefix","queue","tokens":[...]} as one JSON line.',
      },
      ...REDIS_OPTIONS,
      ...PROVIDER_OPTIONS,
      'log-level': logLevelOption('silent', 'stderr'),
    },
    notes: [
      'Tokens are found by a SCAN of <prefix>:{*}:generation. When QUIQUP_CLIENT_ID and ' +
        'QUIQUP_CLIENT_SECRET are set, the token of that client is listed with its label even ' +
        'before its first refresh and after an invalidation.',
    ],
  },

  async run(values, io) {
    const config = resolveRedisConfig(values, io.env);
    const withProvider = hasProviderSecret(values, io.env);
    // Resolve the provider now so that a usage error comes before any connection.
    const provider = withProvider ? resolveProviderConfig(values, io.env) : undefined;
    const logger = createCliLogger(resolveLogLevel(values, io.env, 'silent'), 2);

    const redis = await connectRedis(config.redisUrl, { reconnect: false, logger });
    const queue = createRenewalQueue({ connection: redis, queueName: config.queueName, logger });
    let rows: TokenStatusRow[];
    try {
      const statuses = await inspectTokens(redis, { keyPrefix: config.keyPrefix });
      if (provider) {
        const session = await openTokenSession({
          redis: config,
          provider,
          renewal: false,
          reconnect: false,
          logger,
        });
        try {
          // The cache's own status has the client's label even when Redis contains no record to label it.
          const own = await session.cache.status();
          const index = statuses.findIndex((status) => status.tokenId === own.tokenId);
          if (index === -1) {
            statuses.push(own);
          } else {
            statuses[index] = own;
          }
        } finally {
          await session.close();
        }
      }
      rows = await Promise.all(statuses.map((status) => toRow(status, queue)));
    } finally {
      await queue.close();
      await closeRedis(redis);
    }

    printStatus(io, config, rows, values.json === true);
    return EXIT_OK;
  },
};

async function toRow(status: TokenStatus, queue: RenewalQueue): Promise<TokenStatusRow> {
  let renewalJob: TokenStatusRow['renewalJob'] = null;
  if (status.generation !== undefined) {
    const state = await queue.getRenewalJobState(status.tokenId, status.generation);
    renewalJob = { id: `renew-${status.tokenId}-${status.generation}`, state };
  }
  return {
    tokenId: status.tokenId,
    label: status.label ?? null,
    remainingMs: status.remainingMs ?? null,
    generation: status.generation ?? null,
    generationCounter: status.generationCounter,
    refreshedAt:
      status.refreshedAt === undefined ? null : new Date(status.refreshedAt).toISOString(),
    refreshReason: status.reason ?? null,
    cooldownMs: status.cooldownMs,
    renewalJob,
  };
}

function printStatus(io: CliIo, config: RedisConfig, rows: TokenStatusRow[], json: boolean): void {
  if (json) {
    writeJson(io.stdout, { keyPrefix: config.keyPrefix, queue: config.queueName, tokens: rows });
    return;
  }
  if (rows.length === 0) {
    writeLine(io.stdout, `no tokens under key prefix '${config.keyPrefix}'`);
    return;
  }

  const now = Date.now();
  const header = [
    'TOKEN ID',
    'LABEL',
    'REMAINING',
    'GENERATION',
    'LAST REFRESH',
    'COOLDOWN',
    'RENEWAL JOB',
  ];
  const cells = rows.map((row) => [
    row.tokenId,
    row.label ?? '-',
    row.remainingMs === null ? 'none' : formatDuration(row.remainingMs),
    row.generation === null ? `- (counter ${row.generationCounter})` : String(row.generation),
    formatLastRefresh(row, now),
    row.cooldownMs > 0 ? formatDuration(row.cooldownMs) : 'none',
    row.renewalJob === null
      ? '-'
      : row.renewalJob.state === 'unknown'
        ? 'none'
        : row.renewalJob.state,
  ]);
  io.stdout.write(formatTable(header, cells));
}

function formatLastRefresh(row: TokenStatusRow, now: number): string {
  if (row.refreshedAt === null) {
    return '-';
  }
  const age = formatDuration(now - Date.parse(row.refreshedAt));
  return row.refreshReason === null ? `${age} ago` : `${age} ago (${row.refreshReason})`;
}

/** Returns whether both the client id and the secret are set, so the client can be listed. */
function hasProviderSecret(values: ParsedOptions, env: NodeJS.ProcessEnv): boolean {
  const clientId = optionOrEnv(values, 'client-id', 'QUIQUP_CLIENT_ID', env);
  return clientId !== undefined && (env.QUIQUP_CLIENT_SECRET ?? '') !== '';
}

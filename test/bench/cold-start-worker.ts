// A pod of the cold-start measurement. It takes commands from the bench (see ColdStartCommand):
// for each round it builds one variant's client with nothing cached, waits for the common start
// time, starts all its callers at once and reports when each caller held a token.
//
// Environment: BENCH_REDIS_URL, BENCH_MOCK_URL, BENCH_CONTROL_PREFIX.
import { createHash } from 'node:crypto';
import { OAuth2Client, OAuth2Fetch } from '@badgateway/oauth2-client';
import { createTokenCache, quiqup, type TokenCache } from '@tokenfleet/core';
import { DEFAULT_MOCK_OAUTH_OPTIONS, TOKEN_PATH } from '@tokenfleet/mock-oauth';
import { Redis } from 'ioredis';
import { reportResult, requireEnv, workerIndex } from '../harness/worker-io.js';
import { CommandReader, commandList, emitLine, sharedNow, waitUntil } from './bench-io.js';
import type {
  ColdStartCommand,
  ColdStartVariant,
  PreparedReply,
  RoundReply,
} from './cold-start-contract.js';

/** Error messages kept per round; `errorCount` has them all. */
const ERRORS_KEPT = 3;

/** Margin by which the no-lock variant stores a token shorter than its `expires_in`, in milliseconds. */
const NO_LOCK_SKEW_MS = 60_000;

const redisUrl = requireEnv('BENCH_REDIS_URL');
const mockUrl = requireEnv('BENCH_MOCK_URL');
const client = DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]!;

/** One variant's client for one round. */
interface Pod {
  getToken(): Promise<string>;
  close(): Promise<void>;
}

const commands = new CommandReader(
  redisUrl,
  commandList(requireEnv('BENCH_CONTROL_PREFIX'), workerIndex()),
);
let rounds = 0;
let pod: Pod | undefined;

try {
  for (;;) {
    const command = await commands.next<ColdStartCommand>();
    if (command.type === 'exit') {
      break;
    }
    if (command.type === 'prepare') {
      await pod?.close();
      const prepared = await preparePod(command.variant, command.keyPrefix);
      pod = prepared.pod;
      await emitLine(`prepared-${command.round}`, prepared.reply);
      continue;
    }

    if (pod === undefined) {
      throw new Error(`round ${command.round} started before a prepare command`);
    }
    const reply = await runRound(pod, command.startAt, command.callers);
    await pod.close();
    pod = undefined;
    rounds += 1;
    await emitLine(`round-${command.round}`, reply);
  }
  await reportResult({ rounds });
} finally {
  await pod?.close();
  commands.close();
}

async function runRound(target: Pod, startAt: number, callers: number): Promise<RoundReply> {
  const reply: RoundReply = { latenciesMs: [], errorCount: 0, errors: [], tokenHashes: [] };
  const hashes = new Set<string>();
  const call = async () => {
    try {
      const token = await target.getToken();
      reply.latenciesMs.push(Math.round((sharedNow() - startAt) * 1000) / 1000);
      hashes.add(createHash('sha256').update(token).digest('hex').slice(0, 12));
    } catch (err) {
      reply.errorCount += 1;
      if (reply.errors.length < ERRORS_KEPT) {
        reply.errors.push(describeError(err));
      }
    }
  };

  await waitUntil(startAt);
  await Promise.all(Array.from({ length: callers }, call));
  reply.tokenHashes = [...hashes];
  return reply;
}

/** Names the error and, for a failed fetch, the network error code under it. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) {
    return String(err);
  }
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause === undefined ? '' : ` (${cause.code ?? cause.message})`;
  return `${err.name}: ${err.message}${detail}`;
}

async function preparePod(
  variant: ColdStartVariant,
  keyPrefix: string,
): Promise<{ pod: Pod; reply: PreparedReply }> {
  switch (variant) {
    case 'tokenfleet':
      return prepareTokenfleet(keyPrefix);
    case 'tokenfleet-joined':
      return joinConcurrentCalls(await prepareTokenfleet(keyPrefix));
    case 'oauth2-fetch':
      return { pod: prepareOAuth2Fetch(), reply: {} };
    case 'redis-no-lock':
      return { pod: await prepareRedisNoLock(keyPrefix), reply: {} };
    default:
      throw new Error(`unknown variant ${String(variant)}`);
  }
}

async function prepareTokenfleet(keyPrefix: string): Promise<{ pod: Pod; reply: PreparedReply }> {
  const cache: TokenCache = createTokenCache({
    redis: redisUrl,
    keyPrefix,
    provider: quiqup({
      environment: 'production',
      baseUrl: mockUrl,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
    }),
  });
  // A status read connects the cache, so the round does not time the connection.
  await cache.status();
  return {
    pod: { getToken: () => cache.getToken(), close: () => cache.close() },
    reply: { tokenId: cache.id },
  };
}

/** Lets calls that overlap share one getToken() call of the pod, as one in-process flight. */
function joinConcurrentCalls(prepared: { pod: Pod; reply: PreparedReply }): {
  pod: Pod;
  reply: PreparedReply;
} {
  let pending: Promise<string> | undefined;
  const getToken = () => {
    pending ??= prepared.pod.getToken().finally(() => {
      pending = undefined;
    });
    return pending;
  };
  return { pod: { getToken, close: prepared.pod.close }, reply: prepared.reply };
}

function prepareOAuth2Fetch(): Pod {
  const oauth2 = new OAuth2Client({
    server: mockUrl,
    tokenEndpoint: TOKEN_PATH,
    clientId: client.clientId,
    clientSecret: client.clientSecret,
  });
  const wrapper = new OAuth2Fetch({
    client: oauth2,
    getNewToken: () => oauth2.clientCredentials(),
  });
  return { getToken: () => wrapper.getAccessToken(), close: async () => {} };
}

async function prepareRedisNoLock(keyPrefix: string): Promise<Pod> {
  const redis = new Redis(redisUrl);
  await redis.ping();
  const key = `${keyPrefix}:no-lock-token`;

  const getToken = async (): Promise<string> => {
    const stored = await redis.get(key);
    if (stored !== null) {
      return stored;
    }
    const response = await fetch(`${mockUrl}${TOKEN_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        grant_type: 'client_credentials',
      }),
    });
    if (!response.ok) {
      throw new Error(`token request failed with HTTP ${response.status}`);
    }
    const body = (await response.json()) as { access_token: string; expires_in: number };
    const storedMs = Math.max(1, body.expires_in * 1000 - NO_LOCK_SKEW_MS);
    await redis.set(key, body.access_token, 'PX', storedMs);
    return body.access_token;
  };
  return { getToken, close: async () => void (await redis.quit()) };
}

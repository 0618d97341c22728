import { describe, expect, it } from 'vitest';
import { ConfigError, createProviders, DEFAULT_ENV, readConfig } from '../src/config.js';

const QUIQUP_ENV = {
  QUIQUP_CLIENT_ID: 'client-1',
  QUIQUP_CLIENT_SECRET: 'secret-value-1',
  QUIQUP_ENVIRONMENT: 'staging',
};

function configError(env: Record<string, string>, files: Record<string, string> = {}): ConfigError {
  try {
    const config = readConfig(env, (path) => {
      const text = files[path];
      if (text === undefined) {
        throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      }
      return text;
    });
    createProviders(config.clients);
  } catch (err) {
    if (err instanceof ConfigError) {
      return err;
    }
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('readConfig', () => {
  describe('when only the Quiqup client is set', () => {
    it('fills in the defaults', () => {
      const config = readConfig(QUIQUP_ENV);

      expect(config.redisUrl).toBe(DEFAULT_ENV.TOKENFLEET_REDIS_URL);
      expect(config.port).toBe(9464);
      expect(config.host).toBe('127.0.0.1');
      expect(config.logLevel).toBe('info');
      expect(config.shutdownTimeoutMs).toBe(10_000);
      expect(config.queueName).toBeUndefined();
      expect(config.sweepIntervalMs).toBeUndefined();
      expect(config.clients).toHaveLength(1);
      expect(config.clients[0]?.options).toEqual({
        environment: 'staging',
        clientId: 'client-1',
        clientSecret: 'secret-value-1',
      });
    });
  });

  describe('when every variable is set', () => {
    it('reads each one', () => {
      const config = readConfig({
        ...QUIQUP_ENV,
        QUIQUP_BASE_URL: 'http://127.0.0.1:4010',
        TOKENFLEET_REDIS_URL: 'rediss://redis.internal:6380',
        TOKENFLEET_QUEUE: 'renewal-eu',
        TOKENFLEET_QUEUE_PREFIX: '{tf-eu}',
        TOKENFLEET_KEY_PREFIX: 'tf-eu',
        TOKENFLEET_REFRESHER_PORT: '0',
        TOKENFLEET_REFRESHER_HOST: '0.0.0.0',
        TOKENFLEET_SWEEP_INTERVAL_MS: '30000',
        TOKENFLEET_WORKER_CONCURRENCY: '2',
        TOKENFLEET_SHUTDOWN_TIMEOUT_MS: '5000',
        TOKENFLEET_SKEW_MS: '1000',
        TOKENFLEET_REFRESH_AHEAD_MS: '120000',
        LOG_LEVEL: 'debug',
      });

      expect(config).toMatchObject({
        redisUrl: 'rediss://redis.internal:6380',
        queueName: 'renewal-eu',
        queuePrefix: '{tf-eu}',
        keyPrefix: 'tf-eu',
        port: 0,
        host: '0.0.0.0',
        sweepIntervalMs: 30_000,
        concurrency: 2,
        shutdownTimeoutMs: 5_000,
        skewMs: 1_000,
        refreshAheadMs: 120_000,
        logLevel: 'debug',
      });
      expect(config.clients[0]?.options).toMatchObject({ baseUrl: 'http://127.0.0.1:4010' });
    });
  });

  describe('when a variable is invalid', () => {
    it.each([
      [
        'TOKENFLEET_REFRESHER_PORT',
        { TOKENFLEET_REFRESHER_PORT: 'abc' },
        'must be an integer from 0 to 65535 (received "abc")',
      ],
      [
        'TOKENFLEET_REFRESHER_PORT',
        { TOKENFLEET_REFRESHER_PORT: '70000' },
        'must be an integer from 0 to 65535',
      ],
      [
        'TOKENFLEET_SWEEP_INTERVAL_MS',
        { TOKENFLEET_SWEEP_INTERVAL_MS: '0' },
        'must be an integer of at least 1',
      ],
      ['TOKENFLEET_SKEW_MS', { TOKENFLEET_SKEW_MS: '-5' }, 'must be an integer of at least 0'],
      ['TOKENFLEET_REFRESH_AHEAD_MS', { TOKENFLEET_REFRESH_AHEAD_MS: '1.5' }, 'must be an integer'],
      [
        'TOKENFLEET_REDIS_URL',
        { TOKENFLEET_REDIS_URL: 'http://127.0.0.1' },
        'must start with redis:// or rediss://',
      ],
      [
        'LOG_LEVEL',
        { LOG_LEVEL: 'loud' },
        'must be one of fatal, error, warn, info, debug, trace, silent',
      ],
      [
        'QUIQUP_ENVIRONMENT',
        { QUIQUP_ENVIRONMENT: 'prod' },
        'must be production or staging (received "prod")',
      ],
      ['QUIQUP_CLIENT_SECRET', { QUIQUP_CLIENT_SECRET: '' }, 'is not set, but QUIQUP_CLIENT_ID is'],
    ])('names %s', (variable, override, message) => {
      const error = configError({ ...QUIQUP_ENV, ...override });

      expect(error.variable).toBe(variable);
      expect(error.message).toContain(`${variable} ${message}`);
    });

    it('names QUIQUP_CLIENT_ID when no client is configured', () => {
      const error = configError({});

      expect(error.variable).toBe('QUIQUP_CLIENT_ID');
      expect(error.message).toContain('TOKENFLEET_CLIENTS_FILE');
    });

    it('rejects a base URL the core refuses, without the secret', () => {
      const error = configError({ ...QUIQUP_ENV, QUIQUP_BASE_URL: 'ftp://127.0.0.1' });

      expect(error.variable).toBe('QUIQUP_CLIENT_ID');
      expect(error.message).toContain('the Quiqup client of the QUIQUP_* variables is invalid');
      expect(error.message).not.toContain('secret-value-1');
    });
  });
});

describe('TOKENFLEET_CLIENTS_FILE', () => {
  const file = (clients: unknown[]) => ({
    '/etc/tokenfleet/clients.json': JSON.stringify({ clients }),
  });
  const env = {
    TOKENFLEET_CLIENTS_FILE: '/etc/tokenfleet/clients.json',
    OAUTH_SECRET: 'secret-from-env',
  };

  describe('when it lists Quiqup and OAuth2 clients', () => {
    it('reads each client with its secret', () => {
      const files = file([
        {
          type: 'quiqup',
          environment: 'production',
          clientId: 'q-1',
          clientSecret: 'inline-secret',
        },
        {
          type: 'oauth2',
          tokenUrl: 'http://127.0.0.1:4010/token',
          clientId: 'o-1',
          clientSecretEnv: 'OAUTH_SECRET',
          scope: 'read',
        },
      ]);

      const config = readConfig(env, (path) => files[path as keyof typeof files]!);
      const providers = createProviders(config.clients);

      expect(config.clients.map((client) => client.type)).toEqual(['quiqup', 'oauth2']);
      expect(config.clients[1]?.options).toMatchObject({
        clientId: 'o-1',
        clientSecret: 'secret-from-env',
        scope: 'read',
      });
      expect(providers.map((provider) => provider.name)).toEqual(['quiqup', 'oauth2']);
    });

    it('adds the QUIQUP_* client to the file clients', () => {
      const files = file([
        {
          type: 'oauth2',
          tokenUrl: 'http://127.0.0.1:4010/token',
          clientId: 'o-1',
          clientSecret: 's',
        },
      ]);

      const config = readConfig(
        { ...env, ...QUIQUP_ENV },
        (path) => files[path as keyof typeof files]!,
      );

      expect(config.clients).toHaveLength(2);
    });
  });

  describe('when the file is wrong', () => {
    it.each([
      ['not JSON', '{', 'not valid JSON'],
      ['no clients', '{"clients": []}', 'expected an object with a non-empty "clients" array'],
      [
        'an unknown type',
        '{"clients": [{"type": "saml"}]}',
        'clients[0].type must be "quiqup" or "oauth2"',
      ],
      [
        'a typo in a field',
        '{"clients": [{"type": "quiqup", "clientID": "x", "clientSecret": "s"}]}',
        'clients[0] has unknown fields clientID',
      ],
      [
        'no secret',
        '{"clients": [{"type": "quiqup", "environment": "staging", "clientId": "x"}]}',
        'clients[0] needs clientSecret or clientSecretEnv',
      ],
      [
        'an unset secret variable',
        '{"clients": [{"type": "quiqup", "clientId": "x", "clientSecretEnv": "NOPE"}]}',
        'clients[0].clientSecretEnv names NOPE, which is not set',
      ],
    ])('names the problem for %s', (_case, text, message) => {
      const error = configError(env, { '/etc/tokenfleet/clients.json': text });

      expect(error.variable).toBe('TOKENFLEET_CLIENTS_FILE');
      expect(error.message).toContain(message);
    });

    it('names a file that cannot be read', () => {
      const error = configError({ TOKENFLEET_CLIENTS_FILE: '/missing.json' });

      expect(error.message).toBe(
        'TOKENFLEET_CLIENTS_FILE names a file that cannot be read: /missing.json (ENOENT)',
      );
    });

    it('names the entry that the core rejects, without its secret', () => {
      const error = configError(
        env,
        file([
          { type: 'oauth2', tokenUrl: 'not a url', clientId: 'o-1', clientSecret: 'hidden-1' },
        ]),
      );

      expect(error.message).toContain('TOKENFLEET_CLIENTS_FILE clients[0] is invalid');
      expect(error.message).not.toContain('hidden-1');
    });
  });
});

import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MOCK_OAUTH_OPTIONS,
  PRESET_EXPIRES_IN_SECONDS,
  startMockOAuthServer,
  validateFaults,
} from '../src/index.js';

describe('validateFaults', () => {
  it.each([
    [{ latency: 5 }, 'ERR_INVALID_ARG_VALUE', '"faults.latency" is not a known fault'],
    [
      { latencyMs: -1 },
      'ERR_INVALID_ARG_VALUE',
      '"faults.latencyMs" must be a number of milliseconds',
    ],
    [
      { latencyMs: 2 ** 31 },
      'ERR_INVALID_ARG_VALUE',
      '"faults.latencyMs" must be a number of milliseconds',
    ],
    [{ latencyMs: '5' }, 'ERR_INVALID_ARG_TYPE', '"faults.latencyMs" must be a number'],
    [{ status: 99 }, 'ERR_INVALID_ARG_VALUE', '"faults.status" must be an integer from 200 to 599'],
    [
      { status: 200.5 },
      'ERR_INVALID_ARG_VALUE',
      '"faults.status" must be an integer from 200 to 599',
    ],
    [{ times: 0 }, 'ERR_INVALID_ARG_VALUE', '"faults.times" must be an integer, 1 or more'],
    [{ reuseToken: 'yes' }, 'ERR_INVALID_ARG_TYPE', '"faults.reuseToken" must be a boolean'],
    [{ htmlBody: 5 }, 'ERR_INVALID_ARG_TYPE', '"faults.htmlBody" must be a string or true'],
    [
      { htmlBody: true, body: 'x' },
      'ERR_INVALID_ARG_VALUE',
      'cannot be combined with "faults.body"',
    ],
    [{ rateLimit: 30 }, 'ERR_INVALID_ARG_TYPE', '"faults.rateLimit" must be an object'],
    [
      { rateLimit: { retryAfterSeconds: 1.5 } },
      'ERR_INVALID_ARG_VALUE',
      '"faults.rateLimit.retryAfterSeconds"',
    ],
    [{ omitFields: 'expires_in' }, 'ERR_INVALID_ARG_TYPE', '"faults.omitFields" must be an array'],
    [{ overrideFields: [] }, 'ERR_INVALID_ARG_TYPE', '"faults.overrideFields" must be an object'],
    [
      { resource: { alwaysUnauthorised: true } },
      'ERR_INVALID_ARG_VALUE',
      'is not a known resource fault',
    ],
    [{ resource: { alwaysUnauthorized: 1 } }, 'ERR_INVALID_ARG_TYPE', 'must be a boolean'],
    [null, 'ERR_INVALID_ARG_TYPE', '"faults" must be an object'],
  ])('rejects %o', (faults, code, message) => {
    expect(() => validateFaults(faults)).toThrow(
      expect.objectContaining({ code, name: 'TypeError' }),
    );
    expect(() => validateFaults(faults)).toThrow(message);
  });

  it('drops boolean faults set to false', () => {
    expect(validateFaults({ reuseToken: false, noAnswer: false, status: 503 })).toEqual({
      status: 503,
    });
  });

  it('keeps a body of null, which is sent as JSON null', () => {
    expect(validateFaults({ body: null })).toEqual({ body: null });
  });
});

describe('startMockOAuthServer options', () => {
  it.each([
    [{ port: -1 }, 'ERR_INVALID_ARG_VALUE', '"options.port" must be an integer from 0 to 65535'],
    [{ host: '' }, 'ERR_INVALID_ARG_TYPE', '"options.host" must be a non-empty string'],
    [
      { preset: 'dev' },
      'ERR_INVALID_ARG_VALUE',
      '"options.preset" must be "production" or "staging"',
    ],
    [{ preset: 'staging', expiresIn: 5 }, 'ERR_INVALID_ARG_VALUE', 'cannot be combined'],
    [
      { expiresIn: Number.NaN },
      'ERR_INVALID_ARG_VALUE',
      '"options.expiresIn" must be a finite number',
    ],
    [{ clients: [] }, 'ERR_INVALID_ARG_TYPE', '"options.clients" must be a non-empty array'],
    [
      { clients: [{ clientId: '', clientSecret: 'x' }] },
      'ERR_INVALID_ARG_TYPE',
      '"options.clients[0].clientId"',
    ],
    [
      {
        clients: [
          { clientId: 'a', clientSecret: 'x' },
          { clientId: 'a', clientSecret: 'y' },
        ],
      },
      'ERR_INVALID_ARG_VALUE',
      '"options.clients[1].clientId" must be unique',
    ],
  ])('rejects %o', async (options, code, message) => {
    const start = startMockOAuthServer(options as never);

    await expect(start).rejects.toMatchObject({ code, name: 'TypeError' });
    await expect(start).rejects.toThrow(message);
  });

  it('never puts a client secret into an error message', async () => {
    const start = startMockOAuthServer({ clients: [{ clientId: 'a', clientSecret: 42 as never }] });

    await expect(start).rejects.toThrow('"options.clients[0].clientSecret" must be a string');
    await expect(start).rejects.not.toThrow('42');
  });

  it('does not mutate the caller options', async () => {
    const options = { expiresIn: 5, clients: [{ clientId: 'a', clientSecret: 'b' }] };
    const server = await startMockOAuthServer(options);
    await server.close();

    expect(options).toEqual({ expiresIn: 5, clients: [{ clientId: 'a', clientSecret: 'b' }] });
  });

  it('documents the defaults in the README', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');

    expect(readme).toContain(`\`${DEFAULT_MOCK_OAUTH_OPTIONS.host}\``);
    expect(readme).toContain(`\`${DEFAULT_MOCK_OAUTH_OPTIONS.preset}\``);
    expect(readme).toContain(`\`${DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]?.clientId}\``);
    expect(readme).toContain(`\`${DEFAULT_MOCK_OAUTH_OPTIONS.clients[0]?.clientSecret}\``);
    expect(readme).toContain(String(PRESET_EXPIRES_IN_SECONDS.production));
    expect(readme).toContain(String(PRESET_EXPIRES_IN_SECONDS.staging));
  });
});

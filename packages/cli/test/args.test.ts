import { describe, expect, it } from 'vitest';
import {
  type CommandSpec,
  formatCommandHelp,
  parseCommandArgs,
  parsePositiveInteger,
  wrapText,
} from '../src/args.js';
import { redactUrl, resolveProviderConfig, resolveRedisConfig } from '../src/config.js';
import { UsageError } from '../src/errors.js';
import { formatDuration, formatTable } from '../src/output.js';

const SPEC: CommandSpec = {
  name: 'sample',
  title: 'A sample command.',
  summary: 'Does nothing.',
  usage: 'tokenfleet sample [options]',
  options: {
    json: { type: 'boolean', description: 'Print JSON.' },
    'redis-url': {
      type: 'string',
      valueName: 'URL',
      env: 'TOKENFLEET_REDIS_URL',
      description: 'Redis.',
    },
  },
};

describe('parseCommandArgs', () => {
  it('reads flags, inline values and separate values', () => {
    expect(parseCommandArgs(SPEC, ['--json', '--redis-url=redis://a'])).toEqual({
      json: true,
      'redis-url': 'redis://a',
    });
    expect(parseCommandArgs(SPEC, ['--redis-url', 'redis://b'])).toEqual({
      'redis-url': 'redis://b',
    });
    expect(parseCommandArgs(SPEC, ['-h'])).toEqual({ help: true });
  });

  it('raises UsageError for an empty inline value', () => {
    expect(() => parseCommandArgs(SPEC, ['--redis-url='])).toThrowError(
      new UsageError('option --redis-url requires a value (URL)'),
    );
  });

  it('raises UsageError after the option terminator', () => {
    expect(() => parseCommandArgs(SPEC, ['--', '--json'])).toThrowError(
      new UsageError("unexpected argument '--json'"),
    );
  });
});

describe('parsePositiveInteger', () => {
  it('returns the fallback when the option is absent', () => {
    expect(parsePositiveInteger('workers', undefined, 8, 64)).toBe(8);
  });

  it('accepts the limits', () => {
    expect(parsePositiveInteger('workers', '1', 8, 64)).toBe(1);
    expect(parsePositiveInteger('workers', '64', 8, 64)).toBe(64);
  });

  it.each(['0', '65', '-1', '2e1', ' 3', 'abc', ''])('rejects %j', (value) => {
    expect(() => parsePositiveInteger('workers', value, 8, 64)).toThrowError(
      new UsageError(`option --workers must be an integer from 1 to 64, received '${value}'`),
    );
  });
});

describe('resolveRedisConfig', () => {
  it('prefers the flag over the environment', () => {
    const config = resolveRedisConfig(
      { 'redis-url': 'redis://flag:1' },
      { TOKENFLEET_REDIS_URL: 'redis://env:2', TOKENFLEET_KEY_PREFIX: 'p', TOKENFLEET_QUEUE: 'q' },
    );

    expect(config).toEqual({ redisUrl: 'redis://flag:1', keyPrefix: 'p', queueName: 'q' });
  });

  it('fills in the defaults and ignores empty variables', () => {
    const config = resolveRedisConfig(
      {},
      { TOKENFLEET_REDIS_URL: 'rediss://env:2', TOKENFLEET_QUEUE: '' },
    );

    expect(config).toEqual({
      redisUrl: 'rediss://env:2',
      keyPrefix: 'tokenfleet',
      queueName: 'tokenfleet-renewal',
    });
  });
});

describe('resolveProviderConfig', () => {
  it('defaults to production and takes the secret from the environment only', () => {
    const config = resolveProviderConfig(
      { 'client-id': 'id-1' },
      { QUIQUP_CLIENT_ID: 'id-2', QUIQUP_CLIENT_SECRET: 's' },
    );

    expect(config).toEqual({
      clientId: 'id-1',
      clientSecret: 's',
      environment: 'production',
      baseUrl: undefined,
    });
  });
});

describe('redactUrl', () => {
  it('masks the password and keeps the rest', () => {
    expect(redactUrl('redis://user:pw@host:6380/2')).toBe('redis://user:***@host:6380/2');
    expect(redactUrl('redis://host:6379')).toBe('redis://host:6379');
  });
});

describe('formatDuration', () => {
  it.each([
    [-5, '0ms'],
    [850, '850ms'],
    [42_999, '42s'],
    [3_598_000, '59m 58s'],
    [25_140_000, '6h 59m'],
    [604_799_000, '6d 23h'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('formatTable', () => {
  it('pads every column but the last', () => {
    expect(formatTable(['A', 'BB', 'C'], [['aaa', 'b', 'c']])).toBe('A    BB  C\naaa  b   c\n');
  });
});

describe('formatCommandHelp', () => {
  it('lists the usage, each option with its variable and the help flag', () => {
    expect(formatCommandHelp(SPEC)).toBe(
      [
        'Usage: tokenfleet sample [options]',
        '',
        'Does nothing.',
        '',
        'Options:',
        '  --json           Print JSON.',
        '  --redis-url URL  Redis. (env TOKENFLEET_REDIS_URL)',
        '  -h, --help       Print this help and exit.',
        '',
      ].join('\n'),
    );
  });
});

describe('wrapText', () => {
  it('breaks lines at spaces within the width', () => {
    expect(wrapText('one two three four', 9)).toBe('one two\nthree\nfour');
  });
});

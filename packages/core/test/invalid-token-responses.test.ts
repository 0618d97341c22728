import type { MockOAuthFaults } from '@tokenfleet/mock-oauth';
import { describe, expect, it } from 'vitest';
import {
  BODY_PREVIEW_MAX_CHARS,
  createAuthorizedFetch,
  InvalidTokenResponseError,
  TokenEndpointError,
  TokenfleetError,
  type TokenGrant,
  type TokenProvider,
} from '../src/index.js';
import { TEST_RETRY, uniquePrefix, useFaultFixture } from './endpoint-fault-fixture.js';

const fixture = useFaultFixture();

/** A token that only appears in the raw bodies and grants below, so the scans add it by hand. */
const RAW_BODY_TOKEN = 'raw-body-token-5b0f3c7e';
fixture.tokens.add(RAW_BODY_TOKEN);

interface InvalidResponseCase {
  name: string;
  faults: MockOAuthFaults;
  errorClass: typeof TokenEndpointError | typeof InvalidTokenResponseError;
  status: number;
  /** `reason` of an InvalidTokenResponseError. */
  reason?: string;
  /** Token requests of one getToken call. */
  requests: number;
}

const invalidResponseCases: InvalidResponseCase[] = [
  {
    name: '502 with a 5 KB HTML page',
    faults: { status: 502, htmlBody: true },
    errorClass: TokenEndpointError,
    status: 502,
    requests: TEST_RETRY.attempts,
  },
  {
    name: '200 with an HTML page',
    faults: { htmlBody: true },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'body is not JSON',
    requests: 1,
  },
  {
    name: '200 with a body that is not JSON',
    faults: { body: 'service ready', contentType: 'text/plain' },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'body is not JSON',
    requests: 1,
  },
  {
    name: 'no access_token',
    faults: { omitFields: ['access_token'] },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'access_token is missing',
    requests: 1,
  },
  {
    name: 'an empty access_token',
    faults: { overrideFields: { access_token: '' } },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'access_token must be a non-empty string',
    requests: 1,
  },
  ...[
    { label: '"abc"', value: 'abc' },
    { label: '-5', value: -5 },
    { label: 'null', value: null },
  ].map(({ label, value }) => ({
    name: `expires_in ${label}`,
    faults: { overrideFields: { expires_in: value } },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'expires_in must be a finite number >= 0',
    requests: 1,
  })),
  {
    name: 'expires_in 1e309 as raw JSON text',
    faults: {
      body: `{"access_token":"${RAW_BODY_TOKEN}","expires_in":1e309,"token_type":"bearer"}`,
    },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'expires_in must be a finite number >= 0',
    requests: 1,
  },
  {
    name: 'token_type "mac"',
    faults: { overrideFields: { token_type: 'mac' } },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'token_type must be bearer',
    requests: 1,
  },
  ...['with a space', 'with\na line break', 'non-ASCII ✓'].map((suffix) => ({
    name: `an access_token ${suffix.split('\n').join(' ')}`,
    faults: { overrideFields: { access_token: `${RAW_BODY_TOKEN} ${suffix}` } },
    errorClass: InvalidTokenResponseError,
    status: 200,
    reason: 'access_token must contain only visible ASCII characters, no spaces',
    requests: 1,
  })),
];

describe('getToken with a token endpoint that returns no usable token', () => {
  describe.each(invalidResponseCases)('when it answers $name', (fault) => {
    it('throws a typed error with the status and a short preview', async () => {
      const prefix = uniquePrefix('invalid');
      const cache = fixture.newCache(prefix);
      fixture.server.setFaults(fault.faults);

      const error = await cache.getToken().catch((err: unknown) => err);

      expect(error).not.toBeInstanceOf(SyntaxError);
      expect(error).toBeInstanceOf(TokenfleetError);
      expect(error).toBeInstanceOf(fault.errorClass);
      const typed = error as InvalidTokenResponseError;
      expect(typed.status).toBe(fault.status);
      expect(typed.bodyPreview).toEqual(expect.any(String));
      expect(typed.bodyPreview?.length).toBeGreaterThan(0);
      expect(typed.bodyPreview?.length).toBeLessThanOrEqual(BODY_PREVIEW_MAX_CHARS);
      if (fault.reason === undefined) {
        expect(typed.code).toBe('TOKENFLEET_TOKEN_ENDPOINT');
        expect(typed.message).toMatch(/^token endpoint failed \(HTTP 502\)/);
      } else {
        expect(typed.code).toBe('TOKENFLEET_INVALID_TOKEN_RESPONSE');
        expect(typed.reason).toBe(fault.reason);
        expect(typed.message).toContain(
          `token endpoint returned an unusable token response (HTTP 200): ${fault.reason}`,
        );
      }
      expect(fixture.server.counts().tokenRequests).toBe(fault.requests);
    });

    it('stores nothing and sends no request to the resource', async () => {
      const prefix = uniquePrefix('invalid-fetch');
      const cache = fixture.newCache(prefix);
      const authorizedFetch = createAuthorizedFetch(cache);
      fixture.server.setFaults(fault.faults);

      const first = await authorizedFetch(fixture.server.resourceUrl).catch((err: unknown) => err);
      const second = await authorizedFetch(fixture.server.resourceUrl).catch((err: unknown) => err);

      expect(first).toBeInstanceOf(fault.errorClass);
      expect(second).toBeInstanceOf(TokenfleetError);
      expect(fixture.server.counts().resourceRequests).toBe(0);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, cache))).toBe(0);
    });
  });
});

/** A provider whose token requests return `grant` without any HTTP. */
function fixedGrantProvider(grant: Record<string, unknown>): TokenProvider {
  const base = fixture.provider();
  return {
    name: 'fixed',
    identity: { ...base.identity, fixed: JSON.stringify(grant) },
    label: 'fixed grant',
    sealingSecret: base.sealingSecret,
    requestToken: async () => grant as unknown as TokenGrant,
  };
}

const invalidGrantCases = [
  { name: 'an empty accessToken', grant: { accessToken: '', expiresInMs: 60_000 } },
  { name: 'no accessToken', grant: { expiresInMs: 60_000 } },
  { name: 'an accessToken with a space', grant: { accessToken: 'a b', expiresInMs: 60_000 } },
  { name: 'expiresInMs NaN', grant: { accessToken: RAW_BODY_TOKEN, expiresInMs: Number.NaN } },
  {
    name: 'expiresInMs Infinity',
    grant: { accessToken: RAW_BODY_TOKEN, expiresInMs: Number.POSITIVE_INFINITY },
  },
  { name: 'expiresInMs as a string', grant: { accessToken: RAW_BODY_TOKEN, expiresInMs: '60000' } },
];

describe('getToken with a custom provider that returns an unusable grant', () => {
  describe.each(invalidGrantCases)('when the grant has $name', ({ grant }) => {
    it('throws InvalidTokenResponseError and stores nothing', async () => {
      const prefix = uniquePrefix('invalid-grant');
      const cache = fixture.newCache(prefix, { provider: fixedGrantProvider(grant) });
      const authorizedFetch = createAuthorizedFetch(cache);

      const error = await authorizedFetch(fixture.server.resourceUrl).catch((err: unknown) => err);

      expect(error).toBeInstanceOf(InvalidTokenResponseError);
      expect((error as InvalidTokenResponseError).code).toBe('TOKENFLEET_INVALID_TOKEN_RESPONSE');
      expect((error as Error).message).toMatch(
        /^token provider fixed returned an unusable grant: /,
      );
      expect(fixture.server.counts().resourceRequests).toBe(0);
      expect(await fixture.redis.exists(fixture.tokenKey(prefix, cache))).toBe(0);
    });
  });
});

import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  BODY_PREVIEW_MAX_CHARS,
  ClientRejectedError,
  InvalidClientError,
  InvalidTokenResponseError,
  RateLimitedError,
  TokenEndpointError,
  type TokenfleetError,
  UnsupportedGrantTypeError,
} from '../src/errors.js';
import {
  DEFAULT_RETRY_AFTER_MS,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  processTokenResponse,
} from '../src/wire.js';

const TOKEN = 'tok_9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const SECRET = 'sec_0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const OPTIONS = { defaultExpiresInMs: 3_600_000 };

function respond(status: number, body: string, headers: Record<string, string> = {}): Response {
  // Response rejects a body for 204 and similar statuses; none of the cases below use them.
  return new Response(body, {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

async function rejection(response: Response): Promise<TokenfleetError> {
  try {
    await processTokenResponse(response, OPTIONS);
  } catch (error) {
    return error as TokenfleetError;
  }
  throw new Error('processTokenResponse resolved, expected a rejection');
}

function expectSafePreview(preview: string | undefined): void {
  expect(preview).toBeDefined();
  expect(preview!.length).toBeLessThanOrEqual(BODY_PREVIEW_MAX_CHARS);
  expect(preview).not.toContain(TOKEN);
  expect(preview).not.toContain(SECRET);
}

describe('processTokenResponse', () => {
  describe('when the response is a valid Quiqup token', () => {
    it('returns the grant with the lifetime in milliseconds', async () => {
      const body = JSON.stringify({
        access_token: TOKEN,
        created_at: 1616571253,
        expires_in: 604800,
        token_type: 'bearer',
      });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant).toEqual({
        accessToken: TOKEN,
        expiresInMs: 604_800_000,
        expiresInDefaulted: false,
        createdAt: 1616571253,
      });
    });

    it('reads the body exactly once', async () => {
      const response = respond(200, JSON.stringify({ access_token: TOKEN, expires_in: 60 }));

      await processTokenResponse(response, OPTIONS);

      expect(response.bodyUsed).toBe(true);
    });
  });

  describe('when a field is in an accepted variant', () => {
    it('accepts expires_in as a numeric string', async () => {
      const body = JSON.stringify({
        access_token: TOKEN,
        expires_in: '3600',
        token_type: 'bearer',
      });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.expiresInMs).toBe(3_600_000);
      expect(grant.expiresInDefaulted).toBe(false);
    });

    it('accepts a fractional expires_in', async () => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 3599.5 });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.expiresInMs).toBe(3_599_500);
    });

    it('uses defaultExpiresInMs when expires_in is missing', async () => {
      const body = JSON.stringify({ access_token: TOKEN, token_type: 'bearer' });

      const grant = await processTokenResponse(respond(200, body), { defaultExpiresInMs: 1234 });

      expect(grant.expiresInMs).toBe(1234);
      expect(grant.expiresInDefaulted).toBe(true);
    });

    it('passes expires_in 0 through as 0 ms', async () => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 0, token_type: 'bearer' });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.expiresInMs).toBe(0);
      expect(grant.expiresInDefaulted).toBe(false);
    });

    it.each(['bearer', 'Bearer', 'BEARER'])('accepts token_type %s', async (tokenType) => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 60, token_type: tokenType });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.accessToken).toBe(TOKEN);
    });

    it('accepts a missing token_type as bearer', async () => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 60 });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.accessToken).toBe(TOKEN);
    });

    it('accepts a 2xx status other than 200', async () => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 60 });

      const grant = await processTokenResponse(respond(201, body), OPTIONS);

      expect(grant.expiresInMs).toBe(60_000);
    });

    it('drops a created_at that is not a number', async () => {
      const body = JSON.stringify({ access_token: TOKEN, expires_in: 60, created_at: 'yesterday' });

      const grant = await processTokenResponse(respond(200, body), OPTIONS);

      expect(grant.createdAt).toBeUndefined();
    });
  });

  describe('when a 2xx body is not a usable token', () => {
    const padding = 'x'.repeat(300);
    const cases: { name: string; body: string; reason: string; contentType?: string }[] = [
      {
        name: 'an HTML page',
        body: `<!doctype html><html><body><h1>Welcome</h1>${padding}</body></html>`,
        reason: 'body is not JSON',
        contentType: 'text/html',
      },
      { name: 'plain text', body: 'ok', reason: 'body is not JSON' },
      { name: 'an empty body', body: '', reason: 'body is empty' },
      {
        name: 'a form-encoded token',
        body: `access_token=${TOKEN}&token_type=bearer&expires_in=3600`,
        reason: 'body is not JSON',
      },
      {
        name: 'truncated JSON holding the token',
        body: `{"access_token":"${TOKEN}","expires_in":36`,
        reason: 'body is not JSON',
      },
      { name: 'a JSON array', body: '["ok"]', reason: 'body is not a JSON object' },
      { name: 'a JSON string', body: '"ok"', reason: 'body is not a JSON object' },
      { name: 'JSON null', body: 'null', reason: 'body is not a JSON object' },
      {
        name: 'no access_token',
        body: '{"expires_in":3600,"token_type":"bearer"}',
        reason: 'access_token is missing',
      },
      {
        name: 'an empty access_token',
        body: '{"access_token":"","expires_in":3600}',
        reason: 'access_token must be a non-empty string',
      },
      {
        name: 'a numeric access_token',
        body: '{"access_token":12345,"expires_in":3600}',
        reason: 'access_token must be a non-empty string',
      },
      {
        name: 'a null access_token',
        body: '{"access_token":null,"expires_in":3600}',
        reason: 'access_token must be a non-empty string',
      },
      ...[
        ['"abc"', 'a non-numeric string'],
        ['-5', 'a negative number'],
        ['"-5"', 'a negative numeric string'],
        ['1e309', 'a number beyond the double range'],
        ['null', 'null'],
        ['true', 'a boolean'],
        ['""', 'an empty string'],
        ['"Infinity"', 'the string Infinity'],
        ['"1e3"', 'an exponent string'],
        [`"${'9'.repeat(400)}"`, 'a numeric string beyond the double range'],
      ].map(([raw, what]) => ({
        name: `expires_in as ${what}`,
        body: `{"access_token":"${TOKEN}","expires_in":${raw},"token_type":"bearer"}`,
        reason: 'expires_in must be a finite number >= 0',
      })),
      ...['mac', 'DPoP', 'N_A'].map((tokenType) => ({
        name: `token_type ${tokenType}`,
        body: `{"access_token":"${TOKEN}","expires_in":3600,"token_type":"${tokenType}"}`,
        reason: 'token_type must be bearer',
      })),
      {
        name: 'a null token_type',
        body: `{"access_token":"${TOKEN}","expires_in":3600,"token_type":null}`,
        reason: 'token_type must be bearer',
      },
      {
        name: 'the token late in a long body',
        body: `{"note":"${padding}","expires_in":"abc","access_token":"${TOKEN}"}`,
        reason: 'expires_in must be a finite number >= 0',
      },
      {
        name: 'the token repeated under another field',
        body: `{"access_token":"${TOKEN}","echo":"${TOKEN}","expires_in":-1}`,
        reason: 'expires_in must be a finite number >= 0',
      },
      {
        name: 'a token with an escaped quote',
        body: `{"access_token":"${TOKEN}\\"tail${TOKEN}","expires_in":-1}`,
        reason: 'expires_in must be a finite number >= 0',
      },
      {
        name: 'secret fields beside a bad token',
        body: `{"access_token":"","refresh_token":"${TOKEN}","client_secret":"${SECRET}"}`,
        reason: 'access_token must be a non-empty string',
      },
    ];

    it.each(cases)('rejects $name', async ({ body, reason, contentType }) => {
      const headers: Record<string, string> =
        contentType === undefined ? {} : { 'content-type': contentType };

      const error = await rejection(respond(200, body, headers));

      expect(error).toBeInstanceOf(InvalidTokenResponseError);
      expect(error.code).toBe('TOKENFLEET_INVALID_TOKEN_RESPONSE');
      const invalid = error as InvalidTokenResponseError;
      expect(invalid.status).toBe(200);
      expect(invalid.reason).toBe(reason);
      expect(invalid.message).toContain(`(HTTP 200): ${reason}`);
      expect(invalid.message).not.toContain(TOKEN);
      expectSafePreview(invalid.bodyPreview);
    });

    it('names the content type of a body that is not JSON', async () => {
      const error = await rejection(respond(200, '<html></html>', { 'content-type': 'text/html' }));

      expect(error.message).toContain('content-type: text/html');
    });

    it('never throws a SyntaxError', async () => {
      const error = await rejection(respond(200, '{"access_token":'));

      expect(error).not.toBeInstanceOf(SyntaxError);
      expect(error).toBeInstanceOf(InvalidTokenResponseError);
    });
  });

  describe('when the status is 400', () => {
    it('throws UnsupportedGrantTypeError for unsupported_grant_type', async () => {
      const body = JSON.stringify({ error: 'unsupported_grant_type' });

      const error = await rejection(respond(400, body));

      expect(error).toBeInstanceOf(UnsupportedGrantTypeError);
      expect(error.code).toBe('TOKENFLEET_UNSUPPORTED_GRANT_TYPE');
      expect((error as UnsupportedGrantTypeError).status).toBe(400);
      expect((error as UnsupportedGrantTypeError).oauthError).toBe('unsupported_grant_type');
      expect(error.message).toBe(
        'token endpoint rejected the grant type (HTTP 400 unsupported_grant_type): the client must be allowed the client_credentials grant',
      );
    });

    it.each([
      ['an empty body', ''],
      ['an HTML body', '<html><body>Bad Request</body></html>'],
      ['a JSON body without error', '{"message":"bad request"}'],
    ])('throws UnsupportedGrantTypeError for %s', async (_name, body) => {
      const error = await rejection(respond(400, body));

      expect(error).toBeInstanceOf(UnsupportedGrantTypeError);
      expect(error.code).toBe('TOKENFLEET_UNSUPPORTED_GRANT_TYPE');
      expect((error as UnsupportedGrantTypeError).oauthError).toBeUndefined();
      expect(error.message).toContain('(HTTP 400)');
    });

    it.each(['invalid_scope', 'invalid_request', 'unauthorized_client'])(
      'throws ClientRejectedError for %s',
      async (oauthError) => {
        const body = JSON.stringify({ error: oauthError, error_description: 'nope' });

        const error = await rejection(respond(400, body));

        expect(error.constructor).toBe(ClientRejectedError);
        expect(error.code).toBe('TOKENFLEET_CLIENT_REJECTED');
        expect((error as ClientRejectedError).status).toBe(400);
        expect((error as ClientRejectedError).oauthError).toBe(oauthError);
        expect(error.message).toContain(`(HTTP 400 ${oauthError})`);
      },
    );

    it('ignores an error code outside the RFC 6749 character set', async () => {
      const body = JSON.stringify({ error: `bad"code ${'x'.repeat(80)}` });

      const error = await rejection(respond(400, body));

      expect(error).toBeInstanceOf(UnsupportedGrantTypeError);
      expect((error as UnsupportedGrantTypeError).oauthError).toBeUndefined();
      expect(error.message).toContain('(HTTP 400)');
    });

    it('throws InvalidClientError for invalid_client', async () => {
      const body = JSON.stringify({ error: 'invalid_client' });

      const error = await rejection(respond(400, body));

      expect(error).toBeInstanceOf(InvalidClientError);
      expect(error.code).toBe('TOKENFLEET_INVALID_CLIENT');
      expect((error as InvalidClientError).status).toBe(400);
      expect(error.message).toBe(
        'token endpoint rejected the client (HTTP 400 invalid_client): check clientId and clientSecret',
      );
    });
  });

  describe('when the status is 401', () => {
    it('throws InvalidClientError naming the OAuth error', async () => {
      const body = JSON.stringify({
        error: 'invalid_client',
        error_description: 'Client authentication failed due to unknown client.',
      });

      const error = await rejection(respond(401, body));

      expect(error).toBeInstanceOf(InvalidClientError);
      expect(error.code).toBe('TOKENFLEET_INVALID_CLIENT');
      expect((error as InvalidClientError).status).toBe(401);
      expect((error as InvalidClientError).oauthError).toBe('invalid_client');
      expect(error.message).toBe(
        'token endpoint rejected the client (HTTP 401 invalid_client): check clientId and clientSecret',
      );
      expectSafePreview((error as InvalidClientError).bodyPreview);
    });

    it('throws InvalidClientError for a body without error', async () => {
      const error = await rejection(respond(401, ''));

      expect(error).toBeInstanceOf(InvalidClientError);
      expect((error as InvalidClientError).oauthError).toBeUndefined();
      expect(error.message).toBe(
        'token endpoint rejected the client (HTTP 401): check clientId and clientSecret',
      );
    });
  });

  describe('when the status is 429', () => {
    it('takes retryAfterMs from delta seconds', async () => {
      const error = await rejection(respond(429, '', { 'retry-after': '120' }));

      expect(error).toBeInstanceOf(RateLimitedError);
      expect(error.code).toBe('TOKENFLEET_RATE_LIMITED');
      expect((error as RateLimitedError).status).toBe(429);
      expect((error as RateLimitedError).retryAfterMs).toBe(120_000);
      expect(error.message).toBe(
        'token endpoint rate-limited the client (HTTP 429): wait 120000 ms (Retry-After) before the next token request',
      );
    });

    it('takes retryAfterMs from an HTTP date', async () => {
      const date = new Date(Date.now() + 3_600_000).toUTCString();

      const error = await rejection(respond(429, '', { 'retry-after': date }));

      // An hour ahead exceeds the 10-minute cap, so the exact clock reading does not matter.
      expect((error as RateLimitedError).retryAfterMs).toBe(MAX_RETRY_AFTER_MS);
    });

    it.each([
      ['missing', undefined],
      ['invalid', 'soon'],
    ])('uses the default wait when Retry-After is %s', async (_name, header) => {
      const headers: Record<string, string> = header === undefined ? {} : { 'retry-after': header };

      const error = await rejection(respond(429, '', headers));

      expect((error as RateLimitedError).retryAfterMs).toBe(DEFAULT_RETRY_AFTER_MS);
      expect(error.message).toContain('(no valid Retry-After, default wait)');
    });

    it('caps a huge Retry-After', async () => {
      const error = await rejection(respond(429, '', { 'retry-after': '86400' }));

      expect((error as RateLimitedError).retryAfterMs).toBe(MAX_RETRY_AFTER_MS);
    });
  });

  describe('when the status is another failure', () => {
    it.each([500, 502, 503, 504])('throws TokenEndpointError for %i', async (status) => {
      const error = await rejection(respond(status, '<html>Service Unavailable</html>'));

      expect(error.constructor).toBe(TokenEndpointError);
      expect(error.code).toBe('TOKENFLEET_TOKEN_ENDPOINT');
      expect((error as TokenEndpointError).status).toBe(status);
      expect((error as TokenEndpointError).bodyPreview).toBe('<html>Service Unavailable</html>');
      expect((error as TokenEndpointError).retryAfterMs).toBeUndefined();
      expect(error.message).toBe(
        `token endpoint failed (HTTP ${status}): the server is failing, retry with back-off`,
      );
    });

    it('keeps Retry-After of a 503', async () => {
      const error = await rejection(respond(503, '', { 'retry-after': '7' }));

      expect((error as TokenEndpointError).retryAfterMs).toBe(7000);
    });

    it('throws TokenEndpointError for a 404', async () => {
      const error = await rejection(respond(404, 'not found'));

      expect(error.constructor).toBe(TokenEndpointError);
      expect((error as TokenEndpointError).status).toBe(404);
      expect(error.message).toBe(
        "token endpoint returned HTTP 404: check tokenUrl and the client's permissions",
      );
    });

    it('throws TokenEndpointError for a redirect', async () => {
      const error = await rejection(respond(307, '', { location: '/elsewhere' }));

      expect(error.constructor).toBe(TokenEndpointError);
      expect((error as TokenEndpointError).status).toBe(307);
      expect(error.message).toContain('redirects are not followed');
    });

    it('masks the token in a failure body', async () => {
      const body = `{"error":"server_error","access_token":"${TOKEN}","detail":"${'y'.repeat(300)}"}`;

      const error = await rejection(respond(500, body));

      expectSafePreview((error as TokenEndpointError).bodyPreview);
      expect((error as TokenEndpointError).bodyPreview).toContain('"access_token":"[redacted]"');
    });
  });

  describe('when the body cannot be read', () => {
    it('throws TokenEndpointError with the status and cause', async () => {
      const failure = new Error('socket hang up');
      const stream = new ReadableStream({
        start(controller) {
          controller.error(failure);
        },
      });

      const error = await rejection(new Response(stream, { status: 200 }));

      expect(error.constructor).toBe(TokenEndpointError);
      expect((error as TokenEndpointError).status).toBe(200);
      expect(error.cause).toBe(failure);
    });
  });
});

describe('token endpoint errors', () => {
  // Each body contains the token and the secret, as a misbehaving endpoint might echo them.
  // The second copy of the token sits under a field that no mask knows by name.
  const leaky = `{"error":"%s","access_token":"${TOKEN}","client_secret":"${SECRET}","echo":"${TOKEN}","token_type":"mac"}`;
  const cases: {
    name: string;
    response: () => Response;
    errorClass: new (...args: never[]) => Error;
  }[] = [
    {
      name: 'InvalidTokenResponseError',
      response: () => respond(200, leaky.replace('%s', 'none')),
      errorClass: InvalidTokenResponseError,
    },
    {
      name: 'InvalidClientError',
      response: () => respond(401, leaky.replace('%s', 'invalid_client')),
      errorClass: InvalidClientError,
    },
    {
      name: 'UnsupportedGrantTypeError',
      response: () => respond(400, leaky.replace('%s', 'unsupported_grant_type')),
      errorClass: UnsupportedGrantTypeError,
    },
    {
      name: 'ClientRejectedError',
      response: () => respond(400, leaky.replace('%s', 'invalid_scope')),
      errorClass: ClientRejectedError,
    },
    {
      name: 'RateLimitedError',
      response: () => respond(429, leaky.replace('%s', 'slow_down')),
      errorClass: RateLimitedError,
    },
    {
      name: 'TokenEndpointError',
      response: () => respond(500, leaky.replace('%s', 'server_error')),
      errorClass: TokenEndpointError,
    },
  ];

  it.each(cases)('$name holds no token or secret', async ({ response, errorClass }) => {
    const error = await rejection(response());

    expect(error.constructor).toBe(errorClass);
    const printed = [JSON.stringify(error), inspect(error), inspect(error, { depth: 10 })];
    for (const text of printed) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(SECRET);
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-03-24T08:00:00Z');

  it.each([
    ['0', 0],
    ['120', 120_000],
    [' 5 ', 5000],
    ['600', 600_000],
    ['601', MAX_RETRY_AFTER_MS],
    ['99999999999999999999999', MAX_RETRY_AFTER_MS],
  ])('reads delta seconds %j as %i ms', (header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });

  it.each([
    ['Sun, 24 Mar 2024 08:01:30 GMT', 90_000],
    ['Sunday, 24-Mar-24 08:01:30 GMT', 90_000],
    ['Sun Mar 24 08:01:30 2024', 90_000],
    ['Sun, 24 Mar 2024 07:59:00 GMT', 0],
    ['Mon, 25 Mar 2024 08:00:00 GMT', MAX_RETRY_AFTER_MS],
  ])('reads HTTP date %j as %i ms', (header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });

  it.each([
    null,
    '',
    'soon',
    '-5',
    '1.5',
    '5s',
    '2024-03-24T08:01:30Z',
    'Sun, 99 Mar 2024 08:01:30 GMT',
  ])('returns undefined for %j', (header) => {
    expect(parseRetryAfter(header, now)).toBeUndefined();
  });
});

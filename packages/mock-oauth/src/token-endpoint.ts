import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { FaultController, TokenEndpointFaults } from './faults.js';
import {
  BodyTooLargeError,
  buildHtmlErrorPage,
  mediaType,
  readBody,
  sendJson,
  sendOAuthError,
  sendText,
} from './http-io.js';
import type { GrantedToken, TokenStore } from './token-store.js';

/** Request counters, changed in place by the handlers. */
export interface MockOAuthCounts {
  /** `POST /oauth/token` requests, whatever their outcome (faults included). */
  tokenRequests: number;
  /** Token responses that carried a token, new or reused. */
  tokenSuccesses: number;
  /** Requests to `/api/orders`, any method. */
  resourceRequests: number;
  /** Resource requests that got 200. */
  resourceOk: number;
  /** Resource requests that got 401. */
  resourceUnauthorized: number;
}

/** Server state and services that the token endpoint uses. */
export interface TokenEndpointContext {
  readonly store: TokenStore;
  readonly faults: FaultController;
  readonly counts: MockOAuthCounts;
  /** Client id to client secret. */
  readonly clients: ReadonlyMap<string, string>;
  readonly logger: Logger;
  /** Lifetime of new tokens, in seconds. */
  expiresInSeconds(): number;
  /** Waits `ms`; resolves false instead when the server closes first. */
  delay(ms: number): Promise<boolean>;
}

const GRANT_TYPE = 'client_credentials';
const BASIC_REALM = 'Basic realm="mock-oauth"';

/** Handles one request to `/oauth/token`: faults first, then the client-credentials grant. */
export async function handleTokenRequest(
  context: TokenEndpointContext,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  if (request.method !== 'POST') {
    sendOAuthError(response, 405, 'invalid_request', 'the token endpoint accepts POST only', {
      Allow: 'POST',
    });
    return;
  }

  context.counts.tokenRequests += 1;
  // Faults are taken on arrival, so `times` counts requests in the order they came in.
  const faults = context.faults.takeTokenFaults();

  let rawBody: string;
  try {
    rawBody = await readBody(request);
  } catch (error) {
    if (error instanceof BodyTooLargeError) {
      sendOAuthError(response, 413, 'invalid_request', error.message);
    }
    // Any other read error means the client disconnected, so no response can be sent.
    return;
  }

  if (faults.noAnswer) {
    context.logger.debug('token request left without response by fault');
    return;
  }
  if (faults.latencyMs !== undefined && faults.latencyMs > 0) {
    const stillOpen = await context.delay(faults.latencyMs);
    if (!stillOpen) {
      return;
    }
  }
  if (faults.resetConnection) {
    context.logger.debug('token request connection reset by fault');
    request.socket.destroy();
    return;
  }
  if (sendFaultResponse(response, faults)) {
    return;
  }

  grantToken(context, request, response, rawBody, faults);
}

/** Sends the response that a fault replaces the token response with; false when none does. */
function sendFaultResponse(response: ServerResponse, faults: TokenEndpointFaults): boolean {
  if (faults.rateLimit !== undefined) {
    const retryAfter = String(faults.rateLimit.retryAfterSeconds);
    if (faults.body !== undefined) {
      sendRawBody(response, 429, faults, { 'Retry-After': retryAfter });
    } else {
      sendOAuthError(response, 429, 'rate_limited', 'too many token requests; retry later', {
        'Retry-After': retryAfter,
      });
    }
    return true;
  }

  if (faults.htmlBody !== undefined) {
    const status = faults.status ?? 200;
    const html = faults.htmlBody === true ? buildHtmlErrorPage(status) : faults.htmlBody;
    sendText(response, status, html, 'text/html; charset=utf-8');
    return true;
  }

  if (faults.body !== undefined) {
    sendRawBody(response, faults.status ?? 200, faults);
    return true;
  }

  if (faults.status !== undefined && faults.status >= 300) {
    const error = oauthErrorForStatus(faults.status);
    sendOAuthError(response, faults.status, error, `fault injected: HTTP ${faults.status}`);
    return true;
  }
  return false;
}

function sendRawBody(
  response: ServerResponse,
  status: number,
  faults: TokenEndpointFaults,
  headers: Record<string, string> = {},
): void {
  const text = typeof faults.body === 'string' ? faults.body : JSON.stringify(faults.body);
  const contentType = faults.contentType ?? 'application/json; charset=utf-8';
  sendText(response, status, text, contentType, headers);
}

/** Returns the OAuth2 `error` code that a server would send with an injected status. */
function oauthErrorForStatus(status: number): string {
  if (status === 401) {
    return 'invalid_client';
  }
  if (status === 503) {
    return 'temporarily_unavailable';
  }
  if (status >= 400 && status < 500) {
    return 'invalid_request';
  }
  return 'server_error';
}

/** Checks the grant type and the client, then issues (or reuses) a token. */
function grantToken(
  context: TokenEndpointContext,
  request: IncomingMessage,
  response: ServerResponse,
  rawBody: string,
  faults: TokenEndpointFaults,
): void {
  const params = parseParams(request, rawBody);
  if (params === undefined) {
    sendOAuthError(response, 400, 'invalid_request', 'the request body is not valid JSON');
    return;
  }

  // The grant type is checked before the client, so a request with a bad grant type and a wrong
  // client gets 400.
  const grantType = params.get('grant_type');
  if (grantType === undefined || grantType === '') {
    sendOAuthError(response, 400, 'invalid_request', 'the grant_type parameter is missing');
    return;
  }
  if (grantType !== GRANT_TYPE) {
    context.logger.info({ grantType }, 'token request rejected: unsupported grant type');
    sendOAuthError(
      response,
      400,
      'unsupported_grant_type',
      `grant type "${grantType}" is not supported; use "${GRANT_TYPE}"`,
    );
    return;
  }

  const client = authenticateClient(request, params, context.clients);
  if ('rejection' in client) {
    context.logger.info({ reason: client.rejection.description }, 'token request rejected');
    const { status, error, description, usedBasic } = client.rejection;
    sendOAuthError(
      response,
      status,
      error,
      description,
      usedBasic ? { 'WWW-Authenticate': BASIC_REALM } : {},
    );
    return;
  }

  const granted = issueOrReuse(context, client.clientId, faults);
  context.counts.tokenSuccesses += 1;
  sendJson(response, faults.status ?? 200, buildTokenBody(granted, faults));
}

function issueOrReuse(
  context: TokenEndpointContext,
  clientId: string,
  faults: TokenEndpointFaults,
): GrantedToken {
  const tokenId = (granted: GrantedToken) => granted.tokenHash.slice(0, 16);

  if (faults.reuseToken) {
    const reused = context.store.reuse(clientId);
    if (reused !== undefined) {
      context.logger.debug(
        { clientId, tokenId: tokenId(reused), expiresIn: reused.expiresIn },
        'token reused',
      );
      return reused;
    }
  }

  const issued = context.store.issue(clientId, context.expiresInSeconds());
  let revoked = 0;
  if (faults.revokePrevious) {
    revoked = context.store.revokeOthers(clientId, issued.accessToken);
  }
  context.logger.debug(
    { clientId, tokenId: tokenId(issued), expiresIn: issued.expiresIn, revoked },
    'token issued',
  );
  return issued;
}

/** Builds the Quiqup token response, with the field edits of the faults applied. */
function buildTokenBody(
  granted: GrantedToken,
  faults: TokenEndpointFaults,
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    access_token: granted.accessToken,
    created_at: granted.createdAt,
    expires_in: granted.expiresIn,
    token_type: 'bearer',
    ...faults.overrideFields,
  };
  for (const field of faults.omitFields ?? []) {
    delete body[field];
  }
  return body;
}

/**
 * Reads the request parameters from a JSON body (what Quiqup documents) or a form body (what
 * RFC 6749 specifies). Without a known content type, a body that starts with `{` counts as JSON.
 * Returns `undefined` for a body that claims to be JSON and is not a JSON object.
 */
function parseParams(request: IncomingMessage, rawBody: string): Map<string, string> | undefined {
  const type = mediaType(request);
  const looksLikeJson =
    type.endsWith('json') ||
    (type !== 'application/x-www-form-urlencoded' && rawBody.trimStart().startsWith('{'));

  if (!looksLikeJson) {
    return new Map(new URLSearchParams(rawBody));
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return undefined;
  }

  const params = new Map<string, string>();
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      params.set(name, String(value));
    }
  }
  return params;
}

interface ClientRejection {
  status: 400 | 401;
  error: 'invalid_client' | 'invalid_request';
  description: string;
  usedBasic: boolean;
}

/**
 * Finds the client from HTTP Basic credentials or from `client_id` and `client_secret` in the
 * body. Sending the secret both ways is rejected, as RFC 6749 section 2.3 allows one method only.
 */
function authenticateClient(
  request: IncomingMessage,
  params: Map<string, string>,
  clients: ReadonlyMap<string, string>,
): { clientId: string } | { rejection: ClientRejection } {
  const basic = parseBasicCredentials(request.headers.authorization);
  const usedBasic = basic !== undefined;

  if (basic !== undefined && params.has('client_secret')) {
    return {
      rejection: {
        status: 400,
        error: 'invalid_request',
        description:
          'client credentials were sent both in the Authorization header and in the body',
        usedBasic,
      },
    };
  }
  if (
    basic !== undefined &&
    params.has('client_id') &&
    params.get('client_id') !== basic.clientId
  ) {
    return {
      rejection: {
        status: 400,
        error: 'invalid_request',
        description: 'client_id in the body differs from the one in the Authorization header',
        usedBasic,
      },
    };
  }

  const clientId = basic?.clientId ?? params.get('client_id');
  const clientSecret = basic?.clientSecret ?? params.get('client_secret');
  const expectedSecret = clientId === undefined ? undefined : clients.get(clientId);
  if (
    clientId === undefined ||
    clientSecret === undefined ||
    expectedSecret === undefined ||
    !secretsMatch(clientSecret, expectedSecret)
  ) {
    return {
      rejection: {
        status: 401,
        error: 'invalid_client',
        description: 'client authentication failed: unknown client, wrong secret or no credentials',
        usedBasic,
      },
    };
  }
  return { clientId };
}

/**
 * Decodes `Authorization: Basic` credentials. RFC 6749 section 2.3.1 has the client form-encode
 * the id and secret before Base64, so both are form-decoded. A value that does not decode is
 * used as it is. Returns `undefined` for a missing header or another scheme, and no secret when
 * the decoded value has no colon.
 */
function parseBasicCredentials(
  header: string | undefined,
): { clientId: string; clientSecret: string | undefined } | undefined {
  const match = header?.match(/^basic\s+(\S+)\s*$/i);
  if (match?.[1] === undefined) {
    return undefined;
  }

  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) {
    return { clientId: formDecode(decoded), clientSecret: undefined };
  }
  return {
    clientId: formDecode(decoded.slice(0, colon)),
    clientSecret: formDecode(decoded.slice(colon + 1)),
  };
}

function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/** Compares two secrets in constant time; hashing first makes the lengths equal. */
function secretsMatch(given: string, expected: string): boolean {
  const givenHash = createHash('sha256').update(given).digest();
  const expectedHash = createHash('sha256').update(expected).digest();
  return timingSafeEqual(givenHash, expectedHash);
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { FaultController } from './faults.js';
import { sendJson } from './http-io.js';
import type { MockOAuthCounts } from './token-endpoint.js';
import type { TokenStore } from './token-store.js';

/** Server state that the protected resource reads and counts into. */
export interface ResourceContext {
  readonly store: TokenStore;
  readonly faults: FaultController;
  readonly counts: MockOAuthCounts;
  readonly logger: Logger;
}

const REALM = 'mock-oauth';

/** A fixed page of orders, so that callers can check that the body arrived. */
const ORDERS_BODY = Object.freeze({
  orders: [
    { id: 'order-1001', state: 'delivered' },
    { id: 'order-1002', state: 'in_transit' },
  ],
});

/**
 * Handles one request to the protected resource, any method: 200 with the orders for an active
 * bearer token, else 401 with a `WWW-Authenticate` challenge as RFC 6750 section 3 describes.
 */
export function handleResourceRequest(
  context: ResourceContext,
  request: IncomingMessage,
  response: ServerResponse,
): void {
  context.counts.resourceRequests += 1;

  const token = readBearerToken(request.headers.authorization);
  const forced = context.faults.resourceFaults().alwaysUnauthorized === true;

  if (token === undefined) {
    context.counts.resourceUnauthorized += 1;
    sendJson(
      response,
      401,
      { error: 'unauthorized', error_description: 'no bearer token in the Authorization header' },
      { 'WWW-Authenticate': `Bearer realm="${REALM}"` },
    );
    return;
  }

  if (forced || !context.store.isActive(token)) {
    context.counts.resourceUnauthorized += 1;
    const description = forced
      ? 'the access token was rejected by fault'
      : 'the access token is unknown, revoked or expired';
    context.logger.debug({ forced }, 'resource request rejected');
    sendJson(
      response,
      401,
      { error: 'invalid_token', error_description: description },
      { 'WWW-Authenticate': `Bearer realm="${REALM}", error="invalid_token"` },
    );
    return;
  }

  context.counts.resourceOk += 1;
  sendJson(response, 200, ORDERS_BODY);
}

/** Returns the token of an `Authorization: Bearer` header (scheme in any case), if there is one. */
function readBearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

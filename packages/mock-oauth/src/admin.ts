import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MockOAuthFaults } from './faults.js';
import { BodyTooLargeError, readBody, sendJson, sendNoContent, sendOAuthError } from './http-io.js';
import { isPlainObject } from './invalid-argument.js';
import { validateExpiresIn } from './options.js';
import type { MockOAuthServer } from './server.js';

/** Path prefix of the admin endpoints; none of them counts as a token or resource request. */
export const ADMIN_PATH_PREFIX = '/__';

type AdminHandler = (
  server: MockOAuthServer,
  request: IncomingMessage,
  response: ServerResponse,
) => Promise<void> | void;

/** Admin routes: path, then method, then handler. */
const ROUTES: Record<string, Record<string, AdminHandler>> = {
  '/__faults': {
    GET: (server, _request, response) => sendJson(response, 200, server.currentFaults()),
    POST: setFaults,
    PUT: setFaults,
    DELETE: (server, _request, response) => {
      server.clearFaults();
      sendNoContent(response);
    },
  },
  '/__counts': {
    GET: (server, _request, response) => sendJson(response, 200, server.counts()),
  },
  '/__counts/reset': {
    POST: (server, _request, response) => {
      server.resetCounts();
      sendNoContent(response);
    },
  },
  '/__expires-in': {
    GET: (server, _request, response) => sendJson(response, 200, { expiresIn: server.expiresIn }),
    POST: setExpiresIn,
    PUT: setExpiresIn,
  },
  '/__tokens': {
    GET: (server, _request, response) => sendJson(response, 200, server.issuedTokens()),
  },
  '/__tokens/revoke': {
    POST: revokeTokens,
  },
};

/**
 * Handles one admin request, so that tests in another process can steer the server: `GET`,
 * `POST`, `DELETE /__faults`; `GET /__counts`; `POST /__counts/reset`; `GET`, `POST /__expires-in`;
 * `GET /__tokens`; `POST /__tokens/revoke`.
 */
export async function handleAdminRequest(
  server: MockOAuthServer,
  request: IncomingMessage,
  response: ServerResponse,
  path: string,
): Promise<void> {
  const methods = ROUTES[path];
  if (methods === undefined) {
    sendJson(response, 404, { error: 'not_found', error_description: `no admin endpoint ${path}` });
    return;
  }

  const handler = methods[request.method ?? ''];
  if (handler === undefined) {
    const allowed = Object.keys(methods).join(', ');
    sendOAuthError(response, 405, 'invalid_request', `${path} accepts ${allowed}`, {
      Allow: allowed,
    });
    return;
  }

  await handler(server, request, response);
}

async function setFaults(
  server: MockOAuthServer,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const body = await readJsonBody(request, response);
  if (body === undefined) {
    return;
  }

  try {
    server.setFaults(body as MockOAuthFaults);
  } catch (error) {
    if (error instanceof TypeError) {
      sendOAuthError(response, 400, 'invalid_request', error.message);
      return;
    }
    throw error;
  }
  sendJson(response, 200, server.currentFaults());
}

async function setExpiresIn(
  server: MockOAuthServer,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const body = await readJsonBody(request, response);
  if (body === undefined) {
    return;
  }

  try {
    server.setExpiresIn(validateExpiresIn(body.expiresIn, 'expiresIn'));
  } catch (error) {
    if (error instanceof TypeError) {
      sendOAuthError(response, 400, 'invalid_request', error.message);
      return;
    }
    throw error;
  }
  sendJson(response, 200, { expiresIn: server.expiresIn });
}

/** Revokes the token in `{ "token": "..." }`, or every token for an empty body. */
async function revokeTokens(
  server: MockOAuthServer,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const body = await readJsonBody(request, response);
  if (body === undefined) {
    return;
  }

  if (body.token === undefined) {
    sendJson(response, 200, { revoked: server.revokeTokens() });
    return;
  }
  if (typeof body.token !== 'string') {
    sendOAuthError(response, 400, 'invalid_request', '"token" must be a string');
    return;
  }
  sendJson(response, 200, { revoked: server.revokeToken(body.token) ? 1 : 0 });
}

/** Reads a JSON object body; sends 400 or 413 and returns `undefined` when there is none. */
async function readJsonBody(
  request: IncomingMessage,
  response: ServerResponse,
): Promise<Record<string, unknown> | undefined> {
  let raw: string;
  try {
    raw = await readBody(request);
  } catch (error) {
    if (error instanceof BodyTooLargeError) {
      sendOAuthError(response, 413, 'invalid_request', error.message);
    }
    return undefined;
  }

  let parsed: unknown;
  try {
    parsed = JSON.parse(raw === '' ? '{}' : raw);
  } catch {
    sendOAuthError(response, 400, 'invalid_request', 'the request body is not valid JSON');
    return undefined;
  }
  if (!isPlainObject(parsed)) {
    sendOAuthError(response, 400, 'invalid_request', 'the request body must be a JSON object');
    return undefined;
  }
  return parsed;
}

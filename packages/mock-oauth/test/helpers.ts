import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MockOAuthServer } from '../src/index.js';

export const DEMO_CLIENT = { clientId: 'demo-client', clientSecret: 'demo-secret' };

/** Builds the JSON body that Quiqup documents for a token request, with `overrides` merged in. */
export function quiqupBody(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    client_id: DEMO_CLIENT.clientId,
    client_secret: DEMO_CLIENT.clientSecret,
    grant_type: 'client_credentials',
    ...overrides,
  });
}

export interface SimpleResponse {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown>;
}

/** Sends `POST /oauth/token` with a JSON body (or `init` overrides) and reads the whole response. */
export async function postToken(
  server: MockOAuthServer,
  body: string = quiqupBody(),
  headers: Record<string, string> = { 'Content-Type': 'application/json' },
): Promise<SimpleResponse> {
  const response = await fetch(server.tokenUrl, { method: 'POST', body, headers });
  return readResponse(response);
}

/** Fetches a new token with the demo client and returns it; fails the test on any other response. */
export async function fetchToken(server: MockOAuthServer): Promise<string> {
  const response = await postToken(server);
  if (response.status !== 200 || typeof response.json.access_token !== 'string') {
    throw new Error(`token request failed with HTTP ${response.status}: ${response.text}`);
  }
  return response.json.access_token;
}

/** Calls the protected resource with `Authorization: Bearer token`, or with no header. */
export async function callResource(
  server: MockOAuthServer,
  token?: string,
  method = 'GET',
): Promise<SimpleResponse> {
  const headers: Record<string, string> =
    token === undefined ? {} : { Authorization: `Bearer ${token}` };
  return readResponse(await fetch(server.resourceUrl, { method, headers }));
}

export async function readResponse(response: Response): Promise<SimpleResponse> {
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON: the test reads `text`.
  }
  return { status: response.status, headers: response.headers, text, json };
}

/**
 * Sends a POST with node:http, which reports a reset socket as an error with a `code`, so tests
 * can tell a reset from a response. Resolves with the status and body, rejects on socket errors.
 */
export function rawPost(
  url: string,
  body: string,
  headers: Record<string, string> = { 'Content-Type': 'application/json' },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'POST', headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Waits until `condition` holds, checking every 10 ms; throws after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms`);
    }
    await sleep(10);
  }
}

/** Encodes an HTTP Basic `Authorization` value. */
export function basicAuth(clientId: string, clientSecret: string): string {
  return `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
}

import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Maximum request body, in bytes; token requests are a few hundred bytes. Larger bodies get 413. */
export const MAX_BODY_BYTES = 64 * 1024;

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Thrown by {@link readBody} when the body passes {@link MAX_BODY_BYTES}. */
export class BodyTooLargeError extends Error {
  constructor() {
    super(`request body is larger than ${MAX_BODY_BYTES} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** Reads the whole request body as UTF-8; rejects with {@link BodyTooLargeError} past the limit. */
export function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;

    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        request.removeAllListeners('data');
        request.resume();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

/** Sends `body` as JSON with `Cache-Control: no-store`, as OAuth2 token responses require. */
export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  sendText(response, status, JSON.stringify(body), JSON_CONTENT_TYPE, headers);
}

/** Sends a raw body with the given content type; does nothing once the socket is gone. */
export function sendText(
  response: ServerResponse,
  status: number,
  body: string,
  contentType: string,
  headers: OutgoingHttpHeaders = {},
): void {
  if (response.destroyed || response.headersSent) {
    return;
  }

  response.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    Pragma: 'no-cache',
    ...headers,
  });
  response.end(body);
}

/** Sends 204 No Content. */
export function sendNoContent(response: ServerResponse): void {
  if (response.destroyed || response.headersSent) {
    return;
  }
  response.writeHead(204, { 'Cache-Control': 'no-store' });
  response.end();
}

/** Sends an OAuth2 error body (`error`, `error_description`) with the given status. */
export function sendOAuthError(
  response: ServerResponse,
  status: number,
  error: string,
  description: string,
  headers: OutgoingHttpHeaders = {},
): void {
  sendJson(response, status, { error, error_description: description }, headers);
}

/** Returns the media type of a request without parameters, lower-case, or '' when absent. */
export function mediaType(request: IncomingMessage): string {
  const header = request.headers['content-type'] ?? '';
  return (header.split(';')[0] ?? '').trim().toLowerCase();
}

/** Target size of the built-in HTML error page, in bytes. */
const HTML_PAGE_BYTES = 5 * 1024;

/**
 * Builds the HTML page of the `htmlBody: true` fault: about 5 KB, like the error page of a load
 * balancer, so that clients can check that they cut the body down in error messages.
 */
export function buildHtmlErrorPage(status: number): string {
  const head = `<!DOCTYPE html>\n<html>\n<head><title>${status} Error</title></head>\n<body>\n<h1>${status} Error</h1>\n<p>The upstream server did not return a valid response.</p>\n`;
  const tail = '</body>\n</html>\n';
  const line = '<p class="filler">This page stands in for an HTML error page from a proxy.</p>\n';

  let page = head;
  while (page.length + line.length + tail.length <= HTML_PAGE_BYTES) {
    page += line;
  }
  return page + tail;
}

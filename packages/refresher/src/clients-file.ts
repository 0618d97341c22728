import type { OAuth2ClientCredentialsOptions, QuiqupOptions } from '@tokenfleet/core';

/** One client to renew tokens for, before the core checks its options. */
export interface ClientEntry {
  type: 'quiqup' | 'oauth2';
  /** The variable that configured the client, for `ConfigError.variable`. */
  variable: string;
  /** Origin of the client for messages, such as `TOKENFLEET_CLIENTS_FILE clients[2]`. */
  description: string;
  options: QuiqupOptions | OAuth2ClientCredentialsOptions;
}

/** Fields each client type accepts in the file; an unknown field is an error, so a typo is caught. */
const ALLOWED_FIELDS: Readonly<Record<ClientEntry['type'], ReadonlySet<string>>> = Object.freeze({
  quiqup: new Set(['environment', 'clientId', 'baseUrl', 'defaultExpiresInMs']),
  oauth2: new Set([
    'tokenUrl',
    'clientId',
    'scope',
    'audience',
    'resource',
    'authMethod',
    'bodyFormat',
    'extraParams',
    'defaultExpiresInMs',
  ]),
});

/**
 * Parses the JSON of `TOKENFLEET_CLIENTS_FILE`:
 * `{ "clients": [{ "type": "quiqup" | "oauth2", ...options, "clientSecretEnv": "VAR" }] }`.
 * Each secret comes from `clientSecret`, or from the variable that `clientSecretEnv` names so
 * that the file itself can hold no secret. Returns the clients, or a message saying what is wrong.
 */
export function parseClientsFile(
  text: string,
  read: (name: string) => string | undefined,
): ClientEntry[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  const clients = (parsed as { clients?: unknown } | null)?.clients;
  if (!Array.isArray(clients) || clients.length === 0) {
    return 'expected an object with a non-empty "clients" array';
  }

  const entries: ClientEntry[] = [];
  for (const [index, client] of clients.entries()) {
    const entry = parseClient(client, `clients[${index}]`, read);
    if (typeof entry === 'string') {
      return entry;
    }
    entries.push(entry);
  }
  return entries;
}

function parseClient(
  client: unknown,
  path: string,
  read: (name: string) => string | undefined,
): ClientEntry | string {
  if (client === null || typeof client !== 'object' || Array.isArray(client)) {
    return `${path} must be an object`;
  }
  const { type, clientSecret, clientSecretEnv, ...fields } = client as Record<string, unknown>;
  if (type !== 'quiqup' && type !== 'oauth2') {
    return `${path}.type must be "quiqup" or "oauth2"`;
  }
  const unknown = Object.keys(fields).filter((name) => !ALLOWED_FIELDS[type].has(name));
  if (unknown.length > 0) {
    const allowed = [...ALLOWED_FIELDS[type], 'clientSecret', 'clientSecretEnv'].join(', ');
    return `${path} has unknown fields ${unknown.join(', ')}; a ${type} client accepts ${allowed}`;
  }

  const secret = readSecret(clientSecret, clientSecretEnv, path, read);
  if (typeof secret !== 'string') {
    return secret.problem;
  }
  return {
    type,
    variable: 'TOKENFLEET_CLIENTS_FILE',
    description: `TOKENFLEET_CLIENTS_FILE ${path}`,
    options: { ...fields, clientSecret: secret } as unknown as ClientEntry['options'],
  };
}

/** Returns the secret, or `{ problem }` naming what is missing; a problem never quotes a secret. */
function readSecret(
  clientSecret: unknown,
  clientSecretEnv: unknown,
  path: string,
  read: (name: string) => string | undefined,
): string | { problem: string } {
  if (clientSecret !== undefined && clientSecretEnv !== undefined) {
    return { problem: `${path} sets both clientSecret and clientSecretEnv; keep one` };
  }
  if (clientSecretEnv !== undefined) {
    if (typeof clientSecretEnv !== 'string' || clientSecretEnv === '') {
      return { problem: `${path}.clientSecretEnv must name an environment variable` };
    }
    const secret = read(clientSecretEnv);
    if (secret === undefined) {
      return { problem: `${path}.clientSecretEnv names ${clientSecretEnv}, which is not set` };
    }
    return secret;
  }
  if (typeof clientSecret !== 'string' || clientSecret === '') {
    return { problem: `${path} needs clientSecret or clientSecretEnv` };
  }
  return clientSecret;
}

// Runs under plain `node` (no tsx) in a folder where the packed tokenfleet packages are installed,
// so every import below loads a package's built dist entry. Prints one JSON line for the test.
//
// Usage: node installed-check.mjs <redis-url> <key-prefix>

import { COMMANDS } from '@tokenfleet/cli';
import { createTokenCache, oauth2ClientCredentials } from '@tokenfleet/core';
import { startMockOAuthServer } from '@tokenfleet/mock-oauth';
import { createRenewalQueue } from '@tokenfleet/refresher';

const PACKAGES = [
  '@tokenfleet/core',
  '@tokenfleet/mock-oauth',
  '@tokenfleet/refresher',
  '@tokenfleet/cli',
];

const [redisUrl, keyPrefix] = process.argv.slice(2);
if (!redisUrl || !keyPrefix) {
  throw new TypeError('usage: node installed-check.mjs <redis-url> <key-prefix>');
}

const server = await startMockOAuthServer({ preset: 'staging' });
const provider = oauth2ClientCredentials({
  tokenUrl: server.tokenUrl,
  clientId: 'demo-client',
  clientSecret: 'demo-secret',
});
// Two caches stand for two pods: the second one can only get the token through the Lua read script.
const first = createTokenCache({ redis: redisUrl, provider, keyPrefix });
const second = createTokenCache({ redis: redisUrl, provider, keyPrefix });

try {
  const fetched = await first.getTokenInfo();
  const shared = await second.getTokenInfo();
  const deleted = await second.invalidate(shared.token);

  const result = {
    entries: PACKAGES.map((name) =>
      new URL(import.meta.resolve(name)).pathname.split('/node_modules/').at(-1),
    ),
    fetchedSource: fetched.source,
    sharedSource: shared.source,
    sameToken: fetched.token === shared.token,
    tokenActive: server.isTokenActive(fetched.token),
    tokenRequests: server.counts().tokenRequests,
    deleted,
    createRenewalQueue: typeof createRenewalQueue,
    commands: COMMANDS.map((command) => command.spec.name),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await Promise.all([first.close(), second.close(), server.close()]);
}

export type {
  MockOAuthFaults,
  ResourceFaults,
  TokenEndpointFaults,
} from './faults.js';
export { validateFaults } from './faults.js';
export type { InvalidArgumentError } from './invalid-argument.js';
export type {
  MockOAuthClient,
  MockOAuthPreset,
  MockOAuthServerOptions,
} from './options.js';
export { DEFAULT_MOCK_OAUTH_OPTIONS, PRESET_EXPIRES_IN_SECONDS } from './options.js';
export type { MockOAuthServer } from './server.js';
export { RESOURCE_PATH, startMockOAuthServer, TOKEN_PATH } from './server.js';
export type { MockOAuthCounts } from './token-endpoint.js';
export type { IssuedTokenInfo } from './token-store.js';
export { hashToken } from './token-store.js';

#!/usr/bin/env node
// Starts the TypeScript source through tsx, for use inside the repository. The published package
// runs dist/bin.js instead (publishConfig.bin), which needs no tsx.
const { register } = await import('tsx/esm/api');
register();
await import(new URL('../src/bin.ts', import.meta.url).href);

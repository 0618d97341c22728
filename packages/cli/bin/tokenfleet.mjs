#!/usr/bin/env node
// Starts the compiled command when the package is built, else the TypeScript source through tsx,
// as in the repository, where nothing is built.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/bin.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/bin.ts', import.meta.url).href);
}

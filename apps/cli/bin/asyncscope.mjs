#!/usr/bin/env node
// Runs the TypeScript sources through tsx: the workspace packages it uses are TypeScript sources too.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');

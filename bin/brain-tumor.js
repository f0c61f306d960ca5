#!/usr/bin/env node
// The `brain-tumor` CLI. The code is TypeScript; tsx runs it without a build step.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');

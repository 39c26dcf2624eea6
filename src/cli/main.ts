#!/usr/bin/env node
// The CLI's entry. It stays tiny so that `remocal exec` can start the session's intproxy before the rest of
// the CLI (config schema, commands) is even loaded; see prewarm.ts.

import { prewarmIntproxy } from './prewarm.js';

// Stack traces of the minified bundle are only readable through its source maps, and only --verbose shows them.
if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true);

if (process.argv[2] === 'exec' && !process.argv.includes('--help') && !process.argv.includes('-h')) prewarmIntproxy();

await import('./program.js');

// The entry of the layer bundle (dist/layer.cjs), preloaded into every Node process of a session with
// NODE_OPTIONS=--require. It runs before the app's own code, in the main thread and in every worker thread
// (a worker is part of the app), and must cost nothing where it has nothing to do.

import { isMainThread, workerData } from 'node:worker_threads';
import type { LayerSettings } from '../protocol/contracts.js';
import { createRemoteClient } from './client.js';
import { SYNC_WORKER_MARKER } from './fs/sync.js';
import { installLayer } from './install.js';
import { isPackageManagerCli } from './policy.js';
import { readLayerSettings } from './settings.js';

const kInstalled = Symbol.for('remocal.layer.installed');

function start(): void {
  let settings: LayerSettings | null;
  try {
    settings = readLayerSettings();
  } catch (error) {
    throw new Error(`remocal: the REMOCAL_LAYER environment variable is not valid JSON (${(error as Error).message})`);
  }
  if (settings === null) return;
  // The layer's own sync worker (fs/sync.ts) is not the app's: hooked, its file calls would wait on themselves.
  if (!isMainThread && (workerData as Record<string, unknown> | null)?.[SYNC_WORKER_MARKER] === true) return;
  // npm and npx themselves (not the scripts they start) stay out of the session: see isPackageManagerCli.
  if (isPackageManagerCli(process.argv[1])) return;
  // --require given twice, or a second copy of the layer bundled into the app: the first one is enough.
  const global = globalThis as Record<symbol, unknown>;
  if (global[kInstalled]) return;
  global[kInstalled] = true;
  installLayer(createRemoteClient(settings), settings);
}

start();

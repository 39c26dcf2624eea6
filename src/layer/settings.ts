// The layer's side of the CLI → layer contract (protocol/contracts.ts): its settings, read from the env.

import { LAYER_SETTINGS_ENV, type LayerSettings } from '../protocol/contracts.js';

export function readLayerSettings(env: NodeJS.ProcessEnv = process.env): LayerSettings | null {
  const raw = env[LAYER_SETTINGS_ENV];
  if (raw === undefined || raw === '') return null;
  return JSON.parse(raw) as LayerSettings;
}

// What the CLI tells the layer, through the REMOCAL_LAYER env var (JSON). It is already resolved and
// validated by the config module: the layer, loaded into every process, must not pay for a schema library.

export const LAYER_SETTINGS_ENV = 'REMOCAL_LAYER';

export interface LayerSettings {
  /** The intproxy's unix socket. */
  socket: string;
  /** An id for logs. */
  session: string;
  outgoing: {
    /** mirrord's outgoing filter: at most one of the two lists is set. Address patterns, see config/address-pattern.ts. */
    filter: { local?: string[]; remote?: string[] };
    /** Connections to loopback addresses stay local (mirrord's `ignore_localhost`, true here by default). */
    ignoreLocalhost: boolean;
    tcp: boolean;
  };
  dns: {
    enabled: boolean;
  };
  /** pino level names; "silent" by default so that the app's own output is untouched. */
  logLevel: string;
}

export function readLayerSettings(env: NodeJS.ProcessEnv = process.env): LayerSettings | null {
  const raw = env[LAYER_SETTINGS_ENV];
  if (raw === undefined || raw === '') return null;
  return JSON.parse(raw) as LayerSettings;
}

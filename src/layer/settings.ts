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
    /** dgram sockets send from the target (to addresses the filter does not keep local). */
    udp: boolean;
  };
  dns: {
    enabled: boolean;
    /** mirrord's dns.filter: names listed in `local` resolve locally; or only those in `remote` resolve remotely. */
    filter: { local?: string[]; remote?: string[] };
  };
  incoming: {
    /** off: listens stay local and nothing is subscribed. */
    mode: 'mirror' | 'steal' | 'off';
    /** mirrord's port_mapping: [local, remote] pairs; the app listens on local, traffic comes from remote. */
    portMapping: [number, number][];
    /** mirrord's listen_ports: [asked, actual] pairs; the app asks for asked, the layer listens on actual. */
    listenPorts: [number, number][];
    /** Ports (as the app asks for them) that are never subscribed. */
    ignorePorts: number[];
    /** When set, only these ports (as the app asks for them) are subscribed. */
    ports: number[] | null;
    /** Listens on loopback addresses are not subscribed. */
    ignoreLocalhost: boolean;
  };
  /** Remote files: the mode and the user's regex lists (case-insensitive, on absolute paths); see createFilePolicy. */
  files: {
    mode: 'local' | 'localwithoverrides' | 'read' | 'write';
    readWrite: string[];
    readOnly: string[];
    local: string[];
    notFound: string[];
  };
  /** pino level names; "silent" by default so that the app's own output is untouched. */
  logLevel: string;
}

export function readLayerSettings(env: NodeJS.ProcessEnv = process.env): LayerSettings | null {
  const raw = env[LAYER_SETTINGS_ENV];
  if (raw === undefined || raw === '') return null;
  return JSON.parse(raw) as LayerSettings;
}

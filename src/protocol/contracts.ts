// What remocal's processes hand each other outside the links of messages.ts: the settings a process is
// started with (JSON in one env var each, or an IPC message for a prewarmed intproxy), what the intproxy
// reports to the CLI over Node's IPC channel, and the failure codes that one side sends and the other matches.
//
//   CLI ──LayerSettings──▶ layer        CLI ──IntproxySettings──▶ intproxy ──IntproxyReport──▶ CLI
//   CLI ──KubeLinkSettings, in the intproxy's AgentLaunch──▶ kube-link
//
// The two ends of each contract live in different folders (the layer even in a bundle of its own), so the
// shapes live here, where both can reach them without reaching into each other. This file is a leaf: it
// imports nothing of the project but messages.ts, so that taking a shape never brings the code of the process
// at the other end along (nor a circle of imports back to it).

import type { HttpFilterSpec, IncomingMode, OnConcurrentSteal } from './messages.js';

// --- CLI → layer ------------------------------------------------------------------------------------------

export const LAYER_SETTINGS_ENV = 'REMOCAL_LAYER';

/**
 * What the CLI tells the layer. It is already resolved and validated by the config module: the layer, loaded
 * into every process, must not pay for a schema library.
 */
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

// --- CLI ⇄ intproxy -----------------------------------------------------------------------------------------

export const INTPROXY_SETTINGS_ENV = 'REMOCAL_INTPROXY';

export interface IntproxySettings {
  socket: string;
  agent: AgentLaunch;
  logFile: string;
  logLevel: string;
  startupTimeoutMs: number;
  incoming: IncomingSettings;
}

/** How the intproxy starts the agent (a platform builds it): a command whose stdio speaks the protocol. */
export interface AgentLaunch {
  command: string;
  args: string[];
  /** Words for messages: "pid/4242". */
  target: string;
  /** Added to the child's environment (secrets, which must not be in argv). */
  env?: Record<string, string>;
  /** Ping the agent this often; a ping unanswered for as long again means the link is gone. */
  pingIntervalMs?: number;
}

/** What the intproxy adds to each subscription a layer asks for. */
export interface IncomingSettings {
  mode: IncomingMode | 'off';
  filter: HttpFilterSpec | null;
  /**
   * feature.network.incoming.on_concurrent_steal (unset: `abort`). On a refusal because another session holds the
   * port (or the same filter), `abort` and `override` end the session, `continue` goes on without the port.
   */
  onConcurrentSteal?: OnConcurrentSteal;
}

export type IntproxyReport =
  | { type: 'ready'; env: Record<string, string> | null; agent: Record<string, string | number> | undefined }
  | { type: 'fatal'; error: SerializedError }
  /** A port of the target now sends its traffic to the app: the user sees it happen. */
  | {
      type: 'subscribed';
      port: number;
      localPort: number;
      mode: 'mirror' | 'steal';
      filtered: boolean;
      /** The sessions the port was taken from (on_concurrent_steal: override). */
      displaced?: { session: string; owner: string }[];
    }
  | { type: 'subscribe_failed'; port: number; code: string; message: string; hint?: string }
  /** The agent's word for the user, as it came (see AgentEvent `notice`). */
  | { type: 'notice'; code: string; message: string; hint?: string };

/** Wire form of a RemocalError (wire-error.ts makes and rebuilds it), for the IPC between the intproxy and the CLI. */
export interface SerializedError {
  code: string;
  message: string;
  hint?: string | undefined;
}

// --- CLI → kube-link (platform/kubernetes/link-entry.ts) ---------------------------------------------------

export const KUBE_LINK_ENV = 'REMOCAL_KUBE_LINK';

/** What the kube-link process needs to reach the agent. */
export interface KubeLinkSettings {
  kubeconfig?: string | undefined;
  /** Use the pod's own service account (the operator, running as a Deployment). */
  inCluster?: boolean | undefined;
  context?: string | undefined;
  namespace: string;
  pod: string;
  port: number;
  /** How long to keep retrying while the agent starts listening. */
  timeoutMs: number;
}

// --- failure codes that one side sends and the other matches ---------------------------------------------
// Any other code is either native (an errno or getaddrinfo name, passed to the app as it is) or one of remocal's
// own, which a receiver tells apart from the native ones by REMOCAL_CODE_PREFIX alone.

/** Remocal's own failure codes start so (the error catalog's, the agent's): remocal failed, not the target's network. */
export const REMOCAL_CODE_PREFIX = 'REMOCAL_';

/**
 * The answer to a request that could not be passed on because a link went away (layer → intproxy, or
 * intproxy → agent). A real errno, so that an app that sees it sees a native error.
 */
export const LINK_LOST_CODE = 'ECONNABORTED';

/** fs.readFile of a file larger than one message: the agent refuses it, and the layer reads it through open/read. */
export const FILE_TOO_LARGE = 'REMOCAL_FILE_TOO_LARGE';

/**
 * A session that the operator ends itself, when no `session_closed` event can come through its agent (the shared
 * agent died), closes the session's WebSocket with this code and `<error code> <reason>` as the close reason; a
 * session the operator refuses at its WebSocket answers with a Status that carries remocal's code and hint.
 * Either way operator-link writes SESSION_ENDED_PREFIX and a SessionEnded as JSON as its last stderr line, and
 * exits with SESSION_ENDED_EXIT_CODE, so the intproxy reports it in the operator's words, not as a lost agent.
 */
export const SESSION_ENDED_CLOSE_CODE = 4001;
export const SESSION_ENDED_EXIT_CODE = 3;
export const SESSION_ENDED_PREFIX = 'session ended: ';

export interface SessionEnded extends SerializedError {
  /** Refused before it began, rather than ended. */
  refused: boolean;
}
/** A WebSocket close reason holds at most this many bytes. */
export const MAX_CLOSE_REASON_BYTES = 123;

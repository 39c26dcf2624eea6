// The forwards of `remocal port-forward`, as ssh writes them:
//
//   -L [local_port:]host:port   a local port whose connections are opened from the target to host:port (the
//                               target's DNS and network apply: "postgres.staging", "localhost" is the target's)
//   -R [remote_port:]local_port the target's port, whose traffic (mirrored or stolen, as the config's incoming
//                               mode says) reaches this machine's local_port

import { UsageError } from '../../core/errors.js';

export interface LocalForward {
  localPort: number;
  host: string;
  port: number;
}

export interface RemoteForward {
  remotePort: number;
  localPort: number;
}

function port(text: string, what: string, spec: string, flag: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535) {
    throw new UsageError(`${flag} ${spec}: ${what} "${text}" is not a port (1–65535).`, { hint: flag === '-L' ? 'Write -L [local_port:]host:port, as in -L 5432:postgres:5432.' : 'Write -R [remote_port:]local_port, as in -R 8080:3000.' });
  }
  return value;
}

export function parseLocalForward(spec: string): LocalForward {
  // An IPv6 host is bracketed: -L 8080:[fd00::1]:80.
  const match = /^(?:(\d+):)?(\[[^\]]+\]|[^:]+):(\d+)$/.exec(spec);
  if (match === null) throw new UsageError(`-L ${spec} is not a forward: write -L [local_port:]host:port, as in -L 5432:postgres.staging:5432.`);
  const remote = port(match[3]!, 'the port', spec, '-L');
  return { localPort: match[1] === undefined ? remote : port(match[1], 'the local port', spec, '-L'), host: match[2]!.replace(/^\[|\]$/g, ''), port: remote };
}

export function parseRemoteForward(spec: string): RemoteForward {
  const match = /^(?:(\d+):)?(\d+)$/.exec(spec);
  if (match === null) throw new UsageError(`-R ${spec} is not a forward: write -R [remote_port:]local_port, as in -R 8080:3000.`);
  const local = port(match[2]!, 'the local port', spec, '-R');
  return { remotePort: match[1] === undefined ? local : port(match[1], 'the remote port', spec, '-R'), localPort: local };
}

export const FORWARDS_ENV = 'REMOCAL_FORWARDS';

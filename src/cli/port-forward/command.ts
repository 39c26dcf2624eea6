// `remocal port-forward` is a session like `exec`, whose command is remocal's own forwarder: the forwards
// get exactly the target's network, DNS and incoming traffic an app would, through the same layer and agent.

import { distFile } from '../../core/paths.js';
import { UsageError } from '../../core/errors.js';
import type { ExecRequest } from '../exec.js';
import { FORWARDS_ENV, parseLocalForward, parseRemoteForward } from './specs.js';

export function portForwardRequest(specs: { local: string[]; remote: string[] }, base: Omit<ExecRequest, 'command'>): ExecRequest {
  if (specs.local.length === 0 && specs.remote.length === 0) {
    throw new UsageError('Nothing to forward: give at least one -L [local_port:]host:port or -R [remote_port:]local_port.');
  }
  const local = specs.local.map(parseLocalForward);
  const remote = specs.remote.map(parseRemoteForward);
  const clash = local.find((forward) => remote.some((other) => other.remotePort === forward.localPort));
  if (clash !== undefined) throw new UsageError(`Port ${clash.localPort} is both a -L local port and a -R remote port; use another local port for -L.`);
  return {
    ...base,
    commandEnv: { [FORWARDS_ENV]: JSON.stringify({ local, remote }) },
    // Said to the operator, where a policy may forbid port forwarding.
    platforms: { ...base.platforms, operator: { ...base.platforms.operator, purpose: 'port-forward' } },
    command: [process.execPath, distFile('forwarder.js')],
    incoming: remote.length > 0 ? base.incoming : { mode: 'off', filter: null },
    layer: {
      ...base.layer,
      // "localhost" in -L is the target's own loopback; only the -R local ports are this machine's.
      outgoing: { ...base.layer.outgoing, ignoreLocalhost: false, filter: { local: remote.map((forward) => `tcp://127.0.0.1:${forward.localPort}`) } },
      // Only the -R listeners stand for the target's ports.
      // Each -R listener binds a free local port: binding the remote port's number here could take the local
      // port it forwards to (-R 3000 would then forward to itself).
      incoming: {
        ...base.layer.incoming,
        ports: remote.map((forward) => forward.remotePort),
        ignorePorts: [],
        ignoreLocalhost: false,
        portMapping: [],
        listenPorts: remote.map((forward) => [forward.remotePort, 0] as [number, number]),
      },
      files: { ...base.layer.files, mode: 'local' },
    },
  };
}

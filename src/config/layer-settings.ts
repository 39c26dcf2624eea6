// What the layer (inside the user's process) gets from the resolved config. The layer reads this through
// one env var and must not load the schema library, so only plain, already validated data goes over.

import type { LayerSettings } from '../protocol/contracts.js';
import type { RemocalConfig } from './options.js';

export function toLayerSettings(config: RemocalConfig, session: { socket: string; session: string }): LayerSettings {
  const { outgoing, dns, incoming } = config.feature.network;
  const filter = outgoing.filter;
  const fs = config.feature.fs;
  return {
    socket: session.socket,
    session: session.session,
    outgoing: {
      filter: filter === undefined ? {} : filter.local !== undefined ? { local: [...filter.local] } : { remote: [...filter.remote] },
      ignoreLocalhost: outgoing.ignore_localhost,
      tcp: outgoing.tcp,
      udp: outgoing.udp,
    },
    dns: {
      enabled: dns.enabled,
      filter: dns.filter === undefined ? {} : dns.filter.local !== undefined ? { local: [...dns.filter.local] } : { remote: [...dns.filter.remote] },
    },
    incoming: {
      mode: incoming.mode,
      portMapping: incoming.port_mapping.map(([local, remote]) => [local, remote] as [number, number]),
      listenPorts: incoming.listen_ports.map(([asked, actual]) => [asked, actual] as [number, number]),
      ignorePorts: [...incoming.ignore_ports],
      ports: incoming.ports === undefined ? null : [...incoming.ports],
      ignoreLocalhost: incoming.ignore_localhost,
    },
    files: {
      mode: fs.mode,
      readWrite: [...(fs.read_write ?? [])],
      readOnly: [...(fs.read_only ?? [])],
      local: [...(fs.local ?? [])],
      notFound: [...(fs.not_found ?? [])],
    },
    logLevel: config.layer.log_level,
  };
}

// Wires the layer into this process: one policy from the settings, the hooks of each feature defined on one patch
// registry, applied together. Used by the preload, and directly by tests with a Remote of their own.

import dns from 'node:dns';
import fs from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { syncBuiltinESMExports } from 'node:module';
import type { LayerSettings } from '../protocol/contracts.js';
import type { LookupAddress } from '../protocol/messages.js';
import { defineDnsHooks } from './dns/hooks.js';
import { DnsOps, type ResultOrder } from './dns/ops.js';
import { defineNetHooks } from './net/hooks.js';
import { NetOps, type LocalLookup } from './net/ops.js';
import { defineIncomingHooks } from './incoming/hooks.js';
import { IncomingOps } from './incoming/ops.js';
import { createLayerLog, writeStderrLine, type LayerLog } from './log.js';
import { PatchRegistry } from './patches.js';
import { createPolicy, createUdpPolicy } from './policy.js';
import type { Remote } from './remote.js';
import { defineUdpHooks } from './udp/hooks.js';
import { defineFsHooks } from './fs/hooks.js';
import { FileOps } from './fs/ops.js';
import { createFilePolicy, type LocalFacts } from './policy.js';
import { UdpOps, type UdpLookup } from './udp/ops.js';

/** Patches net, dns and (unless incoming is off) listen for this process; the returned function puts Node's originals back. */
export function installLayer(remote: Remote, settings: LayerSettings): () => void {
  const log = createLayerLog(settings.logLevel);
  const policy = createPolicy(settings);
  const registry = new PatchRegistry();

  // Captured now, before the DNS hook replaces it: a session whose DNS stays local resolves names here.
  const localLookup = dns.lookup;
  const lookupLocally: LocalLookup = (hostname, family) =>
    new Promise((resolve, reject) => {
      localLookup(hostname, { family, all: true }, (error, addresses) => (error ? reject(error) : resolve(addresses as LookupAddress[])));
    });

  defineNetHooks(registry, { ops: new NetOps(remote, policy, lookupLocally, (message) => log.warn(message)), log });
  if (settings.dns.enabled) {
    defineDnsHooks(registry, { ops: new DnsOps(remote, policy, defaultResultOrder), log });
  }
  // With incoming off, listen is not even hooked: servers bind exactly as the app asks.
  if (settings.incoming.mode !== 'off') {
    const ops = new IncomingOps(remote, policy, writeStderrLine, (message) => log.debug(message));
    defineIncomingHooks(registry, { ops, log });
  }
  // With UDP off (or a Remote that cannot carry it) dgram is not even hooked: every datagram is the kernel's.
  if (settings.outgoing.udp && remote.udp !== undefined) {
    defineUdpHooks(registry, { ops: new UdpOps(remote.udp, createUdpPolicy(settings), lookupAsTheApp), log });
  }
  // With files local (or a Remote that cannot reach them) fs is not even hooked.
  const files = settings.files.mode !== 'local' && remote.files !== undefined;
  if (files) {
    const policy = createFilePolicy(settings.files, localFacts());
    // Node's own functions, captured before the hooks replace them: remote fds have local stand-ins.
    const local = { openSync: fs.openSync, closeSync: fs.closeSync, statSync: fs.statSync };
    defineFsHooks(registry, { ops: new FileOps(remote.files!, policy, local), log });
  }
  const restore = registry.apply();
  if (settings.dns.enabled) rebindModuleResolvers(log);
  else if (files) syncBuiltinESMExports();
  log.debug(
    `installed (session ${settings.session}, tcp ${settings.outgoing.tcp ? 'on' : 'off'}, udp ${settings.outgoing.udp ? 'on' : 'off'}, dns ${settings.dns.enabled ? 'remote' : 'local'}, incoming ${settings.incoming.mode}, files ${files ? settings.files.mode : 'local'})`,
  );

  return () => {
    restore();
    if (settings.dns.enabled) rebindModuleResolvers(log);
    else if (files) syncBuiltinESMExports();
  };
}

/** The facts the default local file set is built from, as this process sees them when it starts. */
export function localFacts(): LocalFacts {
  const appDirectories: string[] = [];
  const script = process.argv[1];
  if (script !== undefined && script !== '') {
    let scriptDirectory = dirname(script);
    try {
      scriptDirectory = dirname(fs.realpathSync(script));
    } catch {
      // Not a file (node -e, a REPL): its directory as given.
    }
    appDirectories.push(scriptDirectory);
    // The project the script belongs to: the nearest directory above it with a package.json.
    for (let directory = scriptDirectory; directory !== dirname(directory); directory = dirname(directory)) {
      if (fs.existsSync(join(directory, 'package.json'))) {
        appDirectories.push(directory);
        break;
      }
    }
  }
  return {
    cwd: process.cwd(),
    appDirectories,
    home: homedir(),
    tmpdir: tmpdir(),
    execPath: process.execPath,
    // The layer bundle is <remocal>/dist/layer.cjs.
    remocalDirectory: typeof __dirname === 'string' ? dirname(__dirname) : '',
  };
}

/**
 * dns.resolve4() and the other module functions are prototype methods bound to the default resolver when dns
 * loads; setServers() binds them again from the prototypes, now patched (or, on restore, original again). Then
 * ESM named imports (`import { lookup } from 'node:dns'`) are brought in line with the module objects.
 */
function rebindModuleResolvers(log: LayerLog): void {
  try {
    dns.setServers(dns.getServers());
  } catch (error) {
    log.warn(`could not rebind the dns module's resolver functions: ${(error as Error).message}`);
  }
  syncBuiltinESMExports();
}

/** dgram resolves a destination name with whatever dns.lookup is at send time: the DNS hook's, when DNS is remote. */
const lookupAsTheApp: UdpLookup = (hostname, family) =>
  new Promise((resolve, reject) => {
    dns.lookup(hostname, { family }, (error, address, resolvedFamily) =>
      error ? reject(error) : resolve({ address, family: resolvedFamily === 6 ? 6 : 4 }),
    );
  });

function defaultResultOrder(): ResultOrder {
  const getter = (dns as { getDefaultResultOrder?: () => string }).getDefaultResultOrder;
  const order = getter?.();
  return order === 'ipv4first' || order === 'ipv6first' ? order : 'verbatim';
}

// The intproxy process: one per session, started by the CLI. It starts the agent, serves the session's layers,
// and reports to the CLI over the IPC channel:
//   → { type: 'ready', env, agent }   once the agent answered and the layer socket listens
//   → { type: 'fatal', error }        when the session cannot go on (agent lost, target gone)
//   ← { type: 'shutdown' }            the command ended: close everything and exit
// If the CLI disappears (the IPC channel closes), the intproxy shuts down too, so nothing outlives it.

import { createLogger } from '../core/log.js';
import { INTPROXY_SETTINGS_ENV, type IntproxyReport, type IntproxySettings } from '../protocol/contracts.js';
import { serializeError } from '../protocol/wire-error.js';
import { connectAgent } from './agent-link.js';
import { serveLayers } from './layer-server.js';
import { IncomingRouter } from './incoming.js';
import { appendFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

function report(message: IntproxyReport): void {
  process.send?.(message);
}

/** From the env when started with them; from the CLI's first IPC message when started ahead (prewarmed). */
function readSettings(): Promise<IntproxySettings> {
  const fromEnv = process.env[INTPROXY_SETTINGS_ENV];
  if (fromEnv !== undefined) return Promise.resolve(JSON.parse(fromEnv) as IntproxySettings);
  return new Promise((resolve, reject) => {
    // The CLI gave up before sending them (bad config, say): nothing to do.
    const onDisconnect = () => process.exit(0);
    process.once('disconnect', onDisconnect);
    process.once('message', (message: { type?: string; settings?: IntproxySettings }) => {
      process.off('disconnect', onDisconnect);
      if (message?.type === 'start' && message.settings) resolve(message.settings);
      else reject(new Error(`expected the session's settings first, got ${JSON.stringify(message)}`));
    });
  });
}

async function main(): Promise<void> {
  const settings = await readSettings();
  const log = createLogger('intproxy', { level: settings.logLevel, file: settings.logFile });
  let shuttingDown = false;

  const agent = await connectAgent(settings.agent, {
    log,
    startupTimeoutMs: settings.startupTimeoutMs,
    onStderr: (chunk) => appendFileSync(settings.logFile, chunk),
    onNotice: ({ code, message, hint }) => report({ type: 'notice', code, message, ...(hint === undefined ? {} : { hint }) }),
  });
  const incoming = new IncomingRouter(agent, settings.incoming, log, report, settings.agent.target);
  const server = await serveLayers(settings.socket, agent, incoming, log);
  const env = await agent.rpc.request({ op: 'env.get' });
  if (!env.ok) throw new Error(`could not read the target's environment: ${env.error.message}`);

  async function shutdown(): Promise<void> {
    if (shuttingDown) return;
    shuttingDown = true;
    server.close();
    await agent.close();
    // The CLI removes the session directory too, but not if it was killed outright.
    rmSync(dirname(settings.socket), { recursive: true, force: true });
    process.exit(0);
  }
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'shutdown') void shutdown();
  });
  process.on('disconnect', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
  // Ctrl-C reaches the whole foreground process group; the CLI decides when the session ends.
  process.on('SIGINT', () => undefined);

  void agent.lost.then((error) => {
    if (shuttingDown) return;
    log.error({ err: error }, 'session lost');
    report({ type: 'fatal', error: serializeError(error) });
    server.close();
    setTimeout(() => process.exit(1), 50);
  });
  report({ type: 'ready', env: env.value.env, agent: agent.hello.info });
}

main().catch((error: unknown) => {
  report({ type: 'fatal', error: serializeError(error) });
  setTimeout(() => process.exit(1), 50);
});

// A stand-in shared agent for the tests: run inside a pod's network namespace, it drives the real IncomingService
// (and so the real redirector and HTTP router) for named sessions, from commands on stdin (one JSON object a
// line), and reports on stdout (one JSON object a line). Each session answers what it is handed with
// `{"from":"<its name>"}` from an HTTP server of its own on the pod's loopback, so a client sending requests to
// the pod's IP can tell who served them; its notices are reported as `notice` events.

import http from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { createLogger } from '../../../src/core/log.js';
import { IncomingService, type IncomingSession, type SubscribeOptions } from '../../../src/agent/incoming/service.js';
import type { AgentSubscribeRequest } from '../../../src/protocol/messages.js';
import { report, serveCommands } from './stand-in.js';

type Command =
  | ({ op: 'subscribe'; session: string } & Omit<AgentSubscribeRequest, 'op'> & SubscribeOptions)
  | { op: 'unsubscribe'; session: string; subscription: number }
  /** From now on the session is not admitted requests whose path starts with `path`. */
  | { op: 'refuse-path'; session: string; path: string }
  | { op: 'stats'; session: string }
  | { op: 'close' };

const service = new IncomingService(createLogger('service-agent', { level: 'warn' }));
const sessions = new Map<string, IncomingSession & { refusedPath?: string }>();

async function sessionNamed(name: string): Promise<IncomingSession & { refusedPath?: string }> {
  const known = sessions.get(name);
  if (known !== undefined) return known;
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => response.end(JSON.stringify({ from: name })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const session: IncomingSession & { refusedPath?: string } = {
    id: name,
    owner: `owner-of-${name}`,
    announce: () => connect({ host: '127.0.0.1', port }),
    notify: (notice) => report({ event: 'notice', session: name, ...notice }),
    admits: (request) => session.refusedPath === undefined || !request.path.startsWith(session.refusedPath),
  };
  sessions.set(name, session);
  return session;
}

async function handle(command: Command): Promise<Record<string, unknown>> {
  switch (command.op) {
    case 'subscribe': {
      const { op: _op, session, overrideRefusal, ...request } = command;
      const options = overrideRefusal === undefined ? {} : { overrideRefusal };
      return { result: await service.subscribe(await sessionNamed(session), { op: 'incoming.subscribe', ...request }, options) };
    }
    case 'unsubscribe':
      return { result: await service.unsubscribe(await sessionNamed(command.session), command.subscription) };
    case 'refuse-path':
      (await sessionNamed(command.session)).refusedPath = command.path;
      return {};
    case 'stats':
      return { subscriptions: service.subscriptionsOf(await sessionNamed(command.session)) };
    case 'close':
      await service.close();
      return {};
  }
}

await serveCommands(handle);
// The sessions' servers would keep the process alive.
process.exit(0);

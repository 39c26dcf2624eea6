// A stand-in agent for the tests: run inside a pod's network namespace, it drives a Redirector from commands
// on stdin (one JSON object a line) and reports on stdout (one JSON object a line). Stolen connections are
// answered with a fixed HTTP response, so a client can tell them from the target's answers.

import http from 'node:http';
import { Redirector } from '../../../src/agent/incoming/redirector.js';
import { removeStaleChains } from '../../../src/agent/incoming/stale.js';
import { STOLEN_BODY } from './agent-process.js';
import { report, serveCommands } from './stand-in.js';

type Command =
  | { op: 'redirect'; port: number }
  | { op: 'release'; port: number }
  | { op: 'get'; host: string; port: number }
  | { op: 'remove-stale' }
  | { op: 'close' };

const redirector = new Redirector({
  onConnection(socket, original) {
    report({ event: 'connection', ...original, remoteAddress: socket.remoteAddress });
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${STOLEN_BODY.length}\r\nconnection: close\r\n\r\n${STOLEN_BODY}`);
    });
  },
});

/** What a passthrough would do: an HTTP request from the agent itself to the original server. */
function get(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get({ host, port, path: '/from-agent', agent: false, timeout: 3000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

async function handle(command: Command): Promise<Record<string, unknown>> {
  switch (command.op) {
    case 'redirect': {
      const { agentPort } = await redirector.redirect(command.port);
      return { agentPort, backend: await redirector.backend(), supervisorPid: await redirector.supervisorPid(), chain: redirector.chain };
    }
    case 'release':
      await redirector.release(command.port);
      return {};
    case 'get':
      return { body: await get(command.host, command.port) };
    case 'remove-stale':
      return { removed: await removeStaleChains() };
    case 'close':
      await redirector.close();
      return {};
  }
}

await serveCommands(handle);
process.stdin.destroy();

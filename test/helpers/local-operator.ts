// What the end-to-end tests of the local-mode operator share: the operator as a real `remocal operator serve`
// process, the environment that points a `remocal exec` at it as one of its users, and the app those tests run
// behind the operator.

import type { ChildProcess } from 'node:child_process';
import { startChild } from '../../src/core/child.js';
import { waitFor } from './processes.js';
import { cliPath } from './remocal.js';

/** An HTTP app on port argv[2] that answers with its name (argv[3]) and prints each request it saw, with its x-dev. */
export const NAMED_APP = String.raw`
import http from 'node:http';
const [port, name] = [Number(process.argv[2]), process.argv[3]];
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    process.stdout.write(JSON.stringify({ saw: req.method + ' ' + req.url, dev: req.headers['x-dev'] ?? null }) + '\n');
    const payload = JSON.stringify({ from: name });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
    res.end(payload);
  });
});
server.listen(port, () => process.stdout.write(JSON.stringify({ listening: port }) + '\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

export interface ServedOperator {
  child: ChildProcess;
  url: string;
  caFile: string;
}

/** Starts `remocal operator serve --config configFile` (either mode) and waits until it says where it listens. */
export async function serveOperator(configFile: string): Promise<ServedOperator> {
  const child = startChild(process.execPath, [cliPath, 'operator', 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const line = await waitFor(() => /listening at (\S+); clients trust (\S+) /.exec(out) ?? (child.exitCode !== null ? null : undefined), 'the operator to listen', 20_000);
  if (line === null) throw new Error(`the operator exited: ${err}`);
  return { child, url: line[1]!, caFile: line[2]! };
}

/** The environment of a `remocal exec` that goes through the operator with `token`. */
export function operatorClientEnv(operator: Pick<ServedOperator, 'url' | 'caFile'>, token: string): NodeJS.ProcessEnv {
  return { REMOCAL_OPERATOR_TOKEN: token, REMOCAL_LOCAL_OPERATOR_CA_FILE: operator.caFile, REMOCAL_LOCAL_OPERATOR_URL: operator.url, REMOCAL_OPERATOR: 'true' };
}

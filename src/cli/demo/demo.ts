// `remocal demo`: remocal's main job, shown on a target anyone can have. It builds the pod of DESIGN §5, runs
// the same small app twice (plain, then through `remocal exec`) and prints what the app saw each time.
// Everything it builds is removed at the end, on Ctrl-C too.

import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { startChild } from '../../core/child.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { distFile, packageRoot } from '../../core/paths.js';
import { createPod, cleanupStalePods, type Pod } from '../../fixture/pod.js';

export async function runDemo(options: { keep: boolean }): Promise<number> {
  if (process.getuid?.() !== 0) {
    throw new PermissionDeniedError('The demo builds network and mount namespaces, which needs root.', {
      hint: 'Run it as root: sudo npx remocal demo',
    });
  }
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const app = join(packageRoot(), 'demo', 'app.mjs');

  await cleanupStalePods();
  out('remocal demo: a local process that behaves as if it ran inside a pod\n');
  out('1. Building a demo pod from Linux namespaces: its own network, DNS server, /etc/hosts,');
  out('   environment, and a service ("orders-api") that only exists inside it…');
  const pod = await createPod();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    out('\nInterrupted: removing the demo pod…');
    void pod.destroy().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    out(`   pod ${pod.name}: target process pid ${pod.pid}, pod IP ${pod.ip}, search domain ${pod.names.searchDomain}`);
    out(`   ready in ${Math.round(pod.createMs)} ms\n`);

    out(`2. A small app (demo/app.mjs) run on this machine through \`remocal exec -t pid/${pod.pid} -- node demo/app.mjs\`:\n`);
    const code = await relay(process.execPath, [distFile('cli.js'), 'exec', '-t', `pid/${pod.pid}`, '--', process.execPath, app], process.env, out);
    if (code !== 0) {
      out(`\n   remocal exec exited with ${code}.`);
      return code;
    }
    out('\n   Run plainly, the same app finds none of this: no such variables, and the names do not resolve.');
    out('   Here the environment came from the target process, the names were resolved by the pod\'s DNS server');
    out('   (search domain, then its /etc/hosts), and the connection was opened from inside the pod.');
    out(`\n3. Your local version of the pod's service, on the same port ${pod.ports.target}, through a filtered steal:`);
    out(`   \`remocal exec -t pid/${pod.pid} -f demo/steal.json -- node demo/server.mjs\` steals only the requests with the header`);
    out('   "x-demo: me"; everyone else\'s requests still reach the pod.\n');
    const stolen = await showFilteredSteal(pod, out);
    if (stolen !== 0) return stolen;
    if (options.keep && !interrupted) {
      out(`\nThe pod stays up: try \`sudo npx remocal exec -t pid/${pod.pid} -- node\` in another terminal. Ctrl-C removes it.`);
      await new Promise(() => undefined);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) {
      out('\n4. Removing the demo pod…');
      await pod.destroy();
      out('   done: no namespace, route or process is left behind.');
    }
  }
}

/** Runs demo/server.mjs through a filtered steal and sends the pod one request with the header, one without. */
async function showFilteredSteal(pod: Pod, out: (line: string) => void): Promise<number> {
  const root = packageRoot();
  const session = startChild(
    process.execPath,
    [distFile('cli.js'), 'exec', '-t', `pid/${pod.pid}`, '-f', join(root, 'demo', 'steal.json'), '--', process.execPath, join(root, 'demo', 'server.mjs'), String(pod.ports.target)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  session.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  try {
    const deadline = Date.now() + 15_000;
    while (!/remocal: stealing/.test(stderr)) {
      if (Date.now() > deadline || session.exitCode !== null) {
        out(`   the session did not start:\n${stderr}`);
        return 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const headers of [{ 'x-demo': 'me' }, {}] as Record<string, string>[]) {
      const answer = await get(`http://${pod.ip}:${pod.ports.target}/orders`, headers);
      const label = headers['x-demo'] === undefined ? 'without the header' : 'with x-demo: me   ';
      out(`   GET /orders ${label} → ${answer}`);
    }
    return 0;
  } finally {
    session.kill('SIGTERM');
    await new Promise((resolve) => (session.exitCode !== null ? resolve(undefined) : session.once('exit', resolve)));
  }
}

function get(url: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const request = httpGet(url, { headers, agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        try {
          resolve(`answered by ${(JSON.parse(body) as { from: string }).from}`);
        } catch {
          resolve(`${response.statusCode} ${body.slice(0, 80)}`);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', (error) => resolve(`failed: ${error.message}`));
  });
}

function relay(command: string, args: string[], env: NodeJS.ProcessEnv, out: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = startChild(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const forward = (prefix: string) => (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line !== '') out(`   ${prefix}${line}`);
    };
    child.stdout!.on('data', forward('app │ '));
    child.stderr!.on('data', forward(''));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

export type { Pod };

// `remocal demo`: remocal's main job, shown on a target anyone can have. It builds the pod of DESIGN §5, runs
// the same small app twice (plain, then through `remocal exec`) and prints what the app saw each time.
// Everything it builds is removed at the end, on Ctrl-C too.

import { join } from 'node:path';
import { startChild } from '../../core/child.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { distFile, packageRoot } from '../../core/paths.js';
import { createPod, cleanupStalePods, type Pod } from './pod.js';

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
    if (options.keep && !interrupted) {
      out(`\nThe pod stays up: try \`sudo npx remocal exec -t pid/${pod.pid} -- node\` in another terminal. Ctrl-C removes it.`);
      await new Promise(() => undefined);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (!interrupted) {
      out('\n3. Removing the demo pod…');
      await pod.destroy();
      out('   done: no namespace, route or process is left behind.');
    }
  }
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

// The agent: runs inside the target's network namespace and serves the session's remote operations over its
// stdio (stdin/stdout carry the protocol link; stderr is for logs). It exits when the link closes, so a
// session never leaves an agent behind.
//
//   agent --pid <pid>        a process target: DNS files from /proc/<pid>/root, env from /proc/<pid>/environ
//   agent --netns <name>     a named network namespace: DNS files from /etc/netns/<name>/ as `ip netns exec`
//                            would bind them, else the host's; no environment, no files
//   --files off|read|write   the target's files: not served, read only (the default), or also changed

import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { createLogger } from '../core/log.js';
import { startAgent } from './session.js';

const { values } = parseArgs({
  options: {
    pid: { type: 'string' },
    netns: { type: 'string' },
    'log-level': { type: 'string' },
    files: { type: 'string', default: 'read' },
  },
  strict: true,
});

const log = createLogger('agent', values['log-level'] === undefined ? {} : { level: values['log-level'] });
const pid = values.pid === undefined ? null : Number(values.pid);

// process.stdout writes to a pipe synchronously on Linux, which would stall every stream whenever the pipe is
// full; sockets of our own over the same fds are asynchronous and honour backpressure.
const readable = new Socket({ fd: 0, readable: true, writable: false });
const writable = new Socket({ fd: 1, readable: false, writable: true });

const files = values.files;
if (files !== 'off' && files !== 'read' && files !== 'write') {
  log.error({ files }, '--files must be off, read or write');
  process.exit(2);
}

startAgent({ pid, netns: values.netns ?? null, log, readable, writable, files })
  .then((done) => done)
  .then(
    (reason) => {
      log.info({ reason }, 'agent exiting');
      process.exit(0);
    },
    (error: unknown) => {
      log.error({ err: error }, 'agent failed');
      process.exit(1);
    },
  );

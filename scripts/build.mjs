// Bundles each runtime entry point into one file. One file per process keeps start-up fast (the layer is
// loaded into every Node process of the session) and makes the agent easy to ship into a container.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
  // Smaller bundles parse faster, and every session starts three of them.
  minify: true,
  keepNames: true,
};

const esm = {
  format: 'esm',
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __remocalCreateRequire } from 'node:module'; const require = __remocalCreateRequire(import.meta.url);" },
};

// Loaded from node_modules, and only by Kubernetes sessions: it is large, loads optional native modules by
// name, and local sessions never need it.
const kubernetesClient = ['@kubernetes/client-node'];

await Promise.all([
  // The CLI's entry loads the rest with import(), so that it can start the intproxy first; its own chunks.
  build({
    ...common,
    ...esm,
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir: 'dist',
    splitting: true,
    chunkNames: 'cli-chunks/[name]-[hash]',
    external: kubernetesClient,
  }),
  // The kube-link process: the intproxy's stdio link to an agent in a cluster, over a port-forward.
  build({ ...common, ...esm, entryPoints: { 'kube-link': 'src/platform/kubernetes/link-entry.ts' }, outdir: 'dist', external: kubernetesClient }),
  // The operator-link process: the intproxy's stdio link to a session behind the operator, over a WebSocket.
  build({ ...common, ...esm, entryPoints: { 'operator-link': 'src/platform/operator/link-entry.ts' }, outdir: 'dist' }),
  // One self-contained file per process: the agent in particular is copied next to targets as it is.
  build({
    ...common,
    ...esm,
    entryPoints: {
      intproxy: 'src/intproxy/main.ts',
      agent: 'src/agent/main.ts',
      // Started by the agent beside itself; removes the agent's iptables rules whenever the agent dies.
      'supervisor-entry': 'src/agent/incoming/supervisor-entry.ts',
      // The demo pod's own processes (DNS server, services, target app), run inside its namespaces.
      pod: 'src/fixture/pod-process.ts',
      // `remocal port-forward`'s listeners, run as the session's command.
      forwarder: 'src/cli/port-forward/forwarder.ts',
    },
    outdir: 'dist',
  }),
  // The layer is preloaded with --require, which must be CommonJS on Node 20.
  // Its sync fs worker (src/layer/fs/sync.ts) is a thread started from a file of its own.
  build({
    ...common,
    format: 'cjs',
    entryPoints: { layer: 'src/layer/preload.ts', 'layer-fs-worker': 'src/layer/fs/sync-worker.ts' },
    outdir: 'dist',
    outExtension: { '.js': '.cjs' },
  }),
]);

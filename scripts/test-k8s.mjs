// The Kubernetes e2e tier: the local platform's acceptance tests (outgoing, DNS, env, steal with a filter,
// cleanup) against a real cluster. It needs
//   KUBECONFIG                 the cluster (its current context, or REMOCAL_K8S_CONTEXT)
//   REMOCAL_K8S_AGENT_IMAGE    an agent image the cluster's nodes can run (see docs/kubernetes.md)
//   REMOCAL_K8S_OPERATOR_IMAGE for the operator tier: an operator image (Dockerfile.operator); without it
//                              that tier is reported as skipped
// Without them it says so and exits 0: a skipped tier is reported as skipped, never as passed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const missing = [];
const kubeconfig = process.env.KUBECONFIG;
if (!kubeconfig) missing.push('KUBECONFIG is not set');
else if (!kubeconfig.split(':').some((path) => existsSync(path))) missing.push(`KUBECONFIG names no file that exists (${kubeconfig})`);
if (!process.env.REMOCAL_K8S_AGENT_IMAGE) missing.push('REMOCAL_K8S_AGENT_IMAGE is not set');
if (missing.length > 0) {
  console.log(`k8s e2e tier: SKIPPED, not run (${missing.join('; ')}).`);
  console.log('  To run it: KUBECONFIG=<file> REMOCAL_K8S_AGENT_IMAGE=remocal/agent:<version> npm run test:k8s (see docs/kubernetes.md).');
  process.exit(0);
}
const files = readdirSync(new URL('../test-k8s', import.meta.url)).filter((name) => name.endsWith('.test.ts')).map((name) => `test-k8s/${name}`);
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);

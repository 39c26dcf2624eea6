// Test access to the demo pod (src/fixture/pod.ts). Tests run the pod process from source through tsx, so
// they need no build; every pod a test creates is destroyed, even when the test fails.

import { fileURLToPath } from 'node:url';
import { cleanupStalePods, createPod, type Pod, type PodOptions } from '../../src/fixture/pod.js';

/** The pod process from source. Absolute paths: the pod process starts in `/`. */
export const podProcessFromSource: readonly string[] = [
  process.execPath,
  '--import',
  import.meta.resolve('tsx'),
  fileURLToPath(new URL('../../src/fixture/pod-process.ts', import.meta.url)),
];

let staleRemoved: Promise<unknown> | undefined;

/** Creates a pod; the first call in a test process first removes what crashed runs left behind. */
export async function createTestPod(options: PodOptions = {}): Promise<Pod> {
  staleRemoved ??= cleanupStalePods();
  await staleRemoved;
  return createPod({ command: podProcessFromSource, ...options });
}

/** Runs `body` with a fresh pod and always destroys the pod afterwards. */
export async function withPod<T>(body: (pod: Pod) => Promise<T>, options: PodOptions = {}): Promise<T> {
  const pod = await createTestPod(options);
  try {
    return await body(pod);
  } finally {
    await pod.destroy();
  }
}

/**
 * Runs an ES module snippet with this Node binary inside the pod's network namespace (and, with
 * `mountNamespace`, its mount namespace, so getaddrinfo uses the pod's resolv.conf and hosts) and parses the
 * JSON it prints. The snippet reports through `console.log(JSON.stringify(…))`.
 */
export async function runInPod<T = unknown>(
  pod: Pod,
  snippet: string,
  options: { mountNamespace?: boolean; timeoutMs?: number } = {},
): Promise<T> {
  const result = await pod.exec([process.execPath, '--input-type=module', '-e', snippet], options);
  if (result.code !== 0) {
    throw new Error(`snippet in ${pod.name} exited with ${result.code ?? result.signal}: ${result.stderr.trim()}`);
  }
  return JSON.parse(result.stdout) as T;
}

/** The pod's iptables rules, nft and legacy together: an agent may have used either. */
export async function podIptablesRules(pod: Pod): Promise<string> {
  const nft = await pod.exec(['iptables-save']);
  const legacy = await pod.exec(['iptables-legacy-save']);
  return nft.stdout + legacy.stdout;
}

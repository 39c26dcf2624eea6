// Kubernetes mode's policies: the RemocalPolicy (every namespace) and RemocalClusterPolicy custom resources, listed
// and then watched, so that a change applies within seconds. The API server validated each object against the CRD's
// schema; each is parsed here once more all the same, so a hand-edited CRD cannot feed the agents a malformed rule.
//
// A watch that fails (the API server restarted, a resourceVersion too old) is started again, listing first, after a
// short pause. Without the CRDs installed there are no policies, and the log says so.

import { CustomObjectsApi, makeInformer, type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../../core/log.js';
import type { Kube } from '../../platform/kubernetes/api.js';
import { POLICY_GROUP, POLICY_VERSION } from '../../protocol/policy.js';
import { parsePolicyObject } from './policy-object.js';
import type { StoredPolicy } from './select.js';
import type { PolicySource, PolicyStore } from './store.js';

const PLURALS = ['remocalpolicies', 'remocalclusterpolicies'] as const;

/** Between a failed watch and the next list. */
const RESTART_DELAY_MS = 3000;

type PolicyInformer = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export class KubePolicySource implements PolicySource {
  private readonly informers: PolicyInformer[] = [];
  private closed = false;

  constructor(
    private readonly kube: Kube,
    private readonly log: Logger,
    private readonly restartDelayMs = RESTART_DELAY_MS,
  ) {}

  async start(store: PolicyStore): Promise<void> {
    const api = this.kube.config.makeApiClient(CustomObjectsApi);
    const update = (): void => store.replace(this.all());
    for (const plural of PLURALS) {
      // Said once while it lasts: a cluster without the CRDs would otherwise log this every few seconds.
      let lastProblem = '';
      const list = async () => {
        const listed = (await api.listClusterCustomObject({ group: POLICY_GROUP, version: POLICY_VERSION, plural })) as KubernetesListObject<KubernetesObject>;
        lastProblem = '';
        return listed;
      };
      const informer = makeInformer(this.kube.config, `/apis/${POLICY_GROUP}/${POLICY_VERSION}/${plural}`, list);
      informer.on('add', update);
      informer.on('update', update);
      informer.on('delete', update);
      informer.on('error', (error: unknown) => {
        if (this.closed) return;
        const status = (error as { code?: number })?.code ?? (error as { statusCode?: number })?.statusCode;
        const problem = status === 404 ? 'the policy CRDs are not installed: no policy applies (remocal operator setup installs them)' : 'the policy watch failed; listing again';
        if (problem !== lastProblem) this.log.warn({ resource: plural, err: error, status }, problem);
        lastProblem = problem;
        setTimeout(() => void this.restart(informer, plural, update), this.restartDelayMs).unref();
      });
      this.informers.push(informer);
      await informer.start().catch((error: unknown) => this.log.warn({ resource: plural, err: error }, 'could not list policies; trying again'));
    }
    update();
  }

  close(): void {
    this.closed = true;
    for (const informer of this.informers) void informer.stop();
  }

  private async restart(informer: PolicyInformer, plural: string, update: () => void): Promise<void> {
    if (this.closed) return;
    await informer.start().catch((error: unknown) => this.log.warn({ resource: plural, err: error }, 'could not list policies; trying again'));
    update();
  }

  private all(): StoredPolicy[] {
    return this.informers.flatMap((informer) =>
      informer.list().flatMap((object) => {
        const parsed = parsePolicyObject(object, '');
        if (typeof parsed !== 'string') return [parsed];
        this.log.error({ policy: object.metadata?.name, namespace: object.metadata?.namespace, problem: parsed }, 'a policy the API server holds is not valid here; it is not enforced');
        return [];
      }),
    );
  }
}

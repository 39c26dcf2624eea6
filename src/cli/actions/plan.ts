// A session's action steps as the runner takes them (each with its timeout resolved), what they change of the
// command's network policy (`outgoing_local`), and the plan `remocal exec --dry-run` prints.

import type { ActionStep } from '../../config/actions.js';
import type { RemocalConfig } from '../../config/index.js';
import type { LayerSettings } from '../../protocol/contracts.js';
import type { ClusterSteps } from './cluster-steps.js';

export interface PlannedStep extends ActionStep {
  /** Its position in `actions`, for messages that name the option. */
  index: number;
  timeoutMs: number;
}

export interface ActionPlan {
  steps: PlannedStep[];
  /** For `job` steps; without it they are refused (cluster-steps.ts). */
  cluster?: ClusterSteps;
}

export function planActions(config: Pick<RemocalConfig, 'actions' | 'actions_timeout'>): ActionPlan {
  return {
    steps: config.actions.map((step, index) => ({ ...step, index, timeoutMs: (step.timeout ?? config.actions_timeout) * 1000 })),
  };
}

export function describeTimeoutOption(step: PlannedStep): string {
  return step.timeout === undefined ? `actions_timeout (${step.timeoutMs / 1000} s), or set actions[${step.index}].timeout` : `actions[${step.index}].timeout (${step.timeout} s)`;
}

export function describeRun(run: string | string[]): string {
  return typeof run === 'string' ? run : run.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The layer's outgoing and DNS policy with every `before` step's `outgoing_local` kept local: added to a `local`
 * filter (or made one, when there is no filter). Under a `remote` filter everything unlisted is local already.
 * The host names go to the DNS filter's `local` list too, so that the name resolves here rather than in the target.
 */
export function withOutgoingLocal(layer: Pick<LayerSettings, 'outgoing' | 'dns'>, steps: readonly ActionStep[]): Pick<LayerSettings, 'outgoing' | 'dns'> {
  const local = steps.flatMap((step) => (step.when === 'before' ? (step.outgoing_local ?? []) : []));
  if (local.length === 0) return layer;
  const outgoing = layer.outgoing.filter.remote !== undefined ? layer.outgoing.filter : { local: [...(layer.outgoing.filter.local ?? []), ...local] };
  // A DNS pattern has no protocol; its port is the one of the lookup, which a connect's port is not.
  const names = local.map((pattern) => pattern.replace(/^[a-z]+:\/\//i, '')).filter((pattern) => !/^[[\d:]/.test(pattern)).map((pattern) => pattern.replace(/:\d+$/, ''));
  const dns = layer.dns.filter.remote !== undefined || names.length === 0 ? layer.dns.filter : { local: [...(layer.dns.filter.local ?? []), ...names] };
  return { outgoing: { ...layer.outgoing, filter: outgoing }, dns: { ...layer.dns, filter: dns } };
}

export interface PlanView {
  command: string[];
  target: string | undefined;
  actions: ActionPlan | undefined;
  layer: Pick<LayerSettings, 'outgoing' | 'dns' | 'incoming' | 'files'>;
  incomingFilter: boolean;
}

/** `remocal exec --dry-run`: what the session would do, without starting anything. */
export function formatPlan(view: PlanView): string {
  const { layer } = view;
  const out: string[] = [`remocal exec plan (dry run: nothing was started)`, ''];
  out.push(`target:   ${view.target ?? '(none: set -t or "target")'}`);
  out.push(`command:  ${describeRun(view.command)}`);
  out.push('', 'what goes where:');
  const filter = layer.outgoing.filter;
  const outgoing = !layer.outgoing.tcp && !layer.outgoing.udp
    ? 'local (outgoing off)'
    : filter.local !== undefined
      ? `remote, except local: ${filter.local.join(', ')}`
      : filter.remote !== undefined
        ? `local, except remote: ${filter.remote.join(', ')}`
        : 'remote';
  out.push(`  outgoing:  ${outgoing}${layer.outgoing.ignoreLocalhost ? ' (loopback stays local)' : ''}`);
  const dnsFilter = layer.dns.filter;
  out.push(
    `  dns:       ${!layer.dns.enabled ? 'local' : dnsFilter.local !== undefined ? `remote, except local: ${dnsFilter.local.join(', ')}` : dnsFilter.remote !== undefined ? `local, except remote: ${dnsFilter.remote.join(', ')}` : 'remote'}`,
  );
  out.push(`  files:     mode ${layer.files.mode}${layer.files.mode === 'local' ? ' (all local)' : ' (the app, its dependencies and system paths stay local)'}`);
  out.push(`  incoming:  ${layer.incoming.mode}${layer.incoming.mode === 'steal' && view.incomingFilter ? ' (HTTP requests matching the filter)' : ''}`);

  const steps = view.actions?.steps ?? [];
  out.push('', steps.length === 0 ? (view.actions === undefined ? 'actions: skipped (--no-actions)' : 'actions: none') : 'actions:');
  for (const phase of ['before', 'after'] as const) {
    for (const step of steps.filter((entry) => entry.when === phase)) {
      const runs = step.job !== undefined ? `Job from template ${step.job.template} (in the cluster, through the operator)` : `run ${describeRun(step.run!)}`;
      out.push(`  ${phase} ${step.name}: ${runs}`);
      if (step.cwd !== undefined) out.push(`      cwd: ${step.cwd}`);
      if (step.wait_for !== undefined) {
        const wait = step.wait_for;
        out.push(`      wait for: ${'tcp' in wait ? `tcp ${wait.tcp}` : 'http' in wait ? `http ${wait.http} → ${wait.status ?? 200}` : `log /${wait.log}/`}`);
      }
      out.push(`      timeout: ${step.timeoutMs / 1000} s`);
      if ((step.outgoing_local ?? []).length > 0) out.push(`      outgoing local: ${step.outgoing_local!.join(', ')}`);
    }
  }
  const overrides = steps.flatMap((step) => (step.when === 'before' ? Object.entries(step.env ?? {}).map(([key, value]) => ({ key, value, step: step.name })) : []));
  if (overrides.length > 0) {
    out.push('', "environment overrides (over the target's environment):");
    for (const { key, value, step } of overrides) out.push(`  ${key}=${value}   (from ${step})`);
  }
  return `${out.join('\n')}\n`;
}

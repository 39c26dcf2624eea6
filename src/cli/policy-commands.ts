// `remocal policy check`: which admins' policies apply to you on a target, and what they leave you, asked of the
// operator (which decides, and enforces them) before any session starts.

import type { Command } from 'commander';
import { loadConfig, type ConfigFlags } from '../config/index.js';
import { UsageError } from '../core/errors.js';
import type { AppliedPolicy, OutgoingPolicyRule, PolicyBlock } from '../protocol/policy.js';
import { operatorClient } from './operator-commands.js';

interface TargetAnswer {
  spec: { target: string; description: string };
  status: { policies?: AppliedPolicy[] };
}

export function registerPolicyCommands(program: Command, addConfigFlags: (command: Command) => Command): void {
  const policy = program.command('policy').summary('see what the admins\' policies allow you on a target');
  addConfigFlags(policy.command('check'))
    .summary('which policies apply to you on a target, and what they allow')
    .description(
      'Asks the operator which RemocalPolicy and RemocalClusterPolicy objects (or, with a local operator, policy files) ' +
        'apply to you on the target, and prints what each forbids, and then what a session of yours may do. Nothing is ' +
        'started. The operator enforces the same policies on every session (docs/policies.md).',
    )
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('--json', 'machine-readable output: the policies as the operator applies them')
    .addHelpText('after', '\nExamples:\n  remocal policy check -t deployment/orders -n shop\n  remocal policy check -t pid/4242 --json')
    .action(async (options: ConfigFlags & { configFile?: string; json?: boolean }) => {
      const { json, ...rest } = options;
      const { configFile, ...flags } = rest;
      const { config } = loadConfig({ cwd: process.cwd(), file: configFile, env: process.env, flags });
      if (config.target.path === undefined) throw new UsageError('Say which target: -t TARGET (deployment/orders, pid/4242, …).');
      const [{ parseTarget }, { targetResourceName }] = await Promise.all([import('../platform/target.js'), import('../platform/operator/target-names.js')]);
      const target = parseTarget(config.target.path);
      const client = await operatorClient(rest);
      const container = target.platform === 'kubernetes' && target.kind !== 'targetless' && target.container !== null ? `?container=${encodeURIComponent(target.container)}` : '';
      const answer = await client.request<TargetAnswer>('GET', `/namespaces/${encodeURIComponent(client.namespace)}/targets/${encodeURIComponent(targetResourceName(target))}${container}`);
      const policies = answer.status.policies ?? [];
      if (json) {
        process.stdout.write(`${JSON.stringify({ target: answer.spec.target, namespace: client.namespace, resolvedTo: answer.spec.description, policies }, null, 2)}\n`);
        return;
      }
      process.stdout.write(formatPolicyCheck(answer.spec.target, client.namespace, policies));
    });
}

/** The policies one by one, then what they leave a session, feature by feature. */
export function formatPolicyCheck(target: string, namespace: string, policies: readonly AppliedPolicy[]): string {
  if (policies.length === 0) return `No policy applies to you on ${target} (namespace ${namespace}): a session may do all that remocal does.\n`;
  const lines = [`${policies.length} ${policies.length === 1 ? 'policy applies' : 'policies apply'} to you on ${target} (namespace ${namespace}):`];
  for (const policy of policies) {
    lines.push(`  ${policy.name} (${policy.kind})`);
    for (const rule of describeRules(policy)) lines.push(`    ${rule}`);
  }
  lines.push('', 'So a session of yours:');
  const blocked = (what: PolicyBlock) => policies.filter((policy) => policy.spec.block?.includes(what)).map((policy) => policy.name);
  const verdict = (what: string, by: string[], otherwise = 'yes') => `  ${what}: ${by.length > 0 ? `no (${by.join(', ')})` : otherwise}`;
  const headers = policies.flatMap((policy) => (policy.spec.network?.incoming?.httpFilter?.headerFilter === undefined ? [] : [`${policy.spec.network.incoming.httpFilter.headerFilter} (${policy.name})`]));
  lines.push(verdict('mirror a port', blocked('mirror')));
  lines.push(verdict('steal with an HTTP filter', blocked('steal'), headers.length > 0 ? `only with a header filter matching ${headers.join(' and ')}` : 'yes'));
  lines.push(verdict('steal a whole port', [...blocked('steal'), ...blocked('steal-without-filter'), ...(headers.length > 0 ? ['a required header filter'] : [])]));
  lines.push(verdict('take a port over (on_concurrent_steal: override)', blocked('override')));
  const outgoingLimits = policies.filter((policy) => policy.spec.network?.outgoing?.allow !== undefined || (policy.spec.network?.outgoing?.block?.length ?? 0) > 0).map((policy) => policy.name);
  lines.push(verdict('connect out from the target', blocked('outgoing'), outgoingLimits.length > 0 ? `yes, within the rules of ${outgoingLimits.join(', ')}` : 'yes'));
  const writeLimits = policies.filter((policy) => (policy.spec.fs?.readOnly?.length ?? 0) > 0).map((policy) => policy.name);
  lines.push(verdict('change the target\'s files', blocked('fs-write'), writeLimits.length > 0 ? `yes, but not the read-only paths of ${writeLimits.join(', ')}` : 'yes'));
  const hidden = policies.flatMap((policy) => policy.spec.env?.exclude ?? []);
  lines.push(verdict('read the target\'s environment', blocked('env'), hidden.length > 0 ? `yes, without ${hidden.join(', ')}` : 'yes'));
  lines.push(verdict('port-forward', blocked('port-forward')));
  return `${lines.join('\n')}\n`;
}

function describeRules(policy: AppliedPolicy): string[] {
  const { spec } = policy;
  const rules: string[] = [];
  if (spec.targetPath !== undefined || spec.selector !== undefined) {
    const selector = spec.selector === undefined ? '' : ` with labels ${JSON.stringify(spec.selector)}`;
    rules.push(`for ${spec.targetPath ?? 'targets'}${selector}`);
  }
  if ((spec.block?.length ?? 0) > 0) rules.push(`blocks: ${spec.block!.join(', ')}`);
  const headerFilter = spec.network?.incoming?.httpFilter?.headerFilter;
  if (headerFilter !== undefined) rules.push(`steals need a header filter matching ${headerFilter}`);
  if (spec.network?.outgoing?.allow !== undefined) rules.push(`outgoing allowed only to: ${spec.network.outgoing.allow.map(describeDestination).join('; ') || 'nowhere'}`);
  for (const rule of spec.network?.outgoing?.block ?? []) rules.push(`outgoing blocked to: ${describeDestination(rule)}`);
  if ((spec.env?.exclude?.length ?? 0) > 0) rules.push(`env hidden: ${spec.env!.exclude!.join(', ')}`);
  if ((spec.fs?.readOnly?.length ?? 0) > 0) rules.push(`files read-only: ${spec.fs!.readOnly!.join(', ')}`);
  if ((spec.fs?.local?.length ?? 0) > 0) rules.push(`files never read from the target: ${spec.fs!.local!.join(', ')}`);
  if ((spec.fs?.notFound?.length ?? 0) > 0) rules.push(`files hidden: ${spec.fs!.notFound!.join(', ')}`);
  return rules.length > 0 ? rules : ['(no rule)'];
}

function describeDestination(rule: OutgoingPolicyRule): string {
  const where = [
    ...(rule.ipBlock === undefined ? [] : [`${rule.ipBlock.cidr}${rule.ipBlock.except?.length ? ` except ${rule.ipBlock.except.join(', ')}` : ''}`]),
    ...(rule.hostname === undefined ? [] : [`hosts matching ${rule.hostname}`]),
  ];
  const ports = rule.ports === undefined ? '' : ` port${rule.ports.length === 1 ? '' : 's'} ${rule.ports.join(', ')}`;
  return `${where.length > 0 ? where.join(' or ') : 'anywhere'}${ports}`;
}

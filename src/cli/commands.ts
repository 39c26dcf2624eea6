// The subcommands. Each parses its flags and hands a plain request to the component that does the work.

import { Command, Option } from 'commander';
import type { CopyTargetRequest } from '../protocol/copy-target.js';
import {
  configFlags,
  formatVerifyReport,
  formatWarning,
  loadConfig,
  renderJsonSchema,
  toLayerSettings,
  verifyConfig,
  type ConfigFlags,
  type RemocalConfig,
} from '../config/index.js';
import type { HttpFilterSpec } from '../protocol/messages.js';
import { runExec, type ExecRequest } from './exec.js';
import { createProgress } from './progress.js';
import { runDemo } from './demo/demo.js';
import { registerOperatorCommands } from './operator-commands.js';
import { registerPolicyCommands } from './policy-commands.js';
import { formatPlan, planActions, withOutgoingLocal } from './actions/plan.js';
import { OperatorJobSteps } from './actions/operator-steps.js';
import type { SplitQueuesRequest } from '../protocol/split-queues.js';

export function registerCommands(program: Command): void {
  addConfigFlags(program.command('exec'))
    .summary('run a command as if it ran inside the target')
    .description(
      'Run COMMAND on this machine as if it ran inside the target: its outgoing connections and DNS lookups ' +
        'are made from the target, and it gets the target\'s environment. Node processes started by COMMAND ' +
        '(npm run, npx, child_process, fork) are covered too.',
    )
    .argument('<command...>', 'the command and its arguments, after --')
    .option('-f, --config-file <file>', 'a config file (.json or .yaml; a mirrord.json works as is); default: .remocal/config.{json,yaml} found upwards from here')
    .option('-q, --quiet', 'no progress lines')
    .option('--verbose', 'debug logs in the session log, and stack traces of internal errors')
    .option('--dry-run', 'print the plan (action steps, environment overrides, what goes local or remote) and exit, starting nothing')
    .option('--no-actions', 'skip the action steps of the config (`actions`), and their environment overrides and outgoing_local')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  remocal exec -t deployment/orders -n staging -- npm run dev\n' +
        '  remocal exec -t pod/orders-7d9f/container/app --steal -- node server.js\n' +
        '  remocal exec -t targetless -- node migrate.js\n' +
        '  sudo remocal exec -t pid/4242 -- node server.js\n' +
        '  sudo remocal exec -t container/orders -- npm run dev\n' +
        '  sudo remocal exec -f .remocal/staging.yaml -- node --inspect server.js\n' +
        '\nExit status: the command\'s own; 125 when remocal itself fails, 126/127 when the command cannot be run.',
    )
    .passThroughOptions()
    .action(async (command: string[], options: ExecFlags & { dryRun?: boolean; actions: boolean }, cmd: Command) => {
      const { dryRun, actions, ...flags } = options;
      const request = { ...sessionRequest(flags, cmd, { actions }), command };
      if (dryRun) {
        process.stdout.write(
          formatPlan({ command, target: request.target, actions: request.actions, layer: request.layer, incomingFilter: request.incoming.filter !== null }),
        );
        process.exitCode = 0;
        return;
      }
      process.exitCode = await runExec(request);
    });

  addConfigFlags(program.command('ls'))
    .summary('list the Kubernetes targets of a namespace')
    .description('Lists the pods and workloads of a namespace as `-t` takes them, with whether they have a ready pod. Kinds you may not list are left out, with a note.')
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('--json', 'machine-readable output')
    .addHelpText('after', '\nExamples:\n  remocal ls -n staging\n  remocal ls --context prod -n shop --json')
    .action(async (options: ConfigFlags & { configFile?: string; json?: boolean }) => {
      const { configFile, json, ...flags } = options;
      const { config } = loadConfig({ cwd: process.cwd(), file: configFile, env: process.env, flags });
      const { connectKube } = await import('../platform/kubernetes/api.js');
      const { listTargets, formatTargetList } = await import('../platform/kubernetes/list.js');
      const list = await listTargets(connectKube(kubernetesSettings(config).kube));
      process.stdout.write(json ? `${JSON.stringify(list, null, 2)}\n` : formatTargetList(list));
    });

  addConfigFlags(program.command('port-forward'))
    .summary('forward ports through the target')
    .description(
      'Forward local ports to addresses as the target reaches them (-L), and the target\'s ports to local ports (-R). ' +
        'Connections are opened from the target, so its DNS and network apply: -L 5432:postgres:5432 reaches the ' +
        'postgres service the target sees. -R follows the incoming mode (mirror by default; --steal takes the traffic).',
    )
    .option('-L, --local <spec>', '[local_port:]host:port, repeatable', (value: string, previous: string[] = []) => [...previous, value])
    .option('-R, --remote <spec>', '[remote_port:]local_port, repeatable', (value: string, previous: string[] = []) => [...previous, value])
    .option('-f, --config-file <file>', 'a config file; default: .remocal/config.{json,yaml} found upwards from here')
    .option('-q, --quiet', 'no progress lines')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  remocal port-forward -t deployment/orders -n staging -L 5432:postgres.staging:5432\n' +
        '  remocal port-forward -t pod/orders-7d9f -L 9000:localhost:8080      # the pod\'s own port 8080\n' +
        '  remocal port-forward -t deployment/orders --steal -R 8080:3000      # the pod\'s 8080 → local 3000',
    )
    .action(async (options: ExecFlags & { local?: string[]; remote?: string[] }, cmd: Command) => {
      const { local, remote, ...flags } = options;
      const base = sessionRequest(flags, cmd);
      const { portForwardRequest } = await import('./port-forward/command.js');
      // -R mirrors unless the config (or --steal) says steal: a forward with incoming traffic off forwards nothing.
      const incoming = { ...base.incoming, mode: base.incoming.mode === 'steal' ? ('steal' as const) : ('mirror' as const) };
      process.exitCode = await runExec(portForwardRequest({ local: local ?? [], remote: remote ?? [] }, { ...base, incoming }));
    });

  program
    .command('demo')
    .summary('see remocal work on a built-in demo target (needs root)')
    .description(
      'Builds a local "pod" out of Linux namespaces (its own network, DNS, /etc/hosts, environment and a service ' +
        'only reachable inside it), runs a small app through `remocal exec` against it, shows what the app saw, ' +
        'and removes everything again (also on Ctrl-C).',
    )
    .option('--keep', 'leave the demo pod running until Ctrl-C, to try your own commands against it')
    .action(async (options: { keep?: boolean }) => {
      process.exitCode = await runDemo({ keep: Boolean(options.keep) });
    });

  program
    .command('verify-config')
    .summary('check a config file')
    .argument('[file]', 'the file to check; default: the one remocal would use here')
    .option('--json', 'machine-readable output, for editors and scripts')
    .action((file: string | undefined, options: { json?: boolean }) => {
      const report = verifyConfig({ cwd: process.cwd(), file, env: process.env });
      if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(formatVerifyReport(report));
      process.exitCode = report.ok ? 0 : 1;
    });

  registerOperatorCommands(program, addConfigFlags);
  registerPolicyCommands(program, addConfigFlags);

  program
    .command('schema')
    .summary('print the JSON Schema of the config file, for editors')
    .action(() => {
      process.stdout.write(`${JSON.stringify(renderJsonSchema(), null, 2)}\n`);
    });
}

interface ExecFlags extends ConfigFlags {
  configFile?: string;
  quiet?: boolean;
  verbose?: boolean;
}

/** A session as the config (file, env, flags) describes it, for `exec` and `port-forward`; warnings are shown. */
function sessionRequest(options: ExecFlags, cmd: Command, with_: { actions: boolean } = { actions: false }): Omit<ExecRequest, 'command'> {
  const verbose = Boolean(cmd.optsWithGlobals().verbose);
  const { configFile, quiet, verbose: _verbose, ...flags } = options;
  const { config, warnings } = loadConfig({ cwd: process.cwd(), file: configFile, env: process.env, flags });
  const progress = createProgress({ quiet: Boolean(quiet) });
  for (const warning of warnings) progress.note(`warning: ${formatWarning(warning)}`);
  const layer = toLayerSettings(config, { socket: '', session: '' });
  const actions = with_.actions ? planActions(config) : undefined;
  // `job` steps run through the cluster's operator, found with the same kubeconfig as a Kubernetes target.
  if (actions?.steps.some((step) => step.job !== undefined) === true) actions.cluster = new OperatorJobSteps(kubernetesSettings(config).kube);
  const { outgoing, dns } = withOutgoingLocal(layer, actions?.steps ?? []);
  return {
    target: config.target.path,
    incoming: {
      mode: config.feature.network.incoming.mode,
      filter: httpFilterSpec(config.feature.network.incoming.http_filter),
      onConcurrentSteal: config.feature.network.incoming.on_concurrent_steal,
    },
    env: config.feature.env,
    layer: { outgoing, dns, incoming: layer.incoming, files: layer.files, logLevel: layer.logLevel },
    agentLogLevel: verbose ? 'debug' : config.agent.log_level,
    startupTimeoutMs: config.agent.startup_timeout * 1000,
    progress,
    verbose,
    platforms: {
      kubernetes: kubernetesSettings(config),
      operator: { use: config.operator, url: config.local_operator.url, token: config.local_operator.token, caFile: config.local_operator.ca_file },
      copyTarget: copyTargetRequest(config.feature.copy_target),
      splitQueues: splitQueuesRequest(config.feature.split_queues),
    },
    actions,
  };
}

/** What the operator is asked to copy; undefined when the session runs against the target itself. */
function copyTargetRequest(copy: RemocalConfig['feature']['copy_target']): CopyTargetRequest | undefined {
  if (!copy.enabled) return undefined;
  return { scaleDown: copy.scale_down, excludeContainers: copy.exclude_containers, excludeInitContainers: copy.exclude_init_containers, command: copy.command, keepLabels: copy.keep_labels };
}

/** The queues the operator is asked to split for this session; undefined when none. */
function splitQueuesRequest(queues: RemocalConfig['feature']['split_queues']): SplitQueuesRequest | undefined {
  if (queues === undefined || Object.keys(queues).length === 0) return undefined;
  return Object.fromEntries(Object.entries(queues).map(([id, queue]) => [id, { queueType: queue.queue_type, messageFilter: queue.message_filter }]));
}

/** The filter as the protocol carries it; null when none is set (then a steal takes whole connections). */
function httpFilterSpec(filter: RemocalConfig['feature']['network']['incoming']['http_filter']): HttpFilterSpec | null {
  const { header_filter, path_filter, method_filter, all_of, any_of, ports } = filter;
  if ([header_filter, path_filter, method_filter, all_of, any_of].every((part) => part === undefined)) return null;
  return { header_filter, path_filter, method_filter, all_of, any_of, ports };
}

/** The cluster and the agent's placement, from the config, for Kubernetes targets. */
function kubernetesSettings(config: RemocalConfig): ExecRequest['platforms']['kubernetes'] {
  return { kube: { kubeconfig: config.kubeconfig, context: config.kube_context, namespace: config.target.namespace }, agent: config.agent };
}

/** The flags that set config options are declared with the options themselves (config/options.ts). */
function addConfigFlags(command: Command): Command {
  for (const flag of configFlags()) command.option(flag.usage, flag.description);
  return command;
}

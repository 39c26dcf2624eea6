// The subcommands. Each parses its flags and hands a plain request to the component that does the work.

import { Command, Option } from 'commander';
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
import { runExec } from './exec.js';
import { createProgress } from './progress.js';
import { runDemo } from './demo/demo.js';

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
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  sudo remocal exec -t pid/4242 -- node server.js\n' +
        '  sudo remocal exec -t container/orders -- npm run dev\n' +
        '  sudo remocal exec -f .remocal/staging.yaml -- node --inspect server.js\n' +
        '\nExit status: the command\'s own; 125 when remocal itself fails, 126/127 when the command cannot be run.',
    )
    .passThroughOptions()
    .action(async (command: string[], options: ExecFlags, cmd: Command) => {
      const verbose = Boolean(cmd.optsWithGlobals().verbose);
      const { configFile, quiet, verbose: _verbose, ...flags } = options;
      const { config, warnings } = loadConfig({ cwd: process.cwd(), file: configFile, env: process.env, flags });
      const progress = createProgress({ quiet: Boolean(quiet) });
      for (const warning of warnings) progress.note(`warning: ${formatWarning(warning)}`);
      const layer = toLayerSettings(config, { socket: '', session: '' });
      process.exitCode = await runExec({
        command,
        target: config.target.path,
        incoming: { mode: config.feature.network.incoming.mode, filter: httpFilterSpec(config.feature.network.incoming.http_filter) },
        env: config.feature.env,
        layer: { outgoing: layer.outgoing, dns: layer.dns, incoming: layer.incoming, files: layer.files, logLevel: layer.logLevel },
        agentLogLevel: verbose ? 'debug' : config.agent.log_level,
        startupTimeoutMs: config.agent.startup_timeout * 1000,
        progress,
        verbose,
      });
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

/** The filter as the protocol carries it; null when none is set (then a steal takes whole connections). */
function httpFilterSpec(filter: RemocalConfig['feature']['network']['incoming']['http_filter']): HttpFilterSpec | null {
  const { header_filter, path_filter, method_filter, all_of, any_of, ports } = filter;
  if ([header_filter, path_filter, method_filter, all_of, any_of].every((part) => part === undefined)) return null;
  return { header_filter, path_filter, method_filter, all_of, any_of, ports };
}

/** The flags that set config options are declared with the options themselves (config/options.ts). */
function addConfigFlags(command: Command): Command {
  for (const flag of configFlags()) command.option(flag.usage, flag.description);
  return command;
}

// remocal's command line (loaded by main.ts). Thin: it parses, then calls the components. Every failure a user can meet is a
// RemocalError, printed as its message and a hint; a stack trace only for our own bugs, with --verbose.

import { Command, Option } from 'commander';
import { isRemocalError, type RemocalError, InternalError } from '../core/errors.js';
import { EXIT_REMOCAL_FAILED } from './exec.js';
import { registerCommands } from './commands.js';
import { discardPrewarmedIntproxy } from './prewarm.js';
import { packageVersion } from '../core/paths.js';

const program = new Command();
program
  .name('remocal')
  .description(
    'Run a local process as if it ran inside a remote target: its outgoing connections, DNS lookups and ' +
      'environment come from the target (a process in its own namespaces, a container, a pod).',
  )
  .version(packageVersion(), '-V, --version')
  .enablePositionalOptions()
  .showHelpAfterError('(run `remocal <command> --help` for its options)')
  .addOption(new Option('--verbose', 'print debug details and stack traces of internal errors'));

registerCommands(program);

program
  .parseAsync(process.argv)
  .finally(discardPrewarmedIntproxy)
  .then(() => {
    if (process.exitCode === undefined) process.exitCode = 0;
  })
  .catch((error: unknown) => {
    const verbose = process.argv.includes('--verbose');
    printError(isRemocalError(error) ? error : new InternalError(error instanceof Error ? error.message : String(error), { cause: error }), verbose);
    const exitCode = isRemocalError(error) && typeof error.details?.exitCode === 'number' ? error.details.exitCode : EXIT_REMOCAL_FAILED;
    process.exitCode = exitCode;
  });

function printError(error: RemocalError, verbose: boolean): void {
  const lines = [`remocal: error: ${error.message}`];
  if (error.hint) lines.push(`  hint: ${error.hint}`);
  lines.push(`  (${error.code})`);
  if (verbose || error.category === 'internal') {
    const cause = error.cause instanceof Error ? error.cause : error;
    if (verbose) lines.push(cause.stack ?? String(cause));
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

// `remocal verify-config`: check a config file (the one given, or the one remocal would use here) and report
// every problem and warning as data, for the CLI to print as text or JSON.

import { formatProblem, formatWarning, type ConfigProblem, type ConfigWarning } from './errors.js';
import { gatherConfig, type ConfigFormat } from './load.js';

export interface VerifyConfigOptions {
  cwd: string;
  /** The file to check; when absent, the one discovered from cwd upwards. */
  file?: string | undefined;
  /** Also check the REMOCAL_… env vars (pass process.env); by default only the file is checked. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

export interface VerifyReport {
  ok: boolean;
  /** Absolute path of the file checked, or null when none was given or found. */
  file: string | null;
  format: ConfigFormat | null;
  problems: ConfigProblem[];
  warnings: ConfigWarning[];
}

export function verifyConfig(options: VerifyConfigOptions): VerifyReport {
  const gathered = gatherConfig({ cwd: options.cwd, file: options.file, env: options.env ?? {} });
  const warnings = [...gathered.warnings];
  if (gathered.source.file === null) {
    warnings.push({ path: '', message: 'no .remocal/config.json or .remocal/config.yaml found from here upwards: only defaults, env vars and flags apply.' });
  }
  return { ok: gathered.problems.length === 0, file: gathered.source.file, format: gathered.source.format, problems: gathered.problems, warnings };
}

/** The report as the CLI prints it without --json. */
export function formatVerifyReport(report: VerifyReport): string {
  const lines: string[] = [];
  const subject = report.file ?? 'the configuration';
  if (report.ok) lines.push(`${subject}: valid.`);
  else lines.push(`${subject}: ${report.problems.length === 1 ? '1 problem' : `${report.problems.length} problems`}.`, ...report.problems.map((problem) => `  error: ${formatProblem(problem)}`));
  lines.push(...report.warnings.map((warning) => `  warning: ${formatWarning(warning)}`));
  return `${lines.join('\n')}\n`;
}

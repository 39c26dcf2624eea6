// Progress lines on stderr, one per step that waits, so a slow start is never silent. stdout belongs to the
// command.

export interface Progress {
  step(text: string): { done(result?: string): void; fail(): void };
  note(text: string): void;
}

export function createProgress(options: { quiet: boolean; stream?: NodeJS.WritableStream }): Progress {
  const stream = options.stream ?? process.stderr;
  const write = (line: string) => {
    if (!options.quiet) stream.write(`remocal: ${line}\n`);
  };
  return {
    step(text) {
      const started = performance.now();
      write(`${text}…`);
      return {
        done(result) {
          const ms = Math.round(performance.now() - started);
          write(`${result ?? 'done'} (${ms} ms)`);
        },
        fail() {},
      };
    },
    note: write,
  };
}

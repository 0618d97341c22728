import { formatCommandHelp, parseCommandArgs } from './args.js';
import type { Command } from './commands/command.js';
import { demoCommand } from './commands/demo.js';
import { getCommand } from './commands/get.js';
import { invalidateCommand } from './commands/invalidate.js';
import { refreshCommand } from './commands/refresh.js';
import { statusCommand } from './commands/status.js';
import { workerCommand } from './commands/worker.js';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './errors.js';
import { type CliIo, formatRows, writeLine } from './output.js';

/** Every subcommand, in the order that `tokenfleet --help` lists them. */
export const COMMANDS: readonly Command[] = [
  getCommand,
  statusCommand,
  invalidateCommand,
  refreshCommand,
  demoCommand,
  workerCommand,
];

/**
 * Runs `tokenfleet` with `argv` (the arguments after the program name) and returns the exit code:
 * 0 success, 1 runtime failure, 2 usage error. Every error is written to `io.stderr` as one line.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    writeLine(io.stderr, "tokenfleet: missing command (run 'tokenfleet --help')");
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h') {
    io.stdout.write(formatMainHelp());
    return EXIT_OK;
  }
  if (name === 'help') {
    return printHelpOf(rest[0], io);
  }

  const command = COMMANDS.find((candidate) => candidate.spec.name === name);
  if (!command) {
    writeLine(io.stderr, `tokenfleet: unknown command '${name}' (run 'tokenfleet --help')`);
    return EXIT_USAGE;
  }

  try {
    // `pnpm demo -- --workers 4` hands the `--` on to the script; no command takes positionals.
    const args = rest[0] === '--' ? rest.slice(1) : rest;
    const values = parseCommandArgs(command.spec, args);
    if (values.help === true) {
      io.stdout.write(formatCommandHelp(command.spec));
      return EXIT_OK;
    }
    return await command.run(values, io);
  } catch (err) {
    return reportError(name, err, io);
  }
}

function printHelpOf(name: string | undefined, io: CliIo): number {
  if (name === undefined) {
    io.stdout.write(formatMainHelp());
    return EXIT_OK;
  }
  const command = COMMANDS.find((candidate) => candidate.spec.name === name);
  if (!command) {
    writeLine(io.stderr, `tokenfleet help: unknown command '${name}' (run 'tokenfleet --help')`);
    return EXIT_USAGE;
  }
  io.stdout.write(formatCommandHelp(command.spec));
  return EXIT_OK;
}

/** Writes one line naming the command and the failure; returns the exit code. */
function reportError(name: string, err: unknown, io: CliIo): number {
  if (err instanceof UsageError) {
    writeLine(io.stderr, `tokenfleet ${name}: ${err.message} (run 'tokenfleet ${name} --help')`);
    return EXIT_USAGE;
  }
  if (err instanceof CliError) {
    writeLine(io.stderr, `tokenfleet ${name}: ${err.message}`);
    return err.exitCode;
  }

  // Errors of the tokenfleet packages carry a stable code and never a secret or a token.
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  const suffix = typeof code === 'string' ? ` [${code}]` : '';
  writeLine(io.stderr, `tokenfleet ${name}: ${oneLine(message)}${suffix}`);
  // An invalid option of a library function comes from a flag or variable: a usage error.
  return code === 'ERR_INVALID_ARG_TYPE' || code === 'ERR_INVALID_ARG_VALUE'
    ? EXIT_USAGE
    : EXIT_FAILURE;
}

function formatMainHelp(): string {
  const commands = formatRows(
    COMMANDS.map((command) => [`  ${command.spec.name}`, command.spec.title]),
  );
  return [
    'Usage: tokenfleet <command> [options]',
    '',
    'Shares one OAuth2 client-credentials token across a fleet through Redis.',
    '',
    'Commands:',
    commands.trimEnd(),
    '',
    "Run 'tokenfleet <command> --help' for the options of a command.",
    'Exit codes: 0 success, 1 runtime failure, 2 usage error.',
    '',
  ].join('\n');
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** One option of a command, as `--help` shows it. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in help output, such as `URL`. */
  valueName?: string;
  /** Environment variable read when the flag is absent. */
  env?: string;
  /** Default shown in help output. */
  defaultText?: string;
  description: string;
}

/** A subcommand: its name, one-line summary, usage line, options and notes for `--help`. */
export interface CommandSpec {
  name: string;
  /** A few words for the command list of `tokenfleet --help`. */
  title: string;
  /** Description of the command, for its own `--help`. */
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** Paragraphs printed after the options. */
  notes?: string[];
}

/** Values of the parsed options: a string, `true` for a boolean flag, absent when not given. */
export type ParsedOptions = Record<string, string | boolean | undefined>;

/** Width that `--help` wraps paragraphs at. */
const HELP_WIDTH = 80;

/** Options that every command takes. */
export const HELP_OPTION: OptionSpec = {
  type: 'boolean',
  short: 'h',
  description: 'Print this help and exit.',
};

/**
 * Parses the arguments after the command name. Raises `UsageError` for an unknown option, a
 * missing value, a value given to a boolean flag, or a positional argument.
 */
export function parseCommandArgs(command: CommandSpec, argv: string[]): ParsedOptions {
  const specs: Record<string, OptionSpec> = { ...command.options, help: HELP_OPTION };
  const parseOptions: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, spec] of Object.entries(specs)) {
    parseOptions[name] = spec.short ? { type: spec.type, short: spec.short } : { type: spec.type };
  }

  // Non-strict mode with tokens lets this function word every usage error itself; strict mode
  // raises Node's longer messages, which name no command.
  const { tokens } = parseArgs({
    args: argv,
    options: parseOptions,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });

  const values: ParsedOptions = {};
  for (const token of tokens) {
    if (token.kind === 'positional') {
      throw new UsageError(`unexpected argument '${token.value}'`);
    }
    if (token.kind === 'option-terminator') {
      continue;
    }

    const spec = specs[token.name];
    if (!spec) {
      throw new UsageError(`unknown option ${token.rawName}`);
    }
    if (spec.type === 'boolean') {
      if (token.inlineValue) {
        throw new UsageError(`option --${token.name} takes no value`);
      }
      values[token.name] = true;
      continue;
    }

    // A string option followed by another option, such as `--redis-url --json`, has no value.
    const value = token.value;
    const missing = value === undefined || (!token.inlineValue && value.startsWith('-'));
    if (missing || value === '') {
      throw new UsageError(
        `option --${token.name} requires a value (${spec.valueName ?? 'VALUE'})`,
      );
    }
    values[token.name] = value;
  }
  return values;
}

/** Reads a string option, then its environment variable; empty variables count as absent. */
export function optionOrEnv(
  values: ParsedOptions,
  name: string,
  env: string | undefined,
  environment: NodeJS.ProcessEnv,
): string | undefined {
  const value = values[name];
  if (typeof value === 'string') {
    return value;
  }
  if (env === undefined) {
    return undefined;
  }
  const fromEnv = environment[env];
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/**
 * Parses a positive integer option, such as `--workers`, between 1 and `max`. Raises
 * `UsageError` naming the option when the value is not a whole number in that range.
 */
export function parsePositiveInteger(
  name: string,
  value: string | boolean | undefined,
  fallback: number,
  max: number,
): number {
  if (value === undefined) {
    return fallback;
  }
  const text = String(value);
  const parsed = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < 1 || parsed > max) {
    throw new UsageError(
      `option --${name} must be an integer from 1 to ${max}, received '${text}'`,
    );
  }
  return parsed;
}

/** Formats the `--help` text of one command. */
export function formatCommandHelp(command: CommandSpec): string {
  const specs: [string, OptionSpec][] = [...Object.entries(command.options), ['help', HELP_OPTION]];
  const rows = specs.map(([name, spec]) => {
    const short = spec.short ? `-${spec.short}, ` : '';
    const value = spec.type === 'string' ? ` ${spec.valueName ?? 'VALUE'}` : '';
    const extras: string[] = [];
    if (spec.env) {
      extras.push(`env ${spec.env}`);
    }
    if (spec.defaultText) {
      extras.push(`default ${spec.defaultText}`);
    }
    const suffix = extras.length > 0 ? ` (${extras.join(', ')})` : '';
    return { flag: `${short}--${name}${value}`, text: `${spec.description}${suffix}` };
  });

  const width = Math.max(...rows.map((row) => row.flag.length));
  const lines = [
    `Usage: ${command.usage}`,
    '',
    wrapText(command.summary, HELP_WIDTH),
    '',
    'Options:',
    ...rows.map((row) => {
      const indent = ' '.repeat(width + 4);
      const text = wrapText(row.text, Math.max(HELP_WIDTH - indent.length, 30));
      return `  ${row.flag.padEnd(width)}  ${text.replaceAll('\n', `\n${indent}`)}`;
    }),
  ];
  for (const note of command.notes ?? []) {
    lines.push('', wrapText(note, HELP_WIDTH));
  }
  return `${lines.join('\n')}\n`;
}

/** Breaks `text` into lines of at most `width` characters at spaces. */
export function wrapText(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join('\n');
}

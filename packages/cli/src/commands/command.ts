import type { CommandSpec, ParsedOptions } from '../args.js';
import type { CliIo } from '../output.js';

/** A subcommand of `tokenfleet`: its help and its action, which returns the exit code. */
export interface Command {
  spec: CommandSpec;
  run(values: ParsedOptions, io: CliIo): Promise<number>;
}

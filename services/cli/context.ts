/**
 * What every `veritrail` command shares with the program that runs it: where it writes, and the
 * exit code it reports (0 success, 1 a negative result such as a failed verification, 2 a usage
 * or input error, 3 content withheld). Kept apart from main.ts, which imports every command.
 */

export const EXIT_OK = 0;
export const EXIT_NEGATIVE = 1;
export const EXIT_USAGE = 2;
export const EXIT_WITHHELD = 3;

/** Where a command writes and what it reports back; tests pass their own streams. */
export interface CliContext {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
  exitCode: number;
}

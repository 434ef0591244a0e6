/** asyncscope: the command-line client of the asyncscope API (commander for parsing, help and usage errors). */
import { Command, CommanderError, Option } from 'commander';
import { fetchCommand } from './commands/fetch';
import { streamCommand } from './commands/stream';
import { usersCommand } from './commands/users';
import { watchCommand } from './commands/watch';
import { DEFAULT_URL, resolveConfig, shownUrl, type Config, type GlobalOptions } from './config';
import { describeError, EXIT } from './errors';

const program = new Command('asyncscope')
  .description('The command-line client of the asyncscope API: users, concurrent fetches, streams and live activity.')
  .addOption(new Option('--url <url>', `the server (default ${DEFAULT_URL})`).env('ASYNCSCOPE_URL'))
  // Never shown with its value: commander's help prints only the variable's name.
  .addOption(new Option('--token <token>', 'the API token (prefer the environment: a flag shows in `ps`)').env('ASYNCSCOPE_TOKEN'))
  .option('--json', 'machine-readable output on stdout')
  .option('--verbose', 'print the stack of an unexpected error')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText('after', `
Exit codes: 0 ok, 1 failed, 2 usage error, 3 auth error (UNAUTHORIZED), 4 server unreachable,
5 partial failure (some calls failed), 130 interrupted (Ctrl+C).`)
  // Every usage error (unknown option, missing argument) exits 2, help and version 0.
  .exitOverride();

/** Runs a command's body with the resolved config; any error becomes one line and an exit code. */
async function run(cmd: Command, body: (config: Config) => Promise<void>): Promise<void> {
  const options = cmd.optsWithGlobals<GlobalOptions>();
  let config: Config | undefined;
  try {
    config = resolveConfig(options);
    await body(config);
  } catch (error) {
    const { exitCode, message } = describeError(error, config ? shownUrl(config.baseUrl) : undefined);
    process.stderr.write(`${message}\n`);
    if (options.verbose && error instanceof Error && exitCode !== EXIT.partial && exitCode !== EXIT.interrupted) process.stderr.write(`${error.stack ?? ''}\n`);
    process.exitCode = exitCode;
  }
}

const users = usersCommand(program, run);
streamCommand(users, run);
fetchCommand(program, run);
watchCommand(program, run);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // commander has printed the message (and the help hint) already.
    process.exitCode = error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version' ? EXIT.ok : EXIT.usage;
  } else {
    process.stderr.write(`${describeError(error, undefined).message}\n`);
    process.exitCode = EXIT.failure;
  }
}

// The command is done and has released what it opened; should anything still hold the event loop (a socket
// a library reopened), exit anyway rather than hang the user's shell. Unref'd: it never delays a clean exit.
setTimeout(() => { process.exit(); }, 2000).unref();

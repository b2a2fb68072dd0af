/**
 * The guest CLI's entry point (bundled into dist/devapollo-guest.cjs). `get KEY` is what
 * boot scripts run in loops, so it skips the argument parser and its modules entirely;
 * everything else loads the full CLI, which the bundle carries as a string and compiles
 * only here (scripts/bundle-guest.js).
 */
import { runCli, writeValue } from '../shared/output.js';

/** `get KEY` with at most --socket and --connect-timeout; anything else is for yargs. */
function parseFastGet(argv: readonly string[]): { key: string; socket?: string; timeout?: number } | undefined {
  const positional: string[] = [];
  let socket: string | undefined;
  let timeout: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [name, inline] = arg.startsWith('--')
      ? arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined]
      : [arg, undefined];
    if (name === '--socket' || name === '--connect-timeout') {
      const value = inline ?? argv[++i];
      if (value === undefined) return undefined;
      if (name === '--socket') socket = value;
      else {
        timeout = Number(value);
        if (!(timeout > 0)) return undefined;
      }
    } else if (arg.startsWith('-')) {
      return undefined;
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 2 || positional[0] !== 'get') return undefined;
  return { key: positional[1] as string, ...(socket === undefined ? {} : { socket }), ...(timeout === undefined ? {} : { timeout }) };
}

const argv = process.argv.slice(2);
const fast = parseFastGet(argv);
// No top-level await: the bundle is CommonJS, which Node loads faster than an ES module.
void (async () => {
  if (fast !== undefined) {
    await runCli(async () => {
      const [{ GuestClient }, { getValue }] = await Promise.all([import('./api-client.js'), import('./operations.js')]);
      const client = new GuestClient({ socketPath: fast.socket, connectTimeoutMs: (fast.timeout ?? 5) * 1000 });
      await writeValue(await getValue(client, fast.key));
    });
  } else {
    const { main } = await import('./main.js');
    await main(argv);
  }
})();

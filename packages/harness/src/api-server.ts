/** The real API server (apps/server's build) as a child process on a free port, for benchmarks and chaos runs. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiClient, type ApiClient } from '@asyncscope/client';
import { freePort } from '@asyncscope/db';
import { EventSource } from 'eventsource';
import { generate } from 'selfsigned';
import { spawnChild, stopChild, waitUntilOk, type Child } from './children';

/** The server's `serve` script (what `pnpm start` runs), as node's arguments: flags, then the built entry point. */
function serveArgs(serverDir: string): string[] {
  const pkg = JSON.parse(readFileSync(join(serverDir, 'package.json'), 'utf8')) as { scripts: { serve: string } };
  const words = pkg.scripts.serve.trim().split(/\s+/);
  if (words[0] !== 'node') throw new Error(`unexpected serve script: ${pkg.scripts.serve}`);
  return words.slice(1);
}

export interface ApiServer {
  child: Child;
  url: string;
  /** The bearer token it was started with (for raw HTTP clients). */
  token: string;
  /** With `tls`: the certificate it serves (PEM), for clients to trust. `api` (fetch) cannot use it. */
  ca?: string | undefined;
  api: ApiClient;
  close(): Promise<void>;
}

export interface ApiServerOptions {
  /** An apps/server folder with dist/ built: its `serve` script is the command that runs. */
  serverDir: string;
  /** Extra node flags for an investigation (e.g. `--cpu-prof`, `--import ./probe.mjs`), before the entry point. */
  nodeArgs?: readonly string[];
  readyTimeoutMs?: number;
  tls?: boolean;
  /** The bearer token (instances behind one load balancer share one); a random one when absent. */
  token?: string;
}

/** Starts the built server against `databaseUrl`, and waits until /readyz answers 200. */
export async function startApiServer(
  databaseUrl: string,
  extraEnv: Record<string, string>,
  signal: AbortSignal,
  options: ApiServerOptions,
): Promise<ApiServer> {
  const { serverDir } = options;
  const serve = serveArgs(serverDir);
  const port = await freePort();
  const token = options.token ?? randomBytes(18).toString('hex');
  // HTTPS (HTTP/2 and HTTP/1.1) with a certificate made now for 127.0.0.1.
  const tlsDir = options.tls ? await mkdtemp(join(tmpdir(), 'asyncscope-bench-tls-')) : undefined;
  let ca: string | undefined;
  const tlsEnv: Record<string, string> = {};
  if (tlsDir) {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    ca = pems.cert;
    await writeFile(join(tlsDir, 'cert.pem'), pems.cert);
    await writeFile(join(tlsDir, 'key.pem'), pems.private, { mode: 0o600 });
    Object.assign(tlsEnv, { TLS_CERT: join(tlsDir, 'cert.pem'), TLS_KEY: join(tlsDir, 'key.pem') });
  }
  const removeTls = () => (tlsDir ? rm(tlsDir, { recursive: true, force: true }) : Promise.resolve());
  const child = spawnChild({
    name: 'server',
    // The same command as `pnpm start` (apps/server's serve script, on its build), so the figures are
    // those of the server a user starts.
    args: [...serve.slice(0, -1), ...(options.nodeArgs ?? []), ...serve.slice(-1)],
    cwd: serverDir,
    // The child inherits this process's environment as a whole (PATH, proxy and CA settings), not as settings read here.
    // eslint-disable-next-line no-restricted-properties
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, API_TOKEN: token, LOG_LEVEL: 'warn', ...extraEnv, ...tlsEnv },
  });
  const url = `${tlsDir ? 'https' : 'http'}://127.0.0.1:${port}`;
  try {
    await waitUntilOk(child, `${url}/readyz`, { timeoutMs: options.readyTimeoutMs ?? 60_000, signal, ca });
  } catch (error) {
    await stopChild(child);
    await removeTls();
    throw error;
  }
  const close = async () => {
    await stopChild(child);
    await removeTls();
  };
  return { child, url, token, ca, api: createApiClient({ url: `${url}/trpc`, token, EventSource }), close };
}

import react from '@vitejs/plugin-react';
import { defineConfig, loadEnv } from 'vite';

// `pnpm dev` serves the dashboard with hot reload and forwards API calls to the server, so the browser
// sees one origin: the server `pnpm dev` starts next to it (its HOST and PORT, as the server reads them)
// unless VITE_API_TARGET says otherwise.
function serverTarget(): string {
  const port = process.env.PORT || '3000';
  const host = process.env.HOST || '127.0.0.1';
  // A server listening on every interface is reached on loopback.
  const reach = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${reach}:${port}`;
}

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), 'VITE_');
  const target = env.VITE_API_TARGET ?? process.env.VITE_API_TARGET ?? serverTarget();
  const proxy = { target, changeOrigin: false, ws: false };
  return {
    plugins: [react()],
    server: {
      port: 5173,
      strictPort: false,
      proxy: { '/trpc': proxy, '/healthz': proxy, '/readyz': proxy },
    },
    // Source maps would publish the dashboard's sources to anyone who can reach it: opt-in, at build time.
    build: { outDir: 'dist', emptyOutDir: true, sourcemap: process.env.DASHBOARD_SOURCEMAPS === '1', target: 'es2022' },
  };
});

import react from '@vitejs/plugin-react';
import { defineConfig, loadEnv } from 'vite';

// `pnpm dev` serves the dashboard with hot reload and forwards API calls to the server
// (http://127.0.0.1:3000 unless VITE_API_TARGET says otherwise), so the browser sees one origin.
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), 'VITE_');
  const target = env.VITE_API_TARGET ?? process.env.VITE_API_TARGET ?? 'http://127.0.0.1:3000';
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

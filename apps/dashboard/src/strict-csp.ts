import { z } from 'zod';

// The page runs under a CSP without 'unsafe-eval'. zod compiles object parsers with `new Function` when it
// may, and probes for that once — a probe the browser reports as a CSP violation even though zod catches it.
// Jitless: no probe, no eval. Imported first, before any schema parses.
z.config({ jitless: true });

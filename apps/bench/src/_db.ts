import { openBenchDatabase } from './bench-db';
const db = await openBenchDatabase({ users: 10000, signal: new AbortController().signal });
console.log('opened', db.url);
await db.close();
console.log('closed');

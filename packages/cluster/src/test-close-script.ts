/**
 * Run by broker.test.ts in a child process: uses every part of a broker, closes it, and must then exit by itself.
 * With `nojs` as second argument the broker has no JetStream: the link never becomes ready, and must still close.
 */
import { connectBroker } from './broker.ts';

const url = process.argv[2] ?? 'nats://127.0.0.1:4222';
if (process.argv[3] === 'nojs') {
  let told = '';
  const b = connectBroker({
    url,
    instanceId: 'closer:nojs',
    stream: 'CLOSE_TEST',
    subjectPrefix: 'closetest',
    maxEvents: 1000,
    maxAgeMs: 60_000,
    maxBuffered: 100,
    onStatus: (c) => (told = c.reason),
  });
  const deadline = Date.now() + 10_000;
  while (!told) {
    if (Date.now() > deadline) throw new Error('never told');
    await new Promise((r) => setTimeout(r, 20));
  }
  await b.serve('ping', () => Promise.resolve('pong'));
  b.publish({ i: 0 });
  b.announce({});
  await b.close(AbortSignal.timeout(1_000));
  console.log('closed', JSON.stringify(b.status()));
} else {
  const b = connectBroker({ url, instanceId: 'closer:1', stream: 'CLOSE_TEST', subjectPrefix: 'closetest', maxEvents: 1000, maxAgeMs: 60_000, maxBuffered: 100 });
  const deadline = Date.now() + 10_000;
  while (!b.status().connected) {
    if (Date.now() > deadline) throw new Error('not connected');
    await new Promise((r) => setTimeout(r, 20));
  }
  await b.serve('ping', () => Promise.resolve('pong'));
  const stop = new AbortController();
  let got = 0;
  const following = b.follow(0, stop.signal, { onRecords: (batch) => (got += batch.length), onMissed: () => undefined, onReset: () => undefined });
  for (let i = 0; i < 50; i++) b.publish({ i });
  b.announce({ inFlight: 0 });
  while (got < 50) await new Promise((r) => setTimeout(r, 20));
  console.log('answer', await b.request('closer:1', 'ping', null, AbortSignal.timeout(2_000)));
  b.instances();
  stop.abort();
  await following;
  await b.close();
  console.log('closed', JSON.stringify(b.status()));
}

/**
 * The link between server instances: one NATS JetStream stream of records (the stream sequence is the global,
 * ordered, resumable id), a KV bucket with a TTL for presence, and request/reply to reach one instance.
 *
 * Everything here is best effort and off the caller's path: `publish` only appends to a bounded buffer (a full
 * buffer or a broker that is down counts a drop, and the drops are later published as one gap marker), the
 * connection is made and remade in the background (a broker that is down at start does not hold anyone up), and
 * every loop ends on `close()`.
 */
import { jetstreamManager, DeliverPolicy, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { connect, headers } from '@nats-io/transport-node';
import type { NatsConnection, QueuedIterator, Subscription } from '@nats-io/transport-node';
import { BoundedQueue } from './bounded-queue.ts';
import { abortableSleep, encodeToken, Notifier, redactUrl } from './util.ts';

export interface BrokerOptions {
  /**
   * `nats://[user:pass@]host:port`, or `tls://…` to require TLS (verified against the system's CAs); credentials
   * are taken out of it and never reported. Any other scheme throws.
   */
  url: string;
  /** This instance's id: names its subjects, its presence key and its gap markers. */
  instanceId: string;
  /** Stream name (e.g. ASYNCSCOPE_HOPS). */
  stream: string;
  /** Subject prefix (e.g. `asyncscope`): records go to `<prefix>.hops.<instance>`. */
  subjectPrefix: string;
  /** Retention of the stream, by count and by age. */
  maxEvents: number;
  maxAgeMs: number;
  /** Records waiting to be published; past it `publish` drops (counted). Failed publishes awaiting a retry add at most `maxInFlight`. */
  maxBuffered: number;
  /** Publishes awaiting their ack at once (the pump's window). Default 256. */
  maxInFlight?: number;
  /** Presence: a report older than this is `gone` (default 3 s); older than `presenceDropMs`, dropped (60 s). */
  presenceGoneMs?: number;
  presenceDropMs?: number;
  /** Presence bucket TTL (default 10 s). */
  presenceTtlMs?: number;
  /** Told whenever the link goes up or down (for the log). Must not throw. */
  onStatus?: (change: BrokerStatusChange) => void;
}

export interface BrokerStatusChange {
  connected: boolean;
  /** Why (an error message without credentials), e.g. 'connection refused', 'reconnected'. */
  reason: string;
}

export interface BrokerStatus {
  /** Connected and the stream is in place: publishing works. */
  connected: boolean;
  /** Records acknowledged by the stream (gap markers not counted). */
  published: number;
  /** Records lost: buffer full, broker down, or a publish that failed. */
  dropped: number;
  /** Records waiting in the buffer now. */
  buffered: number;
  inFlight: number;
  lastError?: string;
}

export interface FollowedRecord {
  seq: number;
  record: unknown;
}

export interface FollowHandler {
  /** Records in stream order, seqs ascending; a batch holds what arrived together. */
  onRecords(batch: FollowedRecord[]): void;
  /**
   * `n` records after `afterSeq` are lost. `gap-marker`: the marker at seq `afterSeq + 1` stands for `n` records an
   * instance could not publish. `retention`: seqs `afterSeq + 1 … afterSeq + n` are no longer in the stream.
   * `unreadable`: the record at `afterSeq + 1` could not be decoded (n = 1). Records after that come next.
   */
  onMissed(afterSeq: number, n: number, reason: MissedReason): void;
  /** The stream was recreated (a new id space): what follows starts again from seq 1. */
  onReset(bootId: string): void;
  /** The stream this follower reads from now on (at its start and on every reconnect, before any record). */
  onStream?(bootId: string): void;
}

export type MissedReason = 'gap-marker' | 'retention' | 'unreadable';

export interface InstancePresence {
  instance: string;
  state: 'up' | 'gone';
  /** Since its last report, measured here. */
  ageMs: number;
  /** What it announced last. */
  stats: unknown;
}

/** What `request` answers when nobody serves the subject: the instance is gone. */
export const NO_RESPONDERS: unique symbol = Symbol('no-responders');

/** `request` could not be sent or answered: the broker is down or the answer did not come in time. */
export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError';
}

/** The answer of a served handler that threw: the error's message travels back. */
export class RemoteHandlerError extends Error {
  override readonly name = 'RemoteHandlerError';
}

export interface Broker {
  publish(record: unknown): void;
  follow(afterSeq: number, signal: AbortSignal, handler: FollowHandler): Promise<void>;
  /** `js-` + the stream's creation time in base 36; undefined until the stream was seen once. */
  bootId(): string | undefined;
  /** The stream's first and last seq now (undefined when the broker is down). */
  streamState(signal: AbortSignal): Promise<{ bootId: string; firstSeq: number; lastSeq: number } | undefined>;
  announce(stats: unknown): void;
  instances(): InstancePresence[];
  withdraw(signal?: AbortSignal): Promise<void>;
  /**
   * Answers requests to `subjectSuffix` for this instance. Resolves once the NATS server has the subscription
   * (a request from another connection finds a responder from then on), or at once before the broker's first
   * connection (it subscribes, and flushes, when it is ready); `signal` stops the wait, not the serving.
   */
  serve(subjectSuffix: string, handler: (payload: unknown, signal: AbortSignal) => Promise<unknown>, signal?: AbortSignal): Promise<void>;
  request(instanceId: string, subjectSuffix: string, payload: unknown, signal: AbortSignal, timeoutMs?: number): Promise<unknown>;
  status(): BrokerStatus;
  close(signal?: AbortSignal): Promise<void>;
}

const GAP_HEADER = 'Asyncscope-Gap';
const DUPLICATE_WINDOW_MS = 30_000;
/**
 * How long a stream found gone under a live connection is left gone before it is created again. The server stops
 * answering for a stream it deletes before it has removed its files (a few ms here, up to 27 ms with both cores
 * busy), and a stream of the same name added in between loses its files with the old one's: it acks publishes
 * but delivers nothing, until the server restarts.
 */
const STREAM_GONE_SETTLE_MS = 1_000;

export function bootIdOf(created: string): string {
  return `js-${Date.parse(created).toString(36)}`;
}

/** Starts connecting in the background and returns at once; `status().connected` says when it works. */
export function connectBroker(options: BrokerOptions): Broker {
  return new NatsBroker(options);
}

interface Outgoing {
  data: string;
  /** > 0: a gap marker standing for that many records. */
  gap: number;
  msgId: string;
  firstSentAt: number;
  attempts: number;
}

interface Session {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: KV;
}

class NatsBroker implements Broker {
  readonly #o: Required<Omit<BrokerOptions, 'onStatus'>> & Pick<BrokerOptions, 'onStatus'>;
  readonly #server: string;
  readonly #auth: { user?: string; pass?: string; token?: string };
  readonly #token: string;
  readonly #subject: string;
  readonly #queue: BoundedQueue<unknown>;
  readonly #closing = new AbortController();
  /** Fires on every change of `#session`/readiness: followers and watchers restart on it. */
  readonly #changed = new Notifier();
  readonly #served = new Map<string, (payload: unknown, signal: AbortSignal) => Promise<unknown>>();
  /** The served subscriptions of the current connection, one per suffix (replaced on every new connection). */
  readonly #subs = new Map<string, Subscription>();
  readonly #presence = new Map<string, { instance: string; stats: unknown; at: number; deleted: boolean }>();
  readonly #background: Promise<void>[] = [];
  #session: Session | undefined;
  /** The connection being made ready or in use (also before `#session` is set): close() closes it. */
  #nc: NatsConnection | undefined;
  /** Whether TLS is required (`tls://`). */
  readonly #tls: boolean;
  /** Delay before the pump runs again after a failed publish (0: at once); doubles up to 1 s, reset by an ack. */
  #backoffMs = 0;
  #pumpTimer: NodeJS.Timeout | undefined;
  /** Whether #becomeReady runs (after a publish found the stream gone), so it is started once. */
  #recovering = false;
  /** Whether a failed publish is being followed by a look at the stream (one at a time). */
  #probing = false;
  #ready = false;
  /** Whether the current outage was reported (once per outage, also when the broker is down at start). */
  #downReported = false;
  #epoch = 0;
  #bootId: string | undefined;
  #published = 0;
  #dropped = 0;
  #pendingGap = 0;
  #inFlight = 0;
  /** Publishes that failed, to be sent again first (at most maxInFlight). */
  #retry: Outgoing[] = [];
  /** Message ids unique to this broker object: the stream's de-duplication key for retries. */
  readonly #msgIdPrefix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}-`;
  #nextMsg = 0;
  #pumpScheduled = false;
  #lastError: string | undefined;
  /** The presence put in flight: withdraw waits for it, so it cannot recreate the key after the delete. */
  #announcing: Promise<void> | undefined;
  #withdrawn = false;
  #closed = false;

  constructor(options: BrokerOptions) {
    this.#o = {
      maxInFlight: 256,
      presenceGoneMs: 3_000,
      presenceDropMs: 60_000,
      presenceTtlMs: 10_000,
      ...options,
    };
    const url = new URL(options.url);
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new Error(`broker URL must be nats:// or tls://, not ${url.protocol}//`);
    this.#tls = url.protocol === 'tls:';
    this.#server = `${url.hostname}:${url.port || '4222'}`;
    this.#auth =
      url.username && url.password
        ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) }
        : url.username
          ? { token: decodeURIComponent(url.username) }
          : {};
    this.#token = encodeToken(options.instanceId);
    this.#subject = `${options.subjectPrefix}.hops.${this.#token}`;
    this.#queue = new BoundedQueue(options.maxBuffered);
    this.#background.push(this.#connectLoop());
    this.#background.push(this.#watchPresence());
  }

  // ---- connection ---------------------------------------------------------------------------------------

  async #connectLoop(): Promise<void> {
    const signal = this.#closing.signal;
    let delay = 250;
    while (!signal.aborted) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          servers: this.#server,
          ...this.#auth,
          // tls:// must never fall back to clear text (the credentials travel in the CONNECT).
          ...(this.#tls ? { tls: {} } : {}),
          name: this.#o.instanceId,
          timeout: 2_000,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          pingInterval: 5_000,
          maxPingOut: 2,
        });
      } catch (error) {
        this.#noteError(error, false);
        if (!this.#downReported) {
          this.#downReported = true;
          this.#tell({ connected: false, reason: this.#lastError ?? 'cannot connect' });
        }
        await abortableSleep(delay, signal);
        delay = Math.min(delay * 2, 5_000);
        continue;
      }
      delay = 250;
      if (isAborted(signal)) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      const watching = this.#watchStatus(nc);
      await this.#becomeReady(nc, 'connected');
      // Closing while it never became ready (no JetStream, say): nobody else closes this connection.
      if (isAborted(signal) && !nc.isClosed()) await nc.close();
      await nc.closed();
      if (this.#nc === nc) this.#nc = undefined;
      this.#session = undefined;
      this.#setReady(false, 'connection closed');
      await watching;
    }
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') this.#setReady(false, 'disconnected');
      else if (s.type === 'reconnect') await this.#becomeReady(nc, 'reconnected');
      else if (s.type === 'error') this.#noteError(s.error, false);
    }
  }

  /**
   * (Re)creates the stream and the bucket (the broker may have lost them), subscribes, then says ready; after
   * `settleMs` (a deletion the server may still be carrying out, see STREAM_GONE_SETTLE_MS).
   */
  async #becomeReady(nc: NatsConnection, reason: string, settleMs = 0): Promise<void> {
    const signal = this.#closing.signal;
    if (settleMs > 0) await abortableSleep(settleMs, signal);
    let delay = 200;
    let reported = false;
    while (!signal.aborted && !nc.isClosed()) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        const info = await this.#ensureStream(jsm);
        this.#bootId = bootIdOf(info.created);
        const js = jsm.jetstream();
        const kv = await new Kvm(js).create(`${this.#o.subjectPrefix}_instances`, {
          ttl: this.#o.presenceTtlMs,
          history: 1,
          storage: StorageType.File,
        });
        // A bucket another instance is still creating is found by name before the server has set it up: a watcher
        // made then gets nothing (nats-server 2.9 gives that consumer no send queue; its client resets it after
        // 2 missed 5 s heartbeats) and a put finds no stream. A direct get is only answered once the stream is
        // complete (its subscriptions come last); until then it fails and this is retried.
        await raceAbort(kv.get(this.#token), signal);
        if (isAborted(signal)) return;
        if (this.#session?.nc !== nc) {
          this.#session = { nc, js, jsm, kv };
          // The old connection's subscriptions went with it: replace them, so the map stays one per suffix.
          this.#subs.clear();
          for (const [suffix, handler] of this.#served) this.#subscribe(nc, suffix, handler);
        } else this.#session = { nc, js, jsm, kv };
        // A SUB is only written to the socket: until the server answered a PING sent after it, a request from
        // another connection can find no responders although we say ready. A disconnect rejects the flush (retried).
        await raceAbort(nc.flush(), signal);
        if (isAborted(signal)) return;
        this.#backoffMs = 0;
        this.#setReady(true, reason);
        return;
      } catch (error) {
        this.#noteError(error, false);
        if (nc.isClosed()) return;
        // Connected but not usable (no JetStream, subjects taken by another stream, limits): say why, once.
        if (!reported && !this.#downReported) {
          reported = true;
          this.#downReported = true;
          this.#tell({ connected: false, reason: this.#lastError ?? 'stream not available' });
        }
        await abortableSleep(delay, signal);
        delay = Math.min(delay * 2, 2_000);
      }
    }
  }

  async #ensureStream(jsm: JetStreamManager): Promise<{ created: string }> {
    const config: Partial<StreamConfig> & { name: string; subjects: string[] } = {
      name: this.#o.stream,
      subjects: [`${this.#o.subjectPrefix}.hops.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs: this.#o.maxEvents,
      max_age: this.#o.maxAgeMs * 1_000_000, // nanoseconds
      // Retries of a failed publish reuse its message id within this window (see #failed); short, because the
      // server keeps every id of the window in memory.
      duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
    };
    try {
      const info = await jsm.streams.info(this.#o.stream);
      const c = info.config;
      if (c.max_msgs !== config.max_msgs || c.max_age !== config.max_age || c.duplicate_window !== config.duplicate_window || c.subjects.join() !== config.subjects.join()) {
        return await jsm.streams.update(this.#o.stream, { ...c, ...config });
      }
      return info;
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      try {
        return await jsm.streams.add(config);
      } catch (addError) {
        // Another instance created it between our two calls: that one is ours too.
        if (isAlreadyInUse(addError)) return await jsm.streams.info(this.#o.stream);
        throw addError;
      }
    }
  }

  #setReady(ready: boolean, reason: string): void {
    if (ready) this.#lastError = undefined;
    if (this.#ready === ready) return;
    this.#ready = ready;
    this.#epoch++;
    this.#changed.notify();
    if (!ready && this.#downReported) return;
    this.#downReported = !ready;
    this.#tell({ connected: ready, reason: ready ? reason : (this.#lastError ?? reason) });
    if (ready) this.#schedulePump();
  }

  #noteError(error: unknown, _fatal: boolean): void {
    this.#lastError = redactUrl(error instanceof Error ? error.message : String(error));
  }

  #tell(change: BrokerStatusChange): void {
    try {
      this.#o.onStatus?.(change);
    } catch {
      // A status listener that throws must not break the link.
    }
  }

  async #waitReady(signal: AbortSignal): Promise<Session | undefined> {
    while (!signal.aborted && !this.#closing.signal.aborted) {
      if (this.#ready && this.#session) return this.#session;
      await this.#changed.wait(signal, this.#closing.signal);
    }
    return undefined;
  }

  // ---- publish ------------------------------------------------------------------------------------------

  publish(record: unknown): void {
    if (this.#closed || !this.#ready || !this.#queue.push(record)) {
      this.#dropped++;
      this.#pendingGap++;
      return;
    }
    this.#schedulePump();
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#pumpTimer) return;
    if (this.#backoffMs > 0) {
      // After a failure: what failed is not sent again at once (a marker that keeps failing would spin).
      this.#pumpTimer = setTimeout(() => {
        this.#pumpTimer = undefined;
        this.#pump();
      }, this.#backoffMs);
      return;
    }
    this.#pumpScheduled = true;
    // Off the caller's path: the caller is recording a hop inside a call.
    setImmediate(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /** Fills the window of in-flight publishes (retries first, then a pending gap marker, then the buffer). */
  #pump(): void {
    const session = this.#session;
    if (!session || !this.#ready) return;
    while (this.#inFlight < this.#o.maxInFlight && this.#retry.length > 0) {
      const out = this.#retry.shift();
      if (out) this.#send(session, out);
    }
    if (this.#pendingGap > 0 && this.#inFlight < this.#o.maxInFlight) {
      const n = this.#pendingGap;
      this.#pendingGap = 0;
      this.#send(session, this.#outgoing(JSON.stringify({ gap: n, instance: this.#o.instanceId }), n));
    }
    while (this.#inFlight < this.#o.maxInFlight && this.#queue.length > 0) {
      const record = this.#queue.shift();
      let data: string;
      try {
        data = JSON.stringify(record);
      } catch {
        this.#dropped++;
        this.#pendingGap++;
        continue;
      }
      this.#send(session, this.#outgoing(data, 0));
    }
  }

  #outgoing(data: string, gap: number): Outgoing {
    return { data, gap, msgId: `${this.#msgIdPrefix}${(this.#nextMsg++).toString(36)}`, firstSentAt: Date.now(), attempts: 0 };
  }

  #send(session: Session, out: Outgoing): void {
    this.#inFlight++;
    out.attempts++;
    let h: ReturnType<typeof headers> | undefined;
    if (out.gap > 0) {
      h = headers();
      h.set(GAP_HEADER, String(out.gap));
    }
    void session.js.publish(this.#subject, out.data, { msgID: out.msgId, timeout: 5_000, ...(h ? { headers: h } : {}) }).then(
      () => {
        this.#inFlight--;
        this.#backoffMs = 0;
        if (out.gap === 0) this.#published++;
        this.#afterAck();
      },
      (error: unknown) => {
        this.#inFlight--;
        this.#noteError(error, false);
        this.#backoffMs = Math.min(1_000, Math.max(50, this.#backoffMs * 2));
        this.#failed(out);
        this.#checkStream(session, isNoStream(error));
        this.#afterAck();
      },
    );
  }

  /**
   * After a failed publish on a live connection: is the stream gone (deleted, or the broker lost it)? A 503 says so;
   * a timeout may too (a plain subscriber on the subject keeps the 503 from coming), so that one is asked.
   */
  #checkStream(session: Session, gone: boolean): void {
    if (this.#recovering || this.#probing || this.#closing.signal.aborted || session.nc.isClosed() || this.#session !== session) return;
    if (gone) {
      this.#streamLost(session.nc);
      return;
    }
    this.#probing = true;
    void session.jsm.streams.info(this.#o.stream).then(
      () => {
        this.#probing = false;
      },
      (error: unknown) => {
        this.#probing = false;
        if (isStreamNotFound(error) && this.#session === session) this.#streamLost(session.nc);
      },
    );
  }

  /** The stream is gone under a live connection: not ready until #becomeReady has created it again (followers see a reset). */
  #streamLost(nc: NatsConnection): void {
    if (this.#recovering || this.#closing.signal.aborted || nc.isClosed() || this.#session?.nc !== nc) return;
    this.#recovering = true;
    this.#setReady(false, 'stream lost');
    // In #background while it runs (close waits for it), removed once settled so the list stays bounded.
    const recovering: Promise<void> = this.#becomeReady(nc, 'stream recreated', STREAM_GONE_SETTLE_MS).finally(() => {
      this.#recovering = false;
      const i = this.#background.indexOf(recovering);
      if (i >= 0) void this.#background.splice(i, 1);
    });
    this.#background.push(recovering);
  }

  /**
   * A publish that failed may still have been stored (its ack lost with the connection). It is sent again with
   * the same message id, which the stream's duplicate window turns into a no-op if so: a record is neither
   * stored twice nor counted as dropped when it was not. Past 3 attempts (or the window) it is dropped.
   */
  #failed(out: Outgoing): void {
    if (out.attempts < 3 && Date.now() - out.firstSentAt < DUPLICATE_WINDOW_MS - 5_000 && this.#retry.length < this.#o.maxInFlight) {
      this.#retry.push(out);
      return;
    }
    if (out.gap > 0) this.#pendingGap += out.gap;
    else {
      this.#dropped++;
      this.#pendingGap++;
    }
  }

  #afterAck(): void {
    if (this.#queue.length > 0 || this.#pendingGap > 0 || this.#retry.length > 0) this.#schedulePump();
    else if (this.#inFlight === 0) this.#changed.notify(); // close() waits for the buffer to empty
  }

  // ---- follow -------------------------------------------------------------------------------------------

  bootId(): string | undefined {
    return this.#bootId;
  }

  async streamState(signal: AbortSignal): Promise<{ bootId: string; firstSeq: number; lastSeq: number } | undefined> {
    const session = this.#ready ? this.#session : undefined;
    if (!session || signal.aborted) return undefined;
    try {
      const info = await raceAbort(session.jsm.streams.info(this.#o.stream), signal);
      if (!info) return undefined;
      return { bootId: bootIdOf(info.created), firstSeq: info.state.first_seq, lastSeq: info.state.last_seq };
    } catch (error) {
      this.#noteError(error, false);
      return undefined;
    }
  }

  async follow(afterSeq: number, signal: AbortSignal, handler: FollowHandler): Promise<void> {
    let last = afterSeq;
    let boot: string | undefined;
    let pending: FollowedRecord[] = [];
    let flushScheduled = false;
    const flush = (): void => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      safely(() => {
        handler.onRecords(batch);
      });
    };
    const onMessage = (m: JsMsg): void => {
      if (signal.aborted) return;
      const seq = m.seq;
      if (seq <= last) return; // already delivered (a consumer recreated behind us)
      if (seq > last + 1 && last > 0) {
        flush();
        const lost = seq - last - 1;
        safely(() => {
          handler.onMissed(last, lost, 'retention');
        });
      }
      const gap = m.headers?.get(GAP_HEADER);
      if (gap) {
        flush();
        const n = Number(gap);
        const after = seq - 1;
        last = seq;
        safely(() => {
          handler.onMissed(after, n, 'gap-marker');
        });
        return;
      }
      last = seq;
      let record: unknown;
      try {
        record = m.json();
      } catch {
        flush();
        safely(() => {
          handler.onMissed(seq - 1, 1, 'unreadable');
        });
        return;
      }
      pending.push({ seq, record });
      if (pending.length >= 1000) flush();
      else if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(() => {
          flushScheduled = false;
          flush();
        });
      }
    };

    while (!signal.aborted && !this.#closing.signal.aborted) {
      const session = await this.#waitReady(signal);
      if (!session) break;
      const epoch = this.#epoch;
      let messages: ConsumerMessages | undefined;
      try {
        const info = await session.jsm.streams.info(this.#o.stream);
        const current = bootIdOf(info.created);
        if (boot !== undefined && current !== boot) {
          flush();
          last = 0;
          safely(() => {
            handler.onReset(current);
          });
        }
        boot = current;
        safely(() => {
          handler.onStream?.(current);
        });
        const consumer = await session.js.consumers.get(
          this.#o.stream,
          last === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: last + 1 },
        );
        messages = await consumer.consume({ callback: onMessage, max_messages: 1000 });
        // Run until aborted, the link changed (reconnect: check the stream is the same one), or the consumer lost
        // its stream.
        const lost = new AbortController();
        const watching = watchConsumer(messages, lost);
        while (!isAborted(signal) && !lost.signal.aborted && this.#epoch === epoch && !isAborted(this.#closing.signal)) {
          await this.#changed.wait(signal, this.#closing.signal, lost.signal);
        }
        await stopMessages(messages);
        messages = undefined;
        await watching;
        if (lost.signal.aborted) await abortableSleep(250, signal);
      } catch (error) {
        this.#noteError(error, false);
        if (messages) await stopMessages(messages);
        await abortableSleep(500, signal);
      }
    }
    flush();
  }

  // ---- presence -----------------------------------------------------------------------------------------

  announce(stats: unknown): void {
    const session = this.#ready ? this.#session : undefined;
    if (!session || this.#announcing || this.#withdrawn || this.#closed) return;
    this.#announcing = session.kv.put(this.#token, JSON.stringify({ instance: this.#o.instanceId, stats })).then(
      () => {
        this.#announcing = undefined;
      },
      (error: unknown) => {
        this.#announcing = undefined;
        this.#noteError(error, false);
      },
    );
  }

  instances(): InstancePresence[] {
    const now = Date.now();
    const out: InstancePresence[] = [];
    for (const [key, entry] of this.#presence) {
      const ageMs = Math.max(0, now - entry.at);
      if (ageMs > this.#o.presenceDropMs) {
        this.#presence.delete(key);
        continue;
      }
      out.push({ instance: entry.instance, state: entry.deleted || ageMs > this.#o.presenceGoneMs ? 'gone' : 'up', ageMs, stats: entry.stats });
    }
    return out;
  }

  async withdraw(signal?: AbortSignal): Promise<void> {
    this.#withdrawn = true;
    const bound = signal ?? AbortSignal.timeout(2_000);
    // A put in flight could land after the delete and bring the key back (shown up for presenceGoneMs).
    if (this.#announcing) await raceAbort(this.#announcing, bound);
    const session = this.#ready ? this.#session : undefined;
    if (!session || bound.aborted) return;
    try {
      await raceAbort(session.kv.delete(this.#token), bound);
    } catch (error) {
      this.#noteError(error, false);
    }
  }

  async #watchPresence(): Promise<void> {
    const closing = this.#closing.signal;
    while (!closing.aborted) {
      const session = await this.#waitReady(closing);
      if (!session) return;
      const epoch = this.#epoch;
      let iter: QueuedIterator<KvWatchEntry> | undefined;
      try {
        iter = await session.kv.watch({ key: '>' });
        const it = iter;
        const stopper = (async () => {
          while (this.#epoch === epoch && !closing.aborted) await this.#changed.wait(closing);
          it.stop();
        })();
        for await (const e of it) this.#onPresence(e);
        await stopper;
      } catch (error) {
        this.#noteError(error, false);
        iter?.stop();
        await abortableSleep(500, closing);
      }
    }
  }

  #onPresence(e: KvWatchEntry): void {
    const now = Date.now();
    if (e.operation !== 'PUT') {
      const entry = this.#presence.get(e.key);
      if (entry) entry.deleted = true;
      return;
    }
    let value: { instance?: unknown; stats?: unknown };
    try {
      value = e.json();
    } catch {
      return;
    }
    if (typeof value.instance !== 'string') return;
    // A value from before this watcher started carries its age; a live one is fresh (our clock, no skew).
    const at = e.isUpdate ? now : Math.min(now, e.created.getTime());
    if (!this.#presence.has(e.key) && this.#presence.size >= 10_000) return; // bounded, whatever the bucket holds
    this.#presence.set(e.key, { instance: value.instance, stats: value.stats, at, deleted: false });
  }

  // ---- request/reply ------------------------------------------------------------------------------------

  async serve(subjectSuffix: string, handler: (payload: unknown, signal: AbortSignal) => Promise<unknown>, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.#served.set(subjectSuffix, handler);
    // Serving a suffix again replaces its handler, not adds a second subscription.
    this.#subs.get(subjectSuffix)?.unsubscribe();
    this.#subs.delete(subjectSuffix);
    const session = this.#session;
    if (!session) return; // subscribed, then flushed, when the broker is first ready
    try {
      this.#subscribe(session.nc, subjectSuffix, handler);
    } catch (error) {
      this.#noteError(error, false); // the connection is closed: the next one subscribes at ready
      return;
    }
    // The SUB is only queued on the socket: until the server has it, a request from another connection finds
    // no responders (seen right after a serve on a ready broker). A flush is answered after it. Also while
    // #becomeReady awaits its own flush: that PING may have gone out before this SUB.
    const bound = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    try {
      await raceAbort(session.nc.flush(), bound);
    } catch (error) {
      // The connection lost: served again, with a flush, when the broker is next ready.
      if (!bound.aborted) this.#noteError(error, false);
    }
    signal?.throwIfAborted();
  }

  #subscribe(nc: NatsConnection, suffix: string, handler: (payload: unknown, signal: AbortSignal) => Promise<unknown>): void {
    const subject = `${this.#o.subjectPrefix}.${suffix}.${this.#token}`;
    const sub = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        // The connection may be closed by the time the answer is ready: that answer is lost, nothing else.
        const respond = (answer: { ok: unknown } | { error: string }): void => {
          try {
            msg.respond(JSON.stringify(answer));
          } catch (error) {
            this.#noteError(error, false);
          }
        };
        let payload: unknown;
        try {
          payload = msg.json();
        } catch {
          respond({ error: 'payload is not JSON' });
          return;
        }
        let answer: Promise<unknown>;
        try {
          answer = handler(payload, this.#closing.signal);
        } catch (error) {
          answer = Promise.reject(error instanceof Error ? error : new Error(String(error)));
        }
        void answer.then(
          (result) => {
            respond({ ok: result ?? null });
          },
          (error: unknown) => {
            respond({ error: error instanceof Error ? error.message : String(error) });
          },
        );
      },
    });
    this.#subs.set(suffix, sub);
  }

  async request(instanceId: string, subjectSuffix: string, payload: unknown, signal: AbortSignal, timeoutMs = 2_000): Promise<unknown> {
    const session = this.#ready ? this.#session : undefined;
    if (!session) throw new BrokerUnavailableError(`broker not connected${this.#lastError ? `: ${this.#lastError}` : ''}`);
    signal.throwIfAborted();
    const subject = `${this.#o.subjectPrefix}.${subjectSuffix}.${encodeToken(instanceId)}`;
    let reply;
    try {
      reply = await raceAbort(session.nc.request(subject, JSON.stringify(payload), { timeout: timeoutMs }), signal);
    } catch (error) {
      if (isNoResponders(error)) return NO_RESPONDERS;
      if (signal.aborted) throw signal.reason;
      throw new BrokerUnavailableError(redactUrl(error instanceof Error ? error.message : String(error)), { cause: error });
    }
    if (!reply) throw signal.reason;
    const answer = reply.json<{ ok?: unknown; error?: string }>();
    if (answer.error !== undefined) throw new RemoteHandlerError(answer.error);
    return answer.ok;
  }

  // ---- status and close ---------------------------------------------------------------------------------

  status(): BrokerStatus {
    return {
      connected: this.#ready,
      published: this.#published,
      dropped: this.#dropped,
      buffered: this.#queue.length + this.#retry.length,
      inFlight: this.#inFlight,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  /** Stops taking records, flushes the buffer until `signal` (default 2 s), drains and closes the connection. */
  async close(signal: AbortSignal = AbortSignal.timeout(2_000)): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#withdrawn) await this.withdraw(signal);
    while (!signal.aborted && this.#ready && (this.#queue.length > 0 || this.#retry.length > 0 || this.#inFlight > 0)) {
      this.#schedulePump();
      await this.#changed.wait(signal);
    }
    const lost = this.#queue.length + this.#retry.filter((out) => out.gap === 0).length;
    this.#queue.clear();
    this.#retry = [];
    this.#dropped += lost;
    this.#closing.abort();
    this.#changed.notify();
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = undefined;
    // An AbortSignal.timeout does not keep the process alive: without this, a wait below that nothing else keeps
    // alive would end the process with an unsettled close() instead of ending at the bound.
    const hold = setInterval(() => undefined, 1_000);
    try {
      // The connection in use, or one still trying to become ready (#session is not set then): that one has
      // nothing of ours to drain, and draining it would wait for its pending JetStream requests.
      const session = this.#session;
      const nc = session?.nc ?? this.#nc;
      if (nc && !nc.isClosed()) {
        if (session?.nc === nc) {
          try {
            await raceAbort(nc.drain(), signal);
          } catch {
            // draining failed or timed out: close below
          }
        }
        if (!nc.isClosed()) await nc.close();
      }
      // Bounded too: a loop that does not end in time must not hold the process's shutdown.
      await raceAbort(Promise.allSettled(this.#background), signal);
    } finally {
      clearInterval(hold);
    }
  }
}

/** Read through a call, so the checker does not assume a signal seen unaborted before an await still is. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A handler that throws must not stop the follower.
  }
}

async function stopMessages(messages: ConsumerMessages): Promise<void> {
  try {
    await messages.close();
  } catch {
    // already closed
  }
}

/** Aborts `lost` when the consumer reports its stream or itself gone (followed by a restart and a boot check). */
async function watchConsumer(messages: ConsumerMessages, lost: AbortController): Promise<void> {
  const closed = messages.closed().then(() => {
    lost.abort();
  });
  for await (const s of messages.status()) {
    if (s.type === 'stream_not_found' || s.type === 'consumer_deleted') {
      lost.abort();
      break;
    }
  }
  await closed;
}

/** `promise`'s value, or undefined once `signal` aborts (the promise is left to settle on its own). */
async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return undefined;
  }
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => {
      resolve(undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    promise.catch(() => undefined);
  }
}

function errorChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let e = error;
  while (e && chain.length < 5) {
    chain.push(e);
    e = e instanceof Error ? e.cause : undefined;
  }
  return chain;
}

function isNoResponders(error: unknown): boolean {
  return errorChain(error).some((e) => e instanceof Error && (e.name === 'NoRespondersError' || /no responders/i.test(e.message)));
}

/** A publish that no stream took: the stream is gone (JetStream answers 503 / no responders for its subject). */
function isNoStream(error: unknown): boolean {
  return (
    isNoResponders(error) ||
    isStreamNotFound(error) ||
    errorChain(error).some((e) => e instanceof Error && (e.name === 'JetStreamNotEnabled' || /jetstream is not enabled|\b503\b/i.test(e.message)))
  );
}

function isStreamNotFound(error: unknown): boolean {
  return errorChain(error).some((e) => e instanceof Error && (e.name === 'StreamNotFoundError' || /stream not found/i.test(e.message)));
}

function isAlreadyInUse(error: unknown): boolean {
  return errorChain(error).some((e) => e instanceof Error && /already in use/i.test(e.message));
}

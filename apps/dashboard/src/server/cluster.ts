/**
 * The cluster in the server panel and the lab's rows: short labels for instance ids, the instances table's
 * totals, and what the events link's state means. Pure, so the panel's rules are tested without a browser.
 */
import type { ServerStats } from './use-server-stats';

export type InstanceStats = ServerStats['instances'][number];
export type EventsStatus = ServerStats['events'];

/** Longest short label; longer ids keep their end (a pod's or a host's distinguishing suffix). */
const MAX_LABEL = 8; // fits the lab's 76 px column at 11 px (10 was cut by 2 px, losing the distinguishing end)

/**
 * A short, stable label for an instance id: the part after the last ':' (the pid of the default
 * `host:pid`, or a configured `INSTANCE_ID` whole), its last MAX_LABEL characters when longer. The full id
 * goes in the title: two ids can share a label.
 */
export function instanceLabel(id: string): string {
  const colon = id.lastIndexOf(':');
  const tail = colon >= 0 && colon < id.length - 1 ? id.slice(colon + 1) : id;
  return tail.length > MAX_LABEL ? `…${tail.slice(-(MAX_LABEL - 1))}` : tail;
}

export interface InstanceTotals {
  /** Instances counted (the ones up: a gone instance's last figures are no longer true). */
  up: number;
  gone: number;
  inFlight: number;
  maxInFlight: number;
  queued: number;
  maxQueue: number;
  shed: number;
  poolBusy: number;
  poolMax: number;
  /** The worst instance's event-loop delay (a sum of delays means nothing). */
  eventLoopDelayMs: number;
}

/** The cluster's figures now: sums over the instances that are up (capacity included), the worst delay. */
export function instanceTotals(instances: readonly InstanceStats[]): InstanceTotals {
  const t: InstanceTotals = { up: 0, gone: 0, inFlight: 0, maxInFlight: 0, queued: 0, maxQueue: 0, shed: 0, poolBusy: 0, poolMax: 0, eventLoopDelayMs: 0 };
  for (const i of instances) {
    if (i.state === 'gone') {
      t.gone++;
      continue;
    }
    t.up++;
    t.inFlight += i.inFlight;
    t.maxInFlight += i.maxInFlight;
    t.queued += i.queued;
    t.maxQueue += i.maxQueue;
    t.shed += i.shed;
    t.poolBusy += i.poolBusy;
    t.poolMax += i.poolMax;
    t.eventLoopDelayMs = Math.max(t.eventLoopDelayMs, i.eventLoopDelayMs);
  }
  return t;
}

/** How an instance's state reads in the table: up, or gone and for how long (no report since). */
export function instanceStateText(i: Pick<InstanceStats, 'state' | 'ageMs'>): string {
  if (i.state === 'up') return 'up';
  const s = Math.round(i.ageMs / 1000);
  return s < 60 ? `gone ${s} s` : `gone ${Math.floor(s / 60)} min`;
}

export interface EventsView {
  tone: 'ok' | 'warn';
  text: string;
  /** Longer, for the title. */
  detail: string;
}

/**
 * What the panel says about the events link. In-process (one server, no broker): nothing to say. Through
 * the broker: connected or not, and how many events it could not publish — calls go on either way (events
 * are best effort), so a disconnected broker is a warning, not an error.
 */
export function eventsView(events: EventsStatus): EventsView | null {
  if (events.mode === 'local') return null;
  const dropped = events.dropped > 0 ? ` · ${events.dropped.toLocaleString('en-US')} dropped` : '';
  const detail = `${events.published.toLocaleString('en-US')} events published through the broker, ${events.dropped.toLocaleString('en-US')} dropped (not published: broker away or its buffer full)`;
  if (!events.connected) {
    // Every instance's events reach the dashboard through the broker, this one's too: with it away, none do.
    return { tone: 'warn', text: `Broker disconnected: no new events are shown until it is back${dropped}`, detail: `Calls are still served, but their events are not published meanwhile (counted as dropped) and reach no dashboard; once the broker is back, events flow again and subscribers are told how many they missed. ${detail}` };
  }
  return { tone: dropped ? 'warn' : 'ok', text: `Events: broker connected${dropped}`, detail };
}

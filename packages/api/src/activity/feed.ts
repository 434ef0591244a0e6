import type { ActivityBatch } from './log';

/**
 * What activity.events reads: an ordered, resumable sequence of hops named by `bootId`. One process: its
 * ActivityLog. Several instances: a ClusterFeed filled from the broker, whose sequence numbers are the
 * stream's, so an id from one instance resumes on another.
 */
export interface ActivityFeed {
  /** Names the id space: an id from another bootId cannot be resumed (the reader starts over). */
  readonly bootId: string;
  /** Sequence number of the newest event (0 before the first). */
  readonly lastSeq: number;
  /**
   * True for a feed filled from a stream other instances also read: an instance may be milliseconds behind
   * the one a client just left, so an id ahead of it is waited for (its events are on their way), not
   * refused as a wrong id.
   */
  readonly mayLag?: boolean;
  /**
   * Resolves once the feed knows its id space (a ClusterFeed before the broker first answers does not), or when
   * `signal` aborts. Absent: always bound.
   */
  whenBound?(signal: AbortSignal): Promise<void>;
  /** Events after `after`, oldest first, at most `limit`; `missed` counts those no longer (or never) held. */
  read(after: number, limit?: number): ActivityBatch;
  /** Live batches after `after` until `signal` aborts; `pauseMs` coalesces bursts. */
  follow(after: number, signal: AbortSignal, pauseMs?: number): AsyncGenerator<ActivityBatch & { lastSeq: number }>;
}

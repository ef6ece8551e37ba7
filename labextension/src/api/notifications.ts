/**
 * The caller's notification feed: jobs that ended, deployments someone changed, approvals.
 */
import { jsonBody, query, requestAPI } from './request';

/** One entry of the caller's notification feed (`GET mlops/api/notifications`). */
export interface INotification {
  /** Grows with every notification. */
  id: number;
  user: string;
  /** What happened: `job.failed`, `deployment.changed`, `approval.requested`... */
  kind: string;
  /** How the lab shows it. */
  level: 'info' | 'warning';
  message: string;
  /** A URL path, an http(s) URL, or `mlops:<kind>/<id>` (an object the lab opens itself). */
  link: string | null;
  /** Seconds since the epoch. */
  created: number;
  read: boolean;
}

/** Answer of `GET mlops/api/notifications`. */
export interface INotificationFeed {
  notifications: INotification[];
  /** How many of all the caller's notifications are unread. */
  unread: number;
  /** The id of the caller's newest notification (0: none). */
  last_id: number;
}

/**
 * The notifications after id `since`, or (without it) the newest `limit` ones.
 */
export function getNotifications(
  opts: { since: number } | { limit: number }
): Promise<INotificationFeed> {
  return requestAPI('notifications' + query(opts as Record<string, number>));
}

/** Mark one notification read (it is in the lab's notification center from now on). */
export function markNotificationRead(id: number): Promise<unknown> {
  return requestAPI(`notifications/${id}/read`, jsonBody('POST'));
}

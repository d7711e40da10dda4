import type { Logger } from "pino";
import type { Route } from "../http/server.js";
import { sendJson } from "../http/respond.js";
import { HttpError } from "../http/errors.js";
import type { Store } from "../store/store.js";
import type { MountWriter } from "../store/mount-writer.js";
import { sleep } from "../node/async.js";

/**
 * Routes that exist only when the daemon runs with LITEFS_TEST_HOOKS=1 (the test suite): a gate
 * that holds the completion of local commits, to prove that a commit can wait while the mount
 * keeps serving everything else.
 *
 *   POST /test/commit-gate?state=closed   commits from now on wait (each logs "commit held by the test gate")
 *   POST /test/commit-gate?state=open     releases every held commit; later ones pass at once
 *
 * and a gate that pauses snapshots once they have read their first pages, so a test can commit,
 * checkpoint and vacuum while one is half read:
 *
 *   POST /test/snapshot-gate?state=closed  snapshots from now on pause (each logs "snapshot paused by the test gate")
 *   POST /test/snapshot-gate?state=open    lets every paused snapshot go on; later ones do not pause
 *
 * and a delay between the mount agent letting go of a held write lock (an import's, a HALT
 * lock's) and the node hearing that it did, the moment a waiting writer takes SQLite's lock:
 *
 *   POST /test/release-delay?ms=N          from now on each release-writes answer arrives N ms late
 */
export class TestHooks {
  private releaseDelayMs = 0;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** The node's mount writer, with the release delay set through /test/release-delay. */
  mountWriter(writer: MountWriter): MountWriter {
    return {
      apply: (db, files, opts) => writer.apply(db, files, opts),
      repair: (jobs) => writer.repair(jobs),
      holdWrites: (db) => writer.holdWrites(db),
      releaseWrites: async (db) => {
        await writer.releaseWrites(db);
        if (this.releaseDelayMs === 0) return;
        this.log.info({ db, ms: this.releaseDelayMs }, "write lock let go; the node hears of it late (test hook)");
        await sleep(this.releaseDelayMs);
      },
    };
  }

  routes(): Record<string, Route> {
    return {
      ...gateRoutes(this.store, this.log),
      "POST /test/release-delay": async (req, res, url) => {
        req.resume();
        const ms = Number(url.searchParams.get("ms"));
        if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) throw new HttpError("HTTP_BAD_REQUEST", "ms must be a whole number of milliseconds, 0 to 60000");
        this.releaseDelayMs = ms;
        sendJson(res, 200, { ms });
      },
    };
  }
}

function gateRoutes(store: Store, log: Logger): Record<string, Route> {
  let open: Promise<void> | null = null;
  let release: (() => void) | null = null;
  let removeBarrier: (() => void) | null = null;
  let snapshotsGo: (() => void) | null = null;
  return {
    "POST /test/snapshot-gate": async (req, res, url) => {
      req.resume();
      const state = url.searchParams.get("state");
      if (state === "closed") {
        if (!snapshotsGo) {
          const gate = new Promise<void>((resolve) => (snapshotsGo = resolve));
          store.setSnapshotPause((db, position) => {
            log.info({ db: db.name, txid: position.txid }, "snapshot paused by the test gate");
            return gate;
          });
        }
      } else if (state === "open") {
        store.setSnapshotPause(undefined);
        snapshotsGo?.();
        snapshotsGo = null;
      } else {
        throw new HttpError("HTTP_BAD_REQUEST", "state must be closed or open");
      }
      sendJson(res, 200, { state });
    },
    "POST /test/commit-gate": async (req, res, url) => {
      req.resume();
      const state = url.searchParams.get("state");
      if (state === "closed") {
        if (!open) open = new Promise<void>((resolve) => (release = resolve));
        const gate = open;
        removeBarrier?.();
        removeBarrier = store.addCommitBarrier((ev) => {
          log.info({ db: ev.db.name, txid: ev.position.txid }, "commit held by the test gate");
          return gate;
        });
      } else if (state === "open") {
        removeBarrier?.();
        removeBarrier = null;
        release?.();
        open = null;
        release = null;
      } else {
        throw new HttpError("HTTP_BAD_REQUEST", "state must be closed or open");
      }
      sendJson(res, 200, { state });
    },
  };
}

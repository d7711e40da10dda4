/**
 * The rules for the page numbers of one file (LTX.md, "Pages"), shared by the encoder, which
 * refuses to write a bad sequence, and the decoder, which refuses to read one.
 */
import { lockPgno } from "./checksum.js";
import { LtxError } from "./errors.js";
import { type LtxHeader, isSnapshot } from "./header.js";

export class PageSequence {
  private prev = 0;
  private readonly snapshot: boolean;
  private readonly lock: number;
  /** The last page a snapshot must hold (the lock page is never written, even if last). */
  private readonly lastSnapshotPage: number;

  constructor(
    private readonly header: Pick<LtxHeader, "minTxid" | "commit" | "pageSize">,
    private readonly file?: string,
  ) {
    this.snapshot = isSnapshot(header);
    this.lock = lockPgno(header.pageSize);
    this.lastSnapshotPage = header.commit === this.lock ? header.commit - 1 : header.commit;
  }

  /** The last page number accepted so far (0 before the first). */
  get last(): number {
    return this.prev;
  }

  /** Throws if `pgno` may not come next; otherwise records it. */
  next(pgno: number): void {
    const { commit, pageSize } = this.header;
    if (pgno > commit) {
      throw new LtxError("LTX_PGNO_OVER_COMMIT", `page ${pgno} is beyond the commit (database size) of ${commit} pages`, this.file);
    }
    if (pgno === this.lock) {
      throw new LtxError("LTX_LOCK_PAGE", `page ${pgno} is the lock page for ${pageSize}-byte pages and is never stored`, this.file);
    }
    if (this.snapshot) {
      let expected = this.prev + 1;
      if (expected === this.lock) expected++;
      if (pgno !== expected) {
        throw new LtxError(
          "LTX_SNAPSHOT_RULE",
          `snapshot must hold every page from 1 to ${commit} in order: expected page ${expected}, found ${pgno}`,
          this.file,
        );
      }
    } else if (pgno <= this.prev) {
      throw new LtxError("LTX_PAGE_ORDER", `page numbers must increase: page ${pgno} follows page ${this.prev}`, this.file);
    }
    this.prev = pgno;
  }

  /** Throws if the page block may not end here (a snapshot that stops short of its commit). */
  end(): void {
    if (this.snapshot && this.prev !== this.lastSnapshotPage) {
      throw new LtxError(
        "LTX_SNAPSHOT_RULE",
        `snapshot ends after page ${this.prev}, but its commit is ${this.header.commit}: every page must be present`,
        this.file,
      );
    }
  }
}

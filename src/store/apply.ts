import * as fsp from "node:fs/promises";
import { LtxDecoder, Position, isSnapshot, type LtxEvent, type LtxHeader, type LtxTrailer } from "../ltx/index.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";

/** Writes the pages of an installed LTX file into a database through the mount (the apply agent). */
export interface PageWriter {
  apply(db: Database, ltxPath: string): Promise<void>;
}

export interface ReceivedLtx {
  header: LtxHeader;
  trailer: LtxTrailer;
  /** pgno → page checksum of every page in the file. */
  checksums: Map<number, bigint>;
  tmpPath: string;
}

/**
 * Streams one LTX file from the primary into a temporary file in the database's ltx/ folder,
 * verifying as it goes: the header must fit the current position (or be a snapshot), and the
 * file checksum and post-apply checksum must verify before anything is applied. Never holds the
 * whole file in memory.
 */
export class LtxReceiver {
  private readonly decoder: LtxDecoder;
  private readonly checksums = new Map<number, bigint>();
  private header: LtxHeader | null = null;
  private file: fsp.FileHandle | null = null;
  private events: LtxEvent[] = [];
  readonly tmpPath: string;

  constructor(
    private readonly db: Database,
    name: string,
  ) {
    this.decoder = new LtxDecoder({ name });
    this.tmpPath = db.ltx.tempPath("recv");
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.events.length = 0;
    this.decoder.write(chunk, this.events);
    for (const ev of this.events) {
      if (ev.type === "header") {
        this.header = ev.header;
        checkFitsPosition(this.db, ev.header);
      } else if (ev.type === "page") {
        this.checksums.set(ev.pgno, ev.checksum);
      }
    }
    this.file ??= await fsp.open(this.tmpPath, "w");
    await this.file.write(chunk);
  }

  async finish(): Promise<ReceivedLtx> {
    const summary = this.decoder.end();
    const header = summary.header;
    if (!isSnapshot(header) && header.commit > 0) {
      const expected = this.db.checksums.checksumAfter(this.checksums, header.commit);
      if (expected !== summary.trailer.postApplyChecksum) {
        throw new StoreError(
          "STORE_CHECKSUM_MISMATCH",
          `database ${this.db.name}: TXID ${header.maxTxid} would leave checksum ${expected.toString(16)}, the file says ${summary.trailer.postApplyChecksum.toString(16)}`,
        );
      }
    }
    this.file ??= await fsp.open(this.tmpPath, "w");
    if (!this.db.skipSync) await this.file.sync();
    await this.file.close();
    this.file = null;
    return { header, trailer: summary.trailer, checksums: this.checksums, tmpPath: this.tmpPath };
  }

  async abort(): Promise<void> {
    await this.file?.close().catch(() => undefined);
    this.file = null;
    await fsp.rm(this.tmpPath, { force: true });
  }
}

/** A file applies to a database whose position is (min TXID - 1, pre-apply checksum). */
export function checkFitsPosition(db: Database, header: LtxHeader): void {
  if (isSnapshot(header)) return;
  const pos = db.position;
  // A deletion leaves no pages behind, whatever they were: it fits any earlier position.
  if (header.commit === 0 && header.maxTxid > pos.txid) return;
  if (header.minTxid !== pos.txid + 1 || header.preApplyChecksum !== pos.postApplyChecksum) {
    throw new StoreError(
      "STORE_POSITION_MISMATCH",
      `database ${db.name}: LTX ${header.minTxid}-${header.maxTxid} (pre-apply ${header.preApplyChecksum.toString(16)}) does not follow position ${pos.toString()}`,
    );
  }
}

/**
 * Makes a verified file part of the database: install it under its final name first (so
 * recovery re-applies it if we crash half-way), then write its pages through the mount, then
 * move the position. A snapshot replaces every other LTX file.
 */
export async function applyReceivedLtx(db: Database, received: ReceivedLtx, writer: PageWriter): Promise<void> {
  const { header, trailer } = received;
  checkFitsPosition(db, header);
  const finalPath = db.ltx.install(received.tmpPath, header.minTxid, header.maxTxid);
  const position = new Position(header.maxTxid, trailer.postApplyChecksum);

  if (header.commit === 0) {
    db.dropReplica(position);
  } else {
    if (!db.exists) db.markCreated();
    db.pageSize = header.pageSize;
    await writer.apply(db, finalPath);
    if (isSnapshot(header)) db.checksums.clear();
    db.checksums.apply(received.checksums, header.commit);
    db.setPosition(position);
    if (db.checksums.checksum !== position.postApplyChecksum) {
      throw new StoreError(
        "STORE_CHECKSUM_MISMATCH",
        `database ${db.name}: after applying TXID ${header.maxTxid} the checksum is ${db.checksums.checksum.toString(16)}, expected ${position.postApplyChecksum.toString(16)}`,
      );
    }
  }
  if (isSnapshot(header)) db.ltx.remove(db.ltx.list().filter((f) => f.maxTxid !== header.maxTxid || f.minTxid !== 1));
  db.notifyApplied(finalPath);
}

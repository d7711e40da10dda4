/**
 * The rollback journal (`<db>-journal`) as SQLite's pager.c writes it and plays it back.
 *
 * A journal is one or more segments. Each segment starts with a header padded to the sector size
 * recorded in the first header, followed by `nRec` records of: u32 page number, the page's
 * original content, u32 checksum. Segments start on sector-size boundaries. All integers are
 * big-endian.
 *
 * SQLite writes each header with its magic zeroed and fills in magic and record count only once
 * the records before it are synced (unless synchronous=OFF, where the magic goes down at once with
 * nRec 0xFFFFFFFF). So a header without magic means "nothing to roll back from here on".
 */
import { isValidPageSize, lockPageNumber } from "./db-header.js";
import { SqliteFormatError } from "./errors.js";

/** Reads `length` bytes at `offset` from the file being parsed (fewer at end of file). */
export type ReadAt = (offset: number, length: number) => Uint8Array;

export const JOURNAL_MAGIC: Uint8Array = new Uint8Array([
  0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7,
]);

// Header field offsets (relative to the start of a segment).
export const JOURNAL_RECORD_COUNT_OFFSET = 8; // u32 nRec
export const JOURNAL_NONCE_OFFSET = 12; // u32 checksum initializer
export const JOURNAL_INITIAL_PAGE_COUNT_OFFSET = 16; // u32 database size before the transaction
export const JOURNAL_SECTOR_SIZE_OFFSET = 20; // u32
export const JOURNAL_PAGE_SIZE_OFFSET = 24; // u32
/** Bytes of the header that carry information; the rest of the sector is zero padding. */
export const JOURNAL_HEADER_SIZE = 28;

/** nRec value meaning "records run to the end of the file" (written when not syncing). */
export const JOURNAL_RECORD_COUNT_TO_EOF = 0xffffffff;

/** Per-record overhead: u32 page number before the page, u32 checksum after it. */
export const JOURNAL_RECORD_OVERHEAD = 8;

/** The checksum samples one byte every this many, walking down from the end of the page. */
export const JOURNAL_CHECKSUM_STRIDE = 200;

export const MIN_SECTOR_SIZE = 32;
export const MAX_SECTOR_SIZE = 0x10000;

/**
 * journal_mode=PERSIST commits by overwriting the start of the journal with this many zero bytes
 * (pager.c zeroJournalHdr) instead of deleting or truncating the file.
 */
export const JOURNAL_PERSIST_INVALIDATION_SIZE = 28;

export interface JournalHeader {
  /** Records in this segment; JOURNAL_RECORD_COUNT_TO_EOF means "to end of file". */
  recordCount: number;
  /** Checksum initializer for every record of this segment. */
  nonce: number;
  /** Database size in pages before the transaction: rollback truncates to this. */
  initialPageCount: number;
  sectorSize: number;
  pageSize: number;
}

function hasMagic(buf: Uint8Array, offset = 0): boolean {
  if (buf.length < offset + JOURNAL_MAGIC.length) return false;
  for (let i = 0; i < JOURNAL_MAGIC.length; i++) {
    if (buf[offset + i] !== JOURNAL_MAGIC[i]) return false;
  }
  return true;
}

function u32(buf: Uint8Array, offset: number): number {
  return (
    ((buf[offset] << 24) | (buf[offset + 1] << 16) | (buf[offset + 2] << 8) | buf[offset + 3]) >>> 0
  );
}

function isValidSectorSize(size: number): boolean {
  return size >= MIN_SECTOR_SIZE && size <= MAX_SECTOR_SIZE && (size & (size - 1)) === 0;
}

/**
 * Parses the first header of a journal. Returns null when the magic is missing (the journal was
 * never synced, was invalidated by a commit, or is empty): there is nothing to roll back. Throws
 * JOURNAL_TORN_HEADER when the magic is there but the fields are cut short or out of range, which
 * SQLite treats as a header whose write did not complete.
 */
export function parseJournalHeader(buf: Uint8Array): JournalHeader | null {
  if (!hasMagic(buf)) return null;
  if (buf.length < JOURNAL_HEADER_SIZE) {
    throw new SqliteFormatError(
      "JOURNAL_TORN_HEADER",
      `journal header cut short: ${buf.length} of ${JOURNAL_HEADER_SIZE} bytes`,
    );
  }
  const header: JournalHeader = {
    recordCount: u32(buf, JOURNAL_RECORD_COUNT_OFFSET),
    nonce: u32(buf, JOURNAL_NONCE_OFFSET),
    initialPageCount: u32(buf, JOURNAL_INITIAL_PAGE_COUNT_OFFSET),
    sectorSize: u32(buf, JOURNAL_SECTOR_SIZE_OFFSET),
    pageSize: u32(buf, JOURNAL_PAGE_SIZE_OFFSET),
  };
  // SQLite since 3.5.8 always writes the page size; an invalid one means the write was torn.
  if (!isValidPageSize(header.pageSize) || !isValidSectorSize(header.sectorSize)) {
    throw new SqliteFormatError(
      "JOURNAL_TORN_HEADER",
      `journal header has page size ${header.pageSize}, sector size ${header.sectorSize}`,
    );
  }
  return header;
}

/**
 * True if `buf` starts with a journal header SQLite would play back. A buffer shorter than the
 * header is judged on what it holds (the magic), so the 12-byte write of magic and record count
 * with which pager.c's syncJournal arms a header counts as valid.
 */
export function isJournalHeaderValid(buf: Uint8Array): boolean {
  if (!hasMagic(buf)) return false;
  if (buf.length < JOURNAL_HEADER_SIZE) return true;
  return (
    isValidSectorSize(u32(buf, JOURNAL_SECTOR_SIZE_OFFSET)) &&
    isValidPageSize(u32(buf, JOURNAL_PAGE_SIZE_OFFSET))
  );
}

/**
 * True for the write that commits a journal_mode=PERSIST transaction: 28 zero bytes at offset 0.
 * (A new transaction's header is also written with its magic zeroed, but as a whole sector with a
 * non-zero nonce, so it does not match.)
 */
export function isJournalPersistInvalidation(offset: number, data: Uint8Array): boolean {
  if (offset !== 0 || data.length !== JOURNAL_PERSIST_INVALIDATION_SIZE) return false;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

/** The record checksum exactly as pager.c's pager_cksum computes it. */
export function journalChecksum(nonce: number, page: Uint8Array): number {
  let sum = nonce;
  for (let i = page.length - JOURNAL_CHECKSUM_STRIDE; i > 0; i -= JOURNAL_CHECKSUM_STRIDE) {
    sum += page[i];
  }
  return sum >>> 0;
}

export interface JournalRecord {
  pgno: number;
  /** The page's content before the transaction. */
  data: Uint8Array;
  /** Byte offset of the record in the journal. */
  offset: number;
}

export type JournalStopReason =
  /** No further header with magic: the normal end. */
  | "end-of-journal"
  /** A record extends past the end of the file. */
  | "short-record"
  /** A record's checksum does not match: written after the last sync, or garbage. */
  | "checksum-mismatch"
  /** A record names page 0 or the lock page, which SQLite never journals. */
  | "bad-page-number";

export interface JournalPlaybackEnd {
  reason: JournalStopReason;
  /** Offset of the header or record where reading stopped. */
  offset: number;
  /** The first header, or null when the journal has none with magic (nothing to roll back). */
  header: JournalHeader | null;
}

/**
 * Yields the records a hot-journal rollback restores, in journal order, following pager.c's
 * pager_playback: walk the segments; in each, read `recordCount` records (to end of file when it
 * is 0xFFFFFFFF); skip records for pages beyond the first header's initial page count (the
 * rollback truncates them away); stop everything at the first short record, bad checksum or
 * impossible page number. Write each yielded page at (pgno-1)*pageSize, then truncate the
 * database to `header.initialPageCount` pages (from the generator's return value or
 * parseJournalHeader).
 *
 * `pageSize`, if given, must match the journal's: SQLite plays back with the journal's own page
 * size, so a mismatch means the caller is about to apply pages to the wrong layout.
 */
export function* readJournalRecords(
  read: ReadAt,
  size: number,
  pageSize?: number,
): Generator<JournalRecord, JournalPlaybackEnd, undefined> {
  let first: JournalHeader | null;
  try {
    first = parseJournalHeader(read(0, Math.min(size, JOURNAL_HEADER_SIZE)));
  } catch (err) {
    if (err instanceof SqliteFormatError) first = null;
    else throw err;
  }
  // SQLite needs the whole padded header to be in the file before it trusts it.
  if (first === null || first.sectorSize > size) {
    return { reason: "end-of-journal", offset: 0, header: null };
  }
  if (pageSize !== undefined && pageSize !== first.pageSize) {
    throw new SqliteFormatError(
      "JOURNAL_PAGE_SIZE_MISMATCH",
      `journal page size ${first.pageSize} differs from database page size ${pageSize}`,
    );
  }
  const { sectorSize, initialPageCount } = first;
  const recordSize = first.pageSize + JOURNAL_RECORD_OVERHEAD;
  const lockPage = lockPageNumber(first.pageSize);

  let headerOffset = 0;
  let header: JournalHeader | null = first;
  for (;;) {
    let offset = headerOffset + sectorSize;
    let count = header.recordCount;
    if (count === JOURNAL_RECORD_COUNT_TO_EOF) {
      count = Math.floor((size - offset) / recordSize);
    }
    for (let i = 0; i < count; i++) {
      if (offset + recordSize > size) {
        return { reason: "short-record", offset, header: first };
      }
      const record = read(offset, recordSize);
      const pgno = u32(record, 0);
      if (pgno === 0 || pgno === lockPage) {
        return { reason: "bad-page-number", offset, header: first };
      }
      // Pages the transaction added are cut off by the truncation, so SQLite skips them without
      // checking their checksum.
      if (pgno <= initialPageCount) {
        const data = record.subarray(4, 4 + first.pageSize);
        const checksum = u32(record, 4 + first.pageSize);
        if (journalChecksum(header.nonce, data) !== checksum) {
          return { reason: "checksum-mismatch", offset, header: first };
        }
        yield { pgno, data: Uint8Array.from(data), offset };
      }
      offset += recordSize;
    }

    // The next segment starts at the next sector boundary and must fit completely.
    headerOffset = Math.ceil(offset / sectorSize) * sectorSize;
    if (headerOffset + sectorSize > size) {
      return { reason: "end-of-journal", offset: headerOffset, header: first };
    }
    const buf = read(headerOffset, JOURNAL_HEADER_SIZE);
    if (!hasMagic(buf)) {
      return { reason: "end-of-journal", offset: headerOffset, header: first };
    }
    // Later headers repeat page and sector size; SQLite reads only count, nonce and size from them.
    header = {
      recordCount: u32(buf, JOURNAL_RECORD_COUNT_OFFSET),
      nonce: u32(buf, JOURNAL_NONCE_OFFSET),
      initialPageCount: u32(buf, JOURNAL_INITIAL_PAGE_COUNT_OFFSET),
      sectorSize,
      pageSize: first.pageSize,
    };
  }
}

/**
 * The 100-byte header at the start of every SQLite database file (sqlite.org/fileformat2.html,
 * "The Database Header"), and the lock bytes SQLite places on the database file. All integers in
 * the header are big-endian.
 */
import { SqliteFormatError } from "./errors.js";

export const DB_HEADER_SIZE = 100;

/** "SQLite format 3" followed by a NUL. */
export const DB_MAGIC: Uint8Array = new Uint8Array([
  0x53, 0x51, 0x4c, 0x69, 0x74, 0x65, 0x20, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x20, 0x33, 0x00,
]);

// Field offsets.
export const DB_PAGE_SIZE_OFFSET = 16; // u16; 1 means 65536
export const DB_WRITE_VERSION_OFFSET = 18; // u8; 1 legacy (rollback journal), 2 WAL
export const DB_READ_VERSION_OFFSET = 19; // u8; same values
export const DB_RESERVED_SPACE_OFFSET = 20; // u8; bytes unused at the end of each page
export const DB_MAX_PAYLOAD_FRACTION_OFFSET = 21; // u8; always 64
export const DB_MIN_PAYLOAD_FRACTION_OFFSET = 22; // u8; always 32
export const DB_LEAF_PAYLOAD_FRACTION_OFFSET = 23; // u8; always 32
export const DB_CHANGE_COUNTER_OFFSET = 24; // u32
export const DB_PAGE_COUNT_OFFSET = 28; // u32; "in-header database size"
export const DB_FREELIST_TRUNK_OFFSET = 32; // u32
export const DB_FREELIST_COUNT_OFFSET = 36; // u32
export const DB_SCHEMA_COOKIE_OFFSET = 40; // u32
export const DB_SCHEMA_FORMAT_OFFSET = 44; // u32; 1..4
export const DB_DEFAULT_CACHE_SIZE_OFFSET = 48; // u32
export const DB_LARGEST_ROOT_PAGE_OFFSET = 52; // u32; non-zero in auto-vacuum mode
export const DB_TEXT_ENCODING_OFFSET = 56; // u32; 1 UTF-8, 2 UTF-16le, 3 UTF-16be
export const DB_USER_VERSION_OFFSET = 60; // u32
export const DB_INCREMENTAL_VACUUM_OFFSET = 64; // u32
export const DB_APPLICATION_ID_OFFSET = 68; // u32
export const DB_VERSION_VALID_FOR_OFFSET = 92; // u32; change counter when 96 was written
export const DB_SQLITE_VERSION_OFFSET = 96; // u32; SQLITE_VERSION_NUMBER of the last writer

/** Values of the read/write version bytes. */
export const DB_VERSION_LEGACY = 1;
export const DB_VERSION_WAL = 2;

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

// Lock bytes on the database file (os_unix.c). They live in the page that holds byte
// PENDING_BYTE, which SQLite therefore never uses for data (see lockPageNumber).
export const PENDING_BYTE = 0x40000000;
export const RESERVED_BYTE = 0x40000001;
export const SHARED_FIRST = 0x40000002;
export const SHARED_SIZE = 510;

export interface DatabaseHeader {
  pageSize: number;
  writeVersion: number;
  readVersion: number;
  /** True when both version bytes say WAL: SQLite will open the database in WAL mode. */
  isWal: boolean;
  reservedSpace: number;
  changeCounter: number;
  /** The in-header page count; trust it only when `pageCountValid`. */
  pageCount: number;
  /**
   * SQLite trusts the in-header size only when it is non-zero and the header was last written
   * by a version that maintains it (version-valid-for equals the change counter).
   */
  pageCountValid: boolean;
  freelistTrunk: number;
  freelistCount: number;
  schemaCookie: number;
  schemaFormat: number;
  defaultCacheSize: number;
  largestRootPage: number;
  textEncoding: number;
  userVersion: number;
  incrementalVacuum: number;
  applicationId: number;
  versionValidFor: number;
  sqliteVersion: number;
}

/** True if `buf` starts with the SQLite magic string. */
export function isDatabaseHeader(buf: Uint8Array): boolean {
  if (buf.length < DB_MAGIC.length) return false;
  for (let i = 0; i < DB_MAGIC.length; i++) {
    if (buf[i] !== DB_MAGIC[i]) return false;
  }
  return true;
}

/** Decodes the page size field (u16, where 1 stands for 65536) and checks it is one SQLite uses. */
export function pageSizeFromHeader(buf: Uint8Array): number {
  if (!isDatabaseHeader(buf) || buf.length < DB_PAGE_SIZE_OFFSET + 2) {
    throw new SqliteFormatError("SQLITE_NOT_A_DATABASE", "not an SQLite database header");
  }
  const raw = (buf[DB_PAGE_SIZE_OFFSET] << 8) | buf[DB_PAGE_SIZE_OFFSET + 1];
  const pageSize = raw === 1 ? MAX_PAGE_SIZE : raw;
  if (!isValidPageSize(pageSize)) {
    throw new SqliteFormatError("SQLITE_BAD_PAGE_SIZE", `invalid database page size ${raw}`);
  }
  return pageSize;
}

/** Parses the 100-byte header; throws SqliteFormatError for anything that is not SQLite's. */
export function parseDatabaseHeader(buf: Uint8Array): DatabaseHeader {
  if (buf.length < DB_HEADER_SIZE || !isDatabaseHeader(buf)) {
    throw new SqliteFormatError(
      "SQLITE_NOT_A_DATABASE",
      buf.length < DB_HEADER_SIZE
        ? `database header too short: ${buf.length} bytes`
        : "missing SQLite magic: not an SQLite database",
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, DB_HEADER_SIZE);
  const u32 = (offset: number): number => view.getUint32(offset, false);
  const writeVersion = buf[DB_WRITE_VERSION_OFFSET];
  const readVersion = buf[DB_READ_VERSION_OFFSET];
  const changeCounter = u32(DB_CHANGE_COUNTER_OFFSET);
  const pageCount = u32(DB_PAGE_COUNT_OFFSET);
  const versionValidFor = u32(DB_VERSION_VALID_FOR_OFFSET);
  return {
    pageSize: pageSizeFromHeader(buf),
    writeVersion,
    readVersion,
    isWal: writeVersion === DB_VERSION_WAL && readVersion === DB_VERSION_WAL,
    reservedSpace: buf[DB_RESERVED_SPACE_OFFSET],
    changeCounter,
    pageCount,
    pageCountValid: pageCount !== 0 && versionValidFor === changeCounter,
    freelistTrunk: u32(DB_FREELIST_TRUNK_OFFSET),
    freelistCount: u32(DB_FREELIST_COUNT_OFFSET),
    schemaCookie: u32(DB_SCHEMA_COOKIE_OFFSET),
    schemaFormat: u32(DB_SCHEMA_FORMAT_OFFSET),
    defaultCacheSize: u32(DB_DEFAULT_CACHE_SIZE_OFFSET),
    largestRootPage: u32(DB_LARGEST_ROOT_PAGE_OFFSET),
    textEncoding: u32(DB_TEXT_ENCODING_OFFSET),
    userVersion: u32(DB_USER_VERSION_OFFSET),
    incrementalVacuum: u32(DB_INCREMENTAL_VACUUM_OFFSET),
    applicationId: u32(DB_APPLICATION_ID_OFFSET),
    versionValidFor,
    sqliteVersion: u32(DB_SQLITE_VERSION_OFFSET),
  };
}

/** A power of two between 512 and 65536, the only page sizes SQLite writes. */
export function isValidPageSize(pageSize: number): boolean {
  return (
    Number.isInteger(pageSize) &&
    pageSize >= MIN_PAGE_SIZE &&
    pageSize <= MAX_PAGE_SIZE &&
    (pageSize & (pageSize - 1)) === 0
  );
}

/**
 * The page that contains PENDING_BYTE (1-based). SQLite never stores data in it, so it never
 * appears in a journal, a WAL or an LTX file, even in databases larger than 1 GiB.
 */
export function lockPageNumber(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}

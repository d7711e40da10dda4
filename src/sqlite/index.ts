/** SQLite file-format knowledge: pure functions over bytes, no I/O. */
export * from "./db-header.js";
export * from "./errors.js";
export * from "./journal.js";
export * from "./shm.js";
export * from "./wal.js";

/** Continuous backups and point-in-time restore (docs/backup.md). The daemon and the CLI import from here. */
export { BackupError, type BackupErrorCode } from "./errors.js";
export { SNAPSHOT_LEVEL, objectPath, parseObjectPath, type BackupFile } from "./layout.js";
export type { BackupTarget, ObjectRef } from "./target.js";
export { FileTarget } from "./file-target.js";
export { openTarget } from "./open-target.js";
export { restoreDatabase, txidAt, type RestoreOptions, type RestoreResult } from "./restore.js";
export { dataDirIsEmpty, restoreIfEmpty } from "./restore-if-empty.js";
export { Shipper, type DatabaseBackupStatus, type ShipperOptions } from "./shipper.js";

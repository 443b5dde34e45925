/**
 * The hash-chained audit log's public surface. The pieces live in one file each:
 * line.ts (line format and hashing), writer.ts (file and memory sinks, rotation),
 * verify.ts (`turret audit verify`), tail.ts (`turret audit tail`).
 */

export { formatChainLine, GENESIS_PREV, parseChainLine, type FormattedLine, type ParsedLine } from './line.js';
export { DEFAULT_AUDIT_MAX_BYTES, DEFAULT_AUDIT_MAX_FILES, memorySink, openAuditLog, type AuditLog, type AuditLogOptions, type AuditSink, type MemorySink } from './writer.js';
export { verifyAuditFiles, type VerifyProblemKind, type VerifyResult } from './verify.js';
export { tailAudit, type TailOptions } from './tail.js';

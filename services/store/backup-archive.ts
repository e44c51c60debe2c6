/**
 * The backup format, `veritrail-backup/1`: every key and value of one LevelDB snapshot of a
 * log, as frames, in data files of at most {@link CHUNK_BYTES}, with a manifest.
 *
 *   manifest.json       format, log, what the copy holds (head seq, last sealed and last
 *                       anchored batch, lost ranges), how it was taken (ingest pause), and the
 *                       SHA-256 and size of every other file
 *   ledger-000001.kv    frames: u32 key length, key (UTF-8), u32 value length, value (big-endian)
 *   ledger-000002.kv    …
 *   VERITRAIL-BODY-KEYS the keys the event bodies are sealed under (store/body-keys.ts), as
 *                       they were at the snapshot
 *   deployment.json     the dev registry's address, when the data directory has one
 *
 * Either as a directory of these files or as one tar archive (gzip-compressed when its name
 * ends in .gz or .tgz), the manifest last. Files are written as `*.partial` and renamed when
 * complete, so an interrupted backup never looks like a finished one; they are 0600 and
 * directories 0700 like everything under DATA_DIR. Restoring verifies every file against the
 * manifest before it writes anything.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import type { AbstractIterator } from "abstract-level";
import { ClassicLevel } from "classic-level";
import tar from "tar-stream";
import { BODY_KEYS_FILE } from "./body-keys.ts";
import { K, parseSeqPart } from "./keys.ts";
import type { RestoreMarker } from "./restore-records.ts";

export const BACKUP_FORMAT = "veritrail-backup/1";
export const MANIFEST_FILE = "manifest.json";
export const DEPLOYMENT_FILE = "deployment.json";
/** Data files are cut between frames once they reach this size. */
export const CHUNK_BYTES = 64 * 1024 * 1024;
const END_OF_FRAMES = 0xffffffff;

/** What the manifest says about a batch (from its record in the copy). */
export interface ManifestBatch {
  batchNo: number;
  firstSeq: number;
  count: number;
  state: string;
  anchor?: { chainId: number; contract: string; txHash: string; blockNumber: number };
}

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  createdAt: string;
  logId: string;
  /** "service": a running service took the snapshot; "offline": the CLI opened the ledger. */
  source: "service" | "offline";
  /** How long the service held back acknowledgements to seal and snapshot (ms). */
  ingestPausedMs: number;
  /** How long the whole backup took (ms). */
  durationMs: number;
  /** Events [0, headSeq) are in the copy (with lost ranges, minus those). */
  headSeq: number;
  lastSealedBatch: ManifestBatch | null;
  lastAnchoredBatch: ManifestBatch | null;
  /** Lost ranges the source ledger had recorded (a copy of a copy keeps them). */
  lostRanges: Array<{ fromBatchNo: number; batches: number; firstSeq: number; count: number }>;
  records: number;
  /** Key and value bytes in the data files (frame headers excluded). */
  bytes: number;
  files: Array<{ name: string; bytes: number; sha256: string; records?: number }>;
}

// ---- frames ------------------------------------------------------------------------------------

function frameOf(key: string, value: Buffer): Buffer {
  const keyBytes = Buffer.from(key, "utf8");
  const out = Buffer.allocUnsafe(8 + keyBytes.length + value.length);
  out.writeUInt32BE(keyBytes.length, 0);
  keyBytes.copy(out, 4);
  out.writeUInt32BE(value.length, 4 + keyBytes.length);
  value.copy(out, 8 + keyBytes.length);
  return out;
}

/** The frame stream's end marker (the control socket sends a trailer after it). */
export const END_MARKER = (() => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(END_OF_FRAMES, 0);
  return b;
})();

/**
 * Every key and value an iterator over a snapshot yields, in key order, as pages of frames (one
 * Buffer per page of the iterator): LevelDB reads the snapshot while writes go on around it.
 */
export async function* snapshotFrames(
  iterator: AbstractIterator<unknown, string, Buffer>,
): AsyncGenerator<Buffer> {
  try {
    for (;;) {
      const page = await iterator.nextv(1_000);
      if (page.length === 0) return;
      yield Buffer.concat(page.map(([k, v]) => frameOf(k, v)));
    }
  } finally {
    await iterator.close();
  }
}

export interface Frame {
  key: string;
  value: Buffer;
  /** The frame's own bytes. */
  raw: Buffer;
}

/** Cuts a byte stream into frames; chunks may split frames anywhere. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  ended = false;

  /** The complete frames in `chunk` (plus what was pending); stops at the end marker. */
  push(chunk: Buffer): Frame[] {
    if (this.ended) throw new Error("data after the end of the frames");
    const buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    let at = 0;
    while (at + 4 <= buf.length) {
      const keyLength = buf.readUInt32BE(at);
      if (keyLength === END_OF_FRAMES) {
        this.ended = true;
        at += 4;
        break;
      }
      if (at + 8 + keyLength > buf.length) break;
      const valueLength = buf.readUInt32BE(at + 4 + keyLength);
      const end = at + 8 + keyLength + valueLength;
      if (end > buf.length) break;
      frames.push({
        key: buf.toString("utf8", at + 4, at + 4 + keyLength),
        value: buf.subarray(at + 8 + keyLength, end),
        raw: buf.subarray(at, end),
      });
      at = end;
    }
    this.pending = buf.subarray(at);
    return frames;
  }

  /** What followed the end marker (the control socket's trailer). */
  get rest(): Buffer {
    return this.pending;
  }

  /** Throws unless the stream ended on a frame boundary. */
  finish(): void {
    if (this.pending.length > 0 && !this.ended)
      throw new Error(`the frame stream ends inside a frame (${this.pending.length} bytes left)`);
  }
}

// ---- what the copy holds ------------------------------------------------------------------------

interface BatchRecordJson {
  header?: { batchNo?: number; firstSeq?: number; count?: number };
  state?: string;
  anchor?: { chainId: number; contract: string; txHash: string; blockNumber: number };
}

/** Reads the summary of a copy off its frames as they pass (keys are in order). */
export class CopySummary {
  logId: string | undefined;
  headSeq = 0;
  lastSealedBatch: ManifestBatch | null = null;
  lastAnchoredBatch: ManifestBatch | null = null;
  lostRanges: BackupManifest["lostRanges"] = [];
  records = 0;
  bytes = 0;
  restoreMarker = false;

  observe(key: string, value: Buffer): void {
    this.records++;
    this.bytes += Buffer.byteLength(key) + value.length;
    const prefix = key.slice(0, 2);
    if (prefix === K.entryPrefix) {
      this.headSeq = Math.max(this.headSeq, parseSeqPart(key.slice(2)) + 1);
    } else if (prefix === K.batchPrefix) {
      const r = JSON.parse(value.toString("utf8")) as BatchRecordJson;
      const h = r.header ?? {};
      const batch: ManifestBatch = {
        batchNo: h.batchNo ?? -1,
        firstSeq: h.firstSeq ?? -1,
        count: h.count ?? 0,
        state: r.state ?? "?",
        ...(r.state === "anchored" && r.anchor
          ? {
              anchor: {
                chainId: r.anchor.chainId,
                contract: r.anchor.contract,
                txHash: r.anchor.txHash,
                blockNumber: r.anchor.blockNumber,
              },
            }
          : {}),
      };
      this.lastSealedBatch = batch;
      if (batch.anchor) this.lastAnchoredBatch = batch;
    } else if (prefix === K.lostRangePrefix) {
      const r = JSON.parse(value.toString("utf8")) as BackupManifest["lostRanges"][number];
      this.lostRanges.push({
        fromBatchNo: r.fromBatchNo,
        batches: r.batches,
        firstSeq: r.firstSeq,
        count: r.count,
      });
      this.headSeq = Math.max(this.headSeq, r.firstSeq + r.count);
    } else if (key === K.logMeta) {
      this.logId = (JSON.parse(value.toString("utf8")) as { logId: string }).logId;
    } else if (key === K.restoreMarker) {
      this.restoreMarker = true;
    }
  }
}

// ---- writing ----------------------------------------------------------------------------------

interface Sink {
  add(name: string, data: Buffer): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

async function fsyncPath(p: string): Promise<void> {
  const handle = await open(p, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function directorySink(finalDir: string): Sink {
  const partial = `${finalDir}.partial`;
  let made: Promise<void> | undefined;
  return {
    async add(name, data) {
      made ??= mkdir(partial, { mode: 0o700 }).then(() => undefined);
      await made;
      const handle = await open(path.join(partial, name), "wx", 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
    async finish() {
      await fsyncPath(partial);
      await rename(partial, finalDir);
      await fsyncPath(path.dirname(finalDir));
    },
    async abort() {
      await rm(partial, { recursive: true, force: true });
    },
  };
}

function tarSink(file: string): Sink {
  const partial = `${file}.partial`;
  const pack = tar.pack();
  const out = createWriteStream(partial, { mode: 0o600, flags: "wx" });
  const gzip = /\.(t?gz)$/i.test(file);
  const done = gzip ? pipeline(pack, createGzip({ level: 6 }), out) : pipeline(pack, out);
  done.catch(() => undefined);
  return {
    add(name, data) {
      return new Promise<void>((resolve, reject) => {
        pack.entry({ name, size: data.length, mode: 0o600, mtime: new Date() }, data, (err) =>
          err ? reject(err) : resolve(),
        );
      });
    },
    async finish() {
      pack.finalize();
      await done;
      await fsyncPath(partial);
      await rename(partial, file);
      await fsyncPath(path.dirname(file));
    },
    async abort() {
      pack.destroy();
      await done.catch(() => undefined);
      await rm(partial, { force: true });
    },
  };
}

/**
 * Where `--out` puts the backup: into an existing directory (or a path ending in a separator)
 * as a new directory named after the log and the time; anywhere else as one archive file.
 */
export async function backupTarget(
  out: string,
  logId: string,
  now = new Date(),
): Promise<{ kind: "directory" | "archive"; path: string }> {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}Z$/, "Z");
  const name = `veritrail-${logId.slice(2, 10)}-${stamp}`;
  const isDir =
    out.endsWith(path.sep) ||
    out.endsWith("/") ||
    (await stat(out).then(
      (s) => s.isDirectory(),
      () => false,
    ));
  if (isDir) {
    await mkdir(out, { recursive: true, mode: 0o700 });
    return { kind: "directory", path: path.join(out, name) };
  }
  if (
    await stat(out).then(
      () => true,
      () => false,
    )
  )
    throw new Error(`${out} exists: a backup never overwrites a file`);
  return { kind: "archive", path: out };
}

export interface BackupSource {
  /** Frame bytes, in key order, possibly split anywhere; ends at the end marker or its end. */
  bytes: AsyncIterable<Buffer>;
  source: BackupManifest["source"];
  ingestPausedMs: number;
  /** The data directory's deployment.json, if any. */
  deployment?: Buffer;
  /** The body-key file taken with the snapshot (bodies do not open without it). */
  bodyKeys: Buffer;
  startedAt: number;
  /** The stream must end with the end marker (a stream over a socket could be cut short). */
  expectEndMarker?: boolean;
}

/**
 * Writes a backup from a frame stream to `target`; returns its manifest. The manifest's
 * summary is read off the frames, so it describes exactly what was written.
 */
export async function writeBackup(
  target: { kind: "directory" | "archive"; path: string },
  from: BackupSource,
  onProgress?: (records: number, bytes: number) => void,
): Promise<BackupManifest> {
  const sink = target.kind === "directory" ? directorySink(target.path) : tarSink(target.path);
  try {
    const decoder = new FrameDecoder();
    const summary = new CopySummary();
    const files: BackupManifest["files"] = [];
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    let chunkRecords = 0;
    const flush = async () => {
      if (chunkBytes === 0) return;
      const data = Buffer.concat(chunk, chunkBytes);
      const name = `ledger-${String(files.length + 1).padStart(6, "0")}.kv`;
      files.push({ name, bytes: data.length, sha256: sha256Hex(data), records: chunkRecords });
      await sink.add(name, data);
      chunk = [];
      chunkBytes = 0;
      chunkRecords = 0;
    };
    let lastKey: string | undefined;
    for await (const bytes of from.bytes) {
      for (const frame of decoder.push(bytes)) {
        if (lastKey !== undefined && frame.key <= lastKey)
          throw new Error(`keys out of order in the snapshot stream at ${frame.key}`);
        lastKey = frame.key;
        summary.observe(frame.key, frame.value);
        chunk.push(frame.raw);
        chunkBytes += frame.raw.length;
        chunkRecords++;
        if (chunkBytes >= CHUNK_BYTES) await flush();
      }
      onProgress?.(summary.records, summary.bytes);
      if (decoder.ended) break;
    }
    decoder.finish();
    if (from.expectEndMarker && !decoder.ended)
      throw new Error("the snapshot stream ended before its end marker: the copy is incomplete");
    await flush();
    if (!summary.logId) throw new Error("the snapshot holds no log (no m:log record)");
    files.push({
      name: BODY_KEYS_FILE,
      bytes: from.bodyKeys.length,
      sha256: sha256Hex(from.bodyKeys),
    });
    await sink.add(BODY_KEYS_FILE, from.bodyKeys);
    if (from.deployment) {
      files.push({
        name: DEPLOYMENT_FILE,
        bytes: from.deployment.length,
        sha256: sha256Hex(from.deployment),
      });
      await sink.add(DEPLOYMENT_FILE, from.deployment);
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      createdAt: new Date(from.startedAt).toISOString(),
      logId: summary.logId,
      source: from.source,
      ingestPausedMs: Math.round(from.ingestPausedMs),
      durationMs: Date.now() - from.startedAt,
      headSeq: summary.headSeq,
      lastSealedBatch: summary.lastSealedBatch,
      lastAnchoredBatch: summary.lastAnchoredBatch,
      lostRanges: summary.lostRanges,
      records: summary.records,
      bytes: summary.bytes,
      files,
    };
    await sink.add(MANIFEST_FILE, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    await sink.finish();
    return manifest;
  } catch (error) {
    await sink.abort();
    throw error;
  }
}

// ---- reading ----------------------------------------------------------------------------------

/** One file of a backup, as read. */
interface Member {
  name: string;
  data: Buffer;
}

async function* directoryMembers(dir: string): AsyncGenerator<Member> {
  const manifest = await readFile(path.join(dir, MANIFEST_FILE));
  const parsed = JSON.parse(manifest.toString("utf8")) as BackupManifest;
  for (const f of parsed.files ?? []) {
    if (f.name !== path.basename(f.name)) throw new Error(`bad file name in manifest: ${f.name}`);
    yield { name: f.name, data: await readFile(path.join(dir, f.name)) };
  }
  yield { name: MANIFEST_FILE, data: manifest };
}

async function* archiveMembers(file: string): AsyncGenerator<Member> {
  const head = Buffer.alloc(2);
  const handle = await open(file, "r");
  try {
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  const extract = tar.extract();
  const input = createReadStream(file);
  const feeding =
    head[0] === 0x1f && head[1] === 0x8b
      ? pipeline(input, createGunzip(), extract)
      : pipeline(input, extract);
  feeding.catch(() => undefined);
  for await (const entry of extract) {
    const parts: Buffer[] = [];
    for await (const part of entry) parts.push(part as Buffer);
    yield { name: entry.header.name, data: Buffer.concat(parts) };
  }
  await feeding;
}

function membersOf(source: string, kind: "directory" | "archive"): AsyncGenerator<Member> {
  return kind === "directory" ? directoryMembers(source) : archiveMembers(source);
}

export interface VerifiedBackup {
  kind: "directory" | "archive";
  path: string;
  manifest: BackupManifest;
  /** SHA-256 of manifest.json as stored (it names the backup in lost-range records). */
  manifestSha256: string;
  deployment?: Buffer;
  bodyKeys?: Buffer;
}

/**
 * Reads a backup once and checks it whole: the manifest's format, every listed file present
 * with its size and SHA-256, no other file, the frames well-formed and in key order, their
 * count and the log they hold as the manifest says.
 */
export async function verifyBackup(source: string): Promise<VerifiedBackup> {
  const kind = (await stat(source)).isDirectory() ? "directory" : "archive";
  const seen = new Map<string, { bytes: number; sha256: string }>();
  let manifestRaw: Buffer | undefined;
  let deployment: Buffer | undefined;
  let bodyKeys: Buffer | undefined;
  const summary = new CopySummary();
  let lastKey: string | undefined;
  for await (const m of membersOf(source, kind)) {
    if (m.name === MANIFEST_FILE) {
      manifestRaw = m.data;
      continue;
    }
    if (seen.has(m.name)) throw new Error(`${m.name} appears twice`);
    seen.set(m.name, { bytes: m.data.length, sha256: sha256Hex(m.data) });
    if (m.name === DEPLOYMENT_FILE) deployment = m.data;
    else if (m.name === BODY_KEYS_FILE) bodyKeys = m.data;
    else if (/^ledger-\d{6}\.kv$/.test(m.name)) {
      const decoder = new FrameDecoder();
      for (const f of decoder.push(m.data)) {
        if (lastKey !== undefined && f.key <= lastKey)
          throw new Error(`${m.name}: keys out of order at ${f.key}`);
        lastKey = f.key;
        summary.observe(f.key, f.value);
      }
      decoder.finish();
    } else throw new Error(`unexpected file in the backup: ${m.name}`);
  }
  if (!manifestRaw) throw new Error(`no ${MANIFEST_FILE} in ${source}`);
  const manifest = JSON.parse(manifestRaw.toString("utf8")) as BackupManifest;
  if (manifest.format !== BACKUP_FORMAT)
    throw new Error(`not a ${BACKUP_FORMAT} backup (format ${String(manifest.format)})`);
  for (const f of manifest.files) {
    const got = seen.get(f.name);
    if (!got) throw new Error(`${f.name} is listed in the manifest but missing`);
    if (got.bytes !== f.bytes || got.sha256 !== f.sha256)
      throw new Error(
        `${f.name} does not match the manifest (SHA-256 ${got.sha256}, expected ${f.sha256})`,
      );
    seen.delete(f.name);
  }
  if (seen.size > 0) throw new Error(`files not in the manifest: ${[...seen.keys()].join(", ")}`);
  if (summary.records !== manifest.records)
    throw new Error(
      `the data files hold ${summary.records} records, the manifest says ${manifest.records}`,
    );
  if (summary.logId !== manifest.logId)
    throw new Error(
      `the data files hold log ${summary.logId ?? "(none)"}, the manifest says ${manifest.logId}`,
    );
  if (summary.headSeq !== manifest.headSeq)
    throw new Error(
      `the data files end at seq ${summary.headSeq}, the manifest says ${manifest.headSeq}`,
    );
  return {
    kind,
    path: source,
    manifest,
    manifestSha256: sha256Hex(manifestRaw),
    ...(deployment ? { deployment } : {}),
    ...(bodyKeys ? { bodyKeys } : {}),
  };
}

/** The key-value records of a verified backup, in key order, a data file at a time. */
export async function* backupRecords(
  backup: VerifiedBackup,
): AsyncGenerator<Array<[string, Buffer]>> {
  const expected = new Map(backup.manifest.files.map((f) => [f.name, f.sha256]));
  for await (const m of membersOf(backup.path, backup.kind)) {
    if (!/^ledger-\d{6}\.kv$/.test(m.name)) continue;
    // Read a second time: check again what is about to be written.
    if (sha256Hex(m.data) !== expected.get(m.name))
      throw new Error(`${m.name} changed since it was verified`);
    const decoder = new FrameDecoder();
    const frames = decoder.push(m.data);
    decoder.finish();
    yield frames.map((f) => [f.key, f.value]);
  }
}

/** Records written to the new LevelDB per (unsynced) batch; the marker's write syncs them all. */
const RESTORE_BATCH_RECORDS = 4_096;

/**
 * Writes a verified backup as a new LevelDB at `location` (refused if one exists there): every
 * record, the body-key file, then `marker` (`m:restore`: the service compares the copy with the
 * chain before it accepts anything). The marker's synced write makes the copy complete. Returns
 * the records written. A failure leaves `location` for the caller to remove.
 */
export async function loadBackup(
  backup: VerifiedBackup,
  location: string,
  marker: RestoreMarker,
  onProgress?: (records: number) => void,
): Promise<number> {
  const db = new ClassicLevel<string, Buffer>(location, {
    keyEncoding: "utf8",
    valueEncoding: "buffer",
    maxFileSize: 32 * 1024 * 1024,
    errorIfExists: true,
  });
  let records = 0;
  try {
    await db.open();
    for await (const page of backupRecords(backup)) {
      for (let i = 0; i < page.length; i += RESTORE_BATCH_RECORDS) {
        const slice = page.slice(i, i + RESTORE_BATCH_RECORDS);
        await db.batch(
          slice.map(([key, value]) => ({ type: "put" as const, key, value })),
          { sync: false },
        );
        records += slice.length;
      }
      onProgress?.(records);
    }
    if (records !== backup.manifest.records)
      throw new Error(`wrote ${records} records, the manifest says ${backup.manifest.records}`);
    // The keys the bodies are sealed under, before the marker makes the copy complete.
    if (backup.bodyKeys)
      await writeFile(path.join(location, BODY_KEYS_FILE), backup.bodyKeys, { mode: 0o600 });
    // Synced: LevelDB's log holds every unsynced batch before it, so this makes them durable.
    await db.put(K.restoreMarker, Buffer.from(JSON.stringify(marker)), { sync: true });
  } catch (error) {
    await db.close().catch(() => undefined);
    throw error;
  }
  await db.close();
  return records;
}

export function sha256Hex(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

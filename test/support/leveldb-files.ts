/**
 * Everything readable under a directory, for the tests that check what erasure leaves on disk:
 * every file's raw bytes, plus, for LevelDB table files (.ldb / .sst), every block decompressed
 * (LevelDB compresses table blocks with Snappy, so raw bytes alone would hide a value). The
 * table format (leveldb/doc/table_format.md): a 48-byte footer with the metaindex and index
 * block handles and the magic number; the index block maps keys to data block handles; every
 * block is followed by a 1-byte compression type (0 none, 1 Snappy) and a 4-byte CRC.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { uncompress } from "snappyjs";

const TABLE_MAGIC = Buffer.from("57fb808b247547db", "hex");
const FOOTER_BYTES = 48;

export interface FileContents {
  file: string;
  /** The raw bytes, then every table block decompressed (tables only). */
  parts: Buffer[];
  /** Snappy-compressed blocks decompressed in this file (so a test can tell the reader works). */
  decompressedBlocks: number;
}

function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[at++]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, at];
    shift += 7;
  }
}

function blockAt(file: Buffer, offset: number, size: number): { block: Buffer; snappy: boolean } {
  const data = file.subarray(offset, offset + size);
  const type = file[offset + size];
  return type === 1
    ? { block: Buffer.from(uncompress(data)), snappy: true }
    : { block: data, snappy: false };
}

/** The (offset, size) handles an index block lists, in order. */
function indexHandles(index: Buffer): Array<[number, number]> {
  const restarts = index.readUInt32LE(index.length - 4);
  const end = index.length - 4 - 4 * restarts;
  const out: Array<[number, number]> = [];
  let at = 0;
  while (at < end) {
    let shared: number;
    let unshared: number;
    let valueLength: number;
    [shared, at] = varint(index, at);
    [unshared, at] = varint(index, at);
    [valueLength, at] = varint(index, at);
    void shared;
    at += unshared;
    const value = index.subarray(at, at + valueLength);
    at += valueLength;
    const [offset, next] = varint(value, 0);
    const [size] = varint(value, next);
    out.push([offset, size]);
  }
  return out;
}

/** A table file's blocks, decompressed: data blocks, then the metaindex and index blocks. */
export function tableBlocks(file: Buffer): { blocks: Buffer[]; snappy: number } {
  if (file.length < FOOTER_BYTES || !file.subarray(file.length - 8).equals(TABLE_MAGIC))
    throw new Error("not a LevelDB table file");
  const footer = file.subarray(file.length - FOOTER_BYTES);
  const handles: number[] = [];
  for (let at = 0, i = 0; i < 4; i++) {
    const [value, next] = varint(footer, at);
    handles.push(value);
    at = next;
  }
  const [metaOffset, metaSize, indexOffset, indexSize] = handles as [
    number,
    number,
    number,
    number,
  ];
  const blocks: Buffer[] = [];
  let snappy = 0;
  const index = blockAt(file, indexOffset, indexSize);
  for (const [offset, size] of indexHandles(index.block)) {
    const b = blockAt(file, offset, size);
    blocks.push(b.block);
    if (b.snappy) snappy++;
  }
  const meta = blockAt(file, metaOffset, metaSize);
  blocks.push(meta.block, index.block);
  return { blocks, snappy: snappy + (meta.snappy ? 1 : 0) + (index.snappy ? 1 : 0) };
}

/**
 * Every file under `dir` (recursively), tables with their blocks decompressed. While LevelDB is
 * writing (a live log), a file can vanish between listing and reading (it holds nothing then)
 * and a table can still be half-written: the whole read is then tried again, a few times.
 */
export async function readEverything(dir: string, tries = 100): Promise<FileContents[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await readOnce(dir);
    } catch (e) {
      if (!(e instanceof HalfWrittenTable) || attempt >= tries) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

class HalfWrittenTable extends Error {}

async function readOnce(dir: string): Promise<FileContents[]> {
  const out: FileContents[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    let raw: Buffer;
    try {
      raw = await readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw e;
    }
    const parts: Buffer[] = [raw];
    let decompressedBlocks = 0;
    if (/\.(ldb|sst)$/.test(entry.name)) {
      if (!raw.subarray(raw.length - 8).equals(TABLE_MAGIC)) throw new HalfWrittenTable(file);
      const { blocks, snappy } = tableBlocks(raw);
      parts.push(...blocks);
      decompressedBlocks = snappy;
    }
    out.push({ file: path.relative(dir, file), parts, decompressedBlocks });
  }
  return out;
}

/** The files (relative names) in which any of `needles` occurs, as UTF-8 text or raw bytes. */
export function filesContaining(
  contents: readonly FileContents[],
  needles: ReadonlyArray<string | Buffer>,
): Array<{ file: string; needle: string }> {
  const found: Array<{ file: string; needle: string }> = [];
  for (const c of contents)
    for (const needle of needles) {
      const bytes = typeof needle === "string" ? Buffer.from(needle, "utf8") : needle;
      if (c.parts.some((p) => p.includes(bytes)))
        found.push({
          file: c.file,
          needle: typeof needle === "string" ? needle : `0x${needle.toString("hex")}`,
        });
    }
  return found;
}

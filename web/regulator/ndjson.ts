/**
 * Lines of an NDJSON stream (an export from GET /v1/export or `veritrail export`, dropped as a
 * file or streamed from the API) as they arrive, each with its line number and byte range, so
 * one bundle can be read again later from a file (Blob.slice) without keeping 100,000 bundles in
 * memory. Splits on LF bytes (UTF-8 never has 0x0A inside a character); a CR before it and blank
 * lines are dropped.
 */

export interface NdjsonLine {
  /** 1-based line number in the stream. */
  line: number;
  text: string;
  /** Byte offset of the line's first byte and one past its last (the LF excluded). */
  start: number;
  end: number;
}

/** Longest line accepted (a bundle is a few KiB; this bounds memory on a file that is not NDJSON). */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

export class LineTooLongError extends Error {
  override readonly name = "LineTooLongError";
}

export async function* ndjsonLines(
  stream: ReadableStream<Uint8Array>,
  opts: { maxLineBytes?: number; onBytes?: (bytesRead: number) => void } = {},
): AsyncGenerator<NdjsonLine> {
  const max = opts.maxLineBytes ?? MAX_LINE_BYTES;
  const decoder = new TextDecoder("utf-8", { fatal: false });
  const reader = stream.getReader();
  let carry: Uint8Array[] = [];
  let carryBytes = 0;
  let offset = 0;
  let lineStart = 0;
  let lineNo = 0;
  const emit = (bytes: Uint8Array): NdjsonLine | undefined => {
    lineNo++;
    const start = lineStart;
    const end = start + bytes.length;
    let n = bytes.length;
    if (n > 0 && bytes[n - 1] === 0x0d) n--;
    const text = decoder.decode(bytes.subarray(0, n));
    return text.trim() === "" ? undefined : { line: lineNo, text, start, end };
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let from = 0;
      for (;;) {
        const nl = value.indexOf(0x0a, from);
        if (nl < 0) break;
        let bytes = value.subarray(from, nl);
        if (carryBytes > 0) {
          bytes = concat([...carry, bytes], carryBytes + bytes.length);
          carry = [];
          carryBytes = 0;
        }
        if (bytes.length > max)
          throw new LineTooLongError(`line ${lineNo + 1} is longer than ${max} bytes`);
        const line = emit(bytes);
        lineStart = offset + nl + 1;
        if (line) yield line;
        from = nl + 1;
      }
      if (from < value.length) {
        carry.push(value.slice(from));
        carryBytes += value.length - from;
        if (carryBytes > max)
          throw new LineTooLongError(`line ${lineNo + 1} is longer than ${max} bytes`);
      }
      offset += value.length;
      opts.onBytes?.(offset);
    }
    if (carryBytes > 0) {
      const line = emit(concat(carry, carryBytes));
      if (line) yield line;
    }
  } finally {
    reader.releaseLock();
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

import { expect } from "chai";
import { LineTooLongError, ndjsonLines } from "../../../web/regulator/ndjson.ts";

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>, maxLineBytes?: number) {
  const out = [];
  for await (const l of ndjsonLines(stream, maxLineBytes ? { maxLineBytes } : {})) out.push(l);
  return out;
}

describe("regulator console: NDJSON lines with byte ranges (web/regulator/ndjson.ts)", () => {
  it("splits on LF across chunk boundaries, drops CR and blank lines, and keeps each line's bytes", async () => {
    const text = '{"a":1}\r\n\n{"b":"é€😀"}\n  \n{"c":3}';
    const bytes = new TextEncoder().encode(text);
    // Every way of cutting the bytes in three gives the same lines.
    for (let i = 1; i < bytes.length - 1; i += 3)
      for (let j = i + 1; j < bytes.length; j += 5) {
        const lines = await collect(
          streamOf([bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)]),
        );
        expect(lines.map((l) => [l.line, l.text])).to.deep.equal([
          [1, '{"a":1}'],
          [3, '{"b":"é€😀"}'],
          [5, '{"c":3}'],
        ]);
        for (const l of lines)
          expect(new TextDecoder().decode(bytes.slice(l.start, l.end)).replace(/\r$/, "")).to.equal(
            l.text,
          );
      }
  });

  it("refuses a line longer than the limit (a file that is not NDJSON)", async () => {
    const big = new Uint8Array(100).fill(0x61);
    let error: unknown;
    try {
      await collect(streamOf([big.slice(0, 60), big.slice(60)]), 50);
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(LineTooLongError);
  });
});

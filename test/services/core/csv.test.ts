import { expect } from "chai";
import { csvField, toCsv } from "../../../services/core/csv.ts";
import { parseCsv } from "../ledger/rfc4180.ts";

describe("core/csv: RFC 4180 with formula guard", () => {
  it("quotes separators, quotes and line breaks; leaves plain text and numbers", () => {
    expect(csvField("plain")).to.equal("plain");
    expect(csvField('a "b", c')).to.equal('"a ""b"", c"');
    expect(csvField("x\r\ny")).to.equal('"x\r\ny"');
    expect(csvField(null)).to.equal("");
    expect(csvField(12)).to.equal("12");
    expect(csvField(true)).to.equal("true");
  });

  it("defuses text a spreadsheet would run as a formula (OWASP CSV injection)", () => {
    expect(csvField("=SUM(A1)")).to.equal("'=SUM(A1)");
    expect(csvField("@x,y")).to.equal('"\'@x,y"');
    expect(csvField("+1")).to.equal("'+1");
    expect(csvField("-1")).to.equal("'-1");
    expect(csvField("\t=cmd")).to.equal("'\t=cmd");
    expect(csvField("\r=cmd")).to.equal('"\'\r=cmd"');
    // Numbers are numbers, not text: a negative count stays a number.
    expect(csvField(-1)).to.equal("-1");
  });

  it("reads back as the same table", () => {
    const rows = [
      ["org:a", 3, null],
      ['say "hi", twice', 0, "line\nbreak"],
    ];
    const text = toCsv(["organization", "count", "note"], rows);
    expect(text.endsWith("\r\n")).to.equal(true);
    expect(parseCsv(text)).to.deep.equal([
      ["organization", "count", "note"],
      ["org:a", "3", ""],
      ['say "hi", twice', "0", "line\nbreak"],
    ]);
  });
});

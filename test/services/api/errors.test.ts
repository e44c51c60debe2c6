import { expect } from "chai";
import express from "express";
import { pino } from "pino";
import { ApiError, errorHandler, toApiError } from "../../../services/api/errors.ts";
import { startServer } from "../../../services/api/server.ts";
import { LedgerError } from "../../../services/ledger/errors.ts";

describe("api errors", () => {
  it("maps ledger errors to their status and keeps the field", () => {
    const cases: Array<[LedgerError, number, string]> = [
      [new LedgerError("VALIDATION_FAILED", "bad", "seq"), 400, "VALIDATION_FAILED"],
      [new LedgerError("NOT_FOUND", "none", "seq"), 404, "NOT_FOUND"],
      [new LedgerError("FORBIDDEN", "no", "seq"), 403, "FORBIDDEN"],
      [new LedgerError("CONFLICT", "again", "id"), 409, "CONFLICT"],
      [new LedgerError("UNAVAILABLE", "later"), 503, "UNAVAILABLE"],
      [new LedgerError("BAD_CURSOR", "forged", "cursor"), 400, "BAD_CURSOR"],
    ];
    for (const [err, status, code] of cases) {
      const { error, unexpected } = toApiError(err);
      expect(unexpected).to.equal(false);
      expect(error.status).to.equal(status);
      expect(error.body().error).to.include({ code, message: err.message });
      expect(error.body().error.field).to.equal(err.field);
    }
  });

  it("an unexpected error is a 500 INTERNAL without message or stack, logged without its message", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const app = express();
    app.get("/boom", () => {
      throw new Error("boom for patient MRN-5555-SECRET");
    });
    app.get("/known", () => {
      throw new ApiError("CONFLICT", "already there", "id");
    });
    app.use(errorHandler(logger));
    const server = await startServer(app, { host: "127.0.0.1", port: 0 });
    try {
      const res = await fetch(`${server.url}/boom`);
      expect(res.status).to.equal(500);
      const text = await res.text();
      expect(JSON.parse(text)).to.deep.equal({
        error: { code: "INTERNAL", message: "internal error" },
      });
      expect(text).to.not.include("MRN-5555");
      expect(text).to.not.include("at ");
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include("unexpected error");
      expect(lines[0]).to.include("errors.test.ts");
      expect(lines[0]).to.not.include("MRN-5555");
      const known = await fetch(`${server.url}/known`);
      expect(known.status).to.equal(409);
      expect(await known.json()).to.deep.equal({
        error: { code: "CONFLICT", message: "already there", field: "id" },
      });
      expect(lines).to.have.length(1);
    } finally {
      await server.close();
    }
  });
});

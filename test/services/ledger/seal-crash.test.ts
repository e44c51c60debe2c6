import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Wallet } from "ethers";
import { entryLeafHash } from "../../../services/core/entry.ts";
import { fromHex } from "../../../services/core/hex.ts";
import { verifyCompleteness } from "../../../services/core/subject-index-proof.ts";
import { auditLog } from "../../../services/ledger/audit.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { K } from "../../../services/store/keys.ts";
import { LedgerStore } from "../../../services/store/ledger-store.ts";

const CHILD = path.resolve(import.meta.dirname, "../../support/seal-crash-child.ts");
const EVENTS = 3_000;
const SLICE = 1_024;

/**
 * Runs the child until it stops after the `stop`-th write whose first key starts with `kind`,
 * then kills it with SIGKILL; returns how many events it had acknowledged and its output.
 */
async function killDuringSeal(dir: string, kind: string, stop: number) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", CHILD, dir, String(EVENTS), String(SLICE), kind, String(stop)],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on("exit", (_code, signal) => resolve(signal)),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      if (out.includes("stopped\n")) resolve();
      if (out.includes("sealed\n")) reject(new Error(`the seal finished before the kill:\n${out}`));
    });
    void exited.then(() => reject(new Error(`the child exited early:\n${out}\n${err}`)));
  });
  child.kill("SIGKILL");
  expect(await exited).to.equal("SIGKILL");
  const acked = Number(/acked (\d+)/.exec(out)?.[1]);
  return { acked, out };
}

describe("ledger/seal: kill -9 between the slices of a seal", function () {
  this.timeout(180_000);
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  for (const [kind, what] of [
    ["u:", "while its undo records are written"],
    ["i:", "after some of its index nodes are written"],
  ] as const) {
    it(`rolls the index back and seals the batch again when killed ${what}`, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), "veritrail-seal-"));
      dirs.push(dir);
      const { acked, out } = await killDuringSeal(dir, kind, 2);
      expect(acked).to.equal(2 * EVENTS);
      // Killed mid-seal: marker written, more slices to come, no batch record.
      expect(out.match(new RegExp(`^write ${kind}`, "gm"))?.length).to.equal(2);
      const raw = await LedgerStore.open(dir).catch((e: unknown) => e);
      expect(raw).to.be.instanceOf(LedgerStore);
      const store = raw as LedgerStore;
      try {
        // Opening the store already settled the interrupted seal.
        expect(await store.getRaw(K.sealing)).to.equal(undefined);
        expect(await store.getBatch(0)).to.not.equal(undefined);
        expect(await store.getBatch(1)).to.equal(undefined);
        expect(await store.nextSeq()).to.equal(2 * EVENTS);
      } finally {
        await store.close();
      }

      // Smaller batches than before the kill (an operator may change BATCH_MAX_EVENTS): batch 1
      // is sealed again over fewer events than the cut-short seal was writing.
      const ledger = await Ledger.open({
        location: dir,
        receiptSigner: new Wallet("0x" + "11".repeat(32)),
        batchMaxEvents: EVENTS / 2,
        batchMaxWaitMs: 3_600_000,
        anchorDeadlineMs: 3_600_000,
        groupCommitMaxEvents: 4_096,
        sealWorker: true,
        indexWriteSliceOps: SLICE,
      });
      try {
        await ledger.sealPending();
        const batch = await ledger.store.getBatch(1);
        expect(batch?.header).to.include({ firstSeq: EVENTS, count: EVENTS / 2 });
        // While batch 1 is not anchored, proofs are served at batch 0 from batch 1's undo
        // records: they hold each node as it was before batch 1, not as the cut-short seal left it.
        const first = await ledger.store.getBatch(0);
        const indexRoot = fromHex(first!.header.indexRoot);
        for (let p = 0; p < EVENTS; p += 7) {
          const tag = ledger.subjectTagOf({
            system: "urn:oid:2.16.840.1.113883.4.1",
            value: `MRN-${p}`,
          });
          const seqs = await ledger.store.seqsBySubject(tag, { beforeSeq: EVENTS, limit: 100 });
          const events = (await ledger.getEvents(seqs)).map((e) => ({
            seq: e.seq,
            leafHash: entryLeafHash(e.entry),
          }));
          const result = verifyCompleteness({
            indexRoot,
            subjectTag: fromHex(tag),
            events,
            proof: await ledger.subjectIndex.proveAt(0, tag),
          });
          expect(result, `MRN-${p}`).to.deep.equal({ ok: true, count: 1 });
        }
        // The regulator's replay recomputes every index root and the live index from scratch.
        const report = await auditLog(ledger.store, { workers: 0 });
        expect(report.findings).to.deep.equal([]);
        expect(report).to.include({ ok: true, events: 2 * EVENTS, sealedEvents: 2 * EVENTS });
      } finally {
        await ledger.close();
      }
    });
  }
});

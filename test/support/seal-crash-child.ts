/**
 * Child process of test/services/ledger/seal-crash.test.ts. Opens a ledger as the service does (with
 * the sealing worker), seals a first batch of EVENTS events, acknowledges EVENTS more (half of
 * them about the first batch's patients) without sealing them, prints `acked`, then seals them
 * and prints each store write of the seal (`write <first key prefix> <ops>`). After
 * the STOP-th write whose first key has prefix KIND it prints `stopped` and waits there, so the
 * parent's SIGKILL lands between two slices of the seal.
 *
 *   node --import tsx seal-crash-child.ts <dir> <events> <slice ops> <kind> <stop>
 */
import { Wallet } from "ethers";
import { Ledger } from "../../services/ledger/ledger.ts";
import { makeNativeEvent } from "../fixtures/events.ts";

const [dir, events, slice, kind, stop] = process.argv.slice(2);
const total = Number(events);
const ledger = await Ledger.open({
  location: dir!,
  receiptSigner: new Wallet("0x" + "11".repeat(32)),
  batchMaxEvents: 100_000,
  batchMaxWaitMs: 3_600_000,
  anchorDeadlineMs: 3_600_000,
  groupCommitMaxEvents: 4_096,
  sealWorker: true,
  indexWriteSliceOps: Number(slice),
});
/** Events about patients MRN-first … MRN-(first + count - 1), acknowledged. */
async function ingest(first: number, count: number): Promise<void> {
  for (let from = 0; from < count; from += 500) {
    const calls = Array.from({ length: Math.min(500, count - from) }, (_, i) => {
      const e = makeNativeEvent();
      delete e.requestId;
      const patient = `MRN-${first + from + i}`;
      return { ...e, patient: { system: "urn:oid:2.16.840.1.113883.4.1", value: patient } };
    });
    await ledger.ingest(calls);
  }
}
await ingest(0, total);
await ledger.sealPending();
await ingest(total / 2, total);
process.stdout.write(`acked ${ledger.nextSeq}\n`);

const write = ledger.store.write.bind(ledger.store);
let seen = 0;
ledger.store.write = async (ops, sync) => {
  await write(ops, sync);
  const prefix = ops[0]?.key.slice(0, 2) ?? "";
  process.stdout.write(`write ${prefix} ${ops.length}\n`);
  if (prefix === kind && ++seen === Number(stop)) {
    process.stdout.write("stopped\n");
    await new Promise(() => undefined);
  }
};
await ledger.sealPending();
process.stdout.write("sealed\n");
await ledger.close();

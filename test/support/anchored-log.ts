/**
 * A ledger in a temp dir anchored by the real anchor loop on a Hardhat node, for the patient
 * history, completeness and audit tests. One DevDeployment is shared by every loop, so the log
 * stays in one registry across `reopen()`.
 */
import { policyDocument } from "./trust.ts";
import { Wallet } from "ethers";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { NativeEvent } from "../../services/core/event.ts";
import type { Hex } from "../../services/core/hex.ts";
import { DevDeployment } from "../../services/chain/dev-deployment.ts";
import { loadConfig } from "../../services/config.ts";
import { AnchorLoop } from "../../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../../services/anchoring/chain-session.ts";
import { Ledger, type LedgerOptions } from "../../services/ledger/ledger.ts";
import { Sealer } from "../../services/ledger/seal.ts";
import { SubjectIndex } from "../../services/ledger/subject-index-store.ts";
import { LedgerStore } from "../../services/store/ledger-store.ts";
import { PATIENT_MRN_SYSTEM, makeNativeEvent } from "../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, type HardhatNode } from "./hardhat-node.ts";
import { TestLogClock } from "./log-clock.ts";

export const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
export const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
export const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);

let counter = 0;

/** An event about patient `mrn` with a unique requestId. */
export function patientEvent(mrn: string, overrides: Partial<NativeEvent> = {}): NativeEvent {
  counter++;
  return makeNativeEvent({
    patient: { system: PATIENT_MRN_SYSTEM, value: mrn },
    requestId: `req-${process.pid}-${Date.now()}-${counter}`,
    ...overrides,
  });
}

/**
 * A second log in the same registry (another institution) passes the first one's deployment
 * and its own anchorer and receipt signer.
 */
export interface AnchoredLogOptions extends Partial<Omit<LedgerOptions, "receiptSigner">> {
  deployment?: DevDeployment;
  anchorer?: Wallet;
  receiptSigner?: Wallet;
  /** The operator name registered on-chain (dev registration). */
  operator?: string;
}

export class AnchoredLog {
  private constructor(
    readonly node: HardhatNode,
    readonly dir: string,
    public ledger: Ledger,
    readonly deployment: DevDeployment,
    /** The log clock (entry.recorded): real time unless a test sets it. */
    readonly clock: TestLogClock,
    private readonly accounts: {
      anchorer: Wallet;
      receiptSigner: Wallet;
      operator?: string;
      ledgerOptions: Partial<LedgerOptions>;
    },
  ) {}

  static async create(node: HardhatNode, opts: AnchoredLogOptions = {}): Promise<AnchoredLog> {
    const { deployment, anchorer, receiptSigner, operator, ...ledgerOptions } = opts;
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-anchored-"));
    const clock = new TestLogClock();
    const accounts = {
      anchorer: anchorer ?? ANCHORER,
      receiptSigner: receiptSigner ?? RECEIPT_SIGNER,
      ...(operator !== undefined ? { operator } : {}),
      ledgerOptions,
    };
    const log = new AnchoredLog(
      node,
      dir,
      await openLedger(dir, clock, accounts.receiptSigner, ledgerOptions),
      deployment ?? new DevDeployment(ADMIN),
      clock,
      accounts,
    );
    // Receipts must be issued after the signer's on-chain period began (block time, seconds).
    const loop = log.loop();
    try {
      loop.start();
      await waitUntil(
        "log registration",
        async () => loop.status().receiptSignerRegistered === true,
      );
      const block = await node.rpc<{ timestamp: string }>("eth_getBlockByNumber", [
        "latest",
        false,
      ]);
      const registeredAt = Number(BigInt(block.timestamp));
      await waitUntil(
        "clock past registration",
        async () => Date.now() > (registeredAt + 1) * 1000,
      );
    } finally {
      await loop.stop();
    }
    return log;
  }

  /**
   * A trust policy file listing this log in the registry it anchors in, as a regulator would
   * publish it (DESIGN.md "Trust policy"); written to a fresh temp file.
   */
  async writeTrustFile(): Promise<string> {
    const chainId = Number(BigInt(await this.node.rpc<string>("eth_chainId", [])));
    const dir = await mkdtemp(path.join(tmpdir(), "veritrail-trust-"));
    const file = path.join(dir, "trust.json");
    await writeFile(
      file,
      JSON.stringify(
        policyDocument({ chainId, contract: this.contract, logIds: [this.ledger.logId] }),
      ),
    );
    return file;
  }

  tagOf(mrn: string): Hex {
    return this.ledger.subjectTagOf({ system: PATIENT_MRN_SYSTEM, value: mrn });
  }

  get contract(): string {
    const address = this.deployment.address;
    if (address === undefined) throw new Error("no registry deployed yet");
    return address;
  }

  loop(): AnchorLoop {
    return new AnchorLoop({
      ledger: this.ledger,
      session: new ChainSession({
        rpcUrl: this.node.url,
        chainMode: "development",
        anchorer: this.accounts.anchorer,
        admin: ADMIN,
        deployment: this.deployment,
        ...(this.accounts.operator !== undefined ? { operator: this.accounts.operator } : {}),
      }),
      confirmations: 1,
      retryMinMs: 50,
      retryMaxMs: 500,
      pollMs: 50,
      tickMs: 100,
    });
  }

  /** Seals what is pending and anchors every sealed batch. */
  async sealAndAnchor(): Promise<void> {
    await this.ledger.sealPending();
    await this.anchorAll();
  }

  async anchorAll(): Promise<void> {
    const last = await this.ledger.lastBatchNo();
    if (last < 0) return;
    const loop = this.loop();
    try {
      loop.start();
      await loop.waitForAnchored(last, 60_000);
    } finally {
      await loop.stop();
    }
  }

  /** Closes the ledger; `action` may then use the directory; the ledger is opened again. */
  async reopen(action: (dir: string) => Promise<void> = async () => undefined): Promise<void> {
    await this.ledger.close();
    await action(this.dir);
    this.ledger = await openLedger(
      this.dir,
      this.clock,
      this.accounts.receiptSigner,
      this.accounts.ledgerOptions,
    );
  }

  /**
   * Seals everything pending as one batch whose completeness-index update leaves out the event
   * at `skipSeq` — what a dishonest operator would do — through the real Sealer and store.
   */
  async sealForged(skipSeq: number): Promise<void> {
    await this.reopen(async (dir) => {
      const store = await LedgerStore.open(dir);
      try {
        const last = await store.lastBatch();
        const latest = last ? last.header.batchNo : -1;
        const index = new SkippingIndex(store, latest, skipSeq);
        const meta = await store.getMeta();
        const sealer = new Sealer(store, index, last, await store.nextSeq(), {
          logId: meta!.logId as Hex,
          maxEvents: 1_000_000,
          maxWaitMs: 3_600_000,
          onSealed: () => undefined,
          onError: (e) => {
            throw e;
          },
        });
        await sealer.sealAll();
        await sealer.stop();
      } finally {
        await store.close();
      }
    });
  }

  async close(): Promise<void> {
    if (this.ledger.store.isOpen) await this.ledger.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A completeness index that "forgets" one event when a batch is applied. */
class SkippingIndex extends SubjectIndex {
  constructor(
    store: LedgerStore,
    latest: number,
    private readonly skipSeq: number,
  ) {
    super(store, latest);
  }

  override prepareBatch(
    batchNo: number,
    events: Array<{ subject: Hex; seq: number; leafHash: Uint8Array }>,
  ): ReturnType<SubjectIndex["prepareBatch"]> {
    return super.prepareBatch(
      batchNo,
      events.filter((e) => e.seq !== this.skipSeq),
    );
  }
}

async function openLedger(
  dir: string,
  clock: TestLogClock,
  receiptSigner: Wallet,
  options: Partial<LedgerOptions> = {},
): Promise<Ledger> {
  const defaults = loadConfig({});
  return Ledger.open({
    location: dir,
    logClock: clock.now,
    receiptSigner,
    batchMaxEvents: 100_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: defaults.ANCHOR_DEADLINE_MS,
    groupCommitMaxEvents: defaults.GROUP_COMMIT_MAX_EVENTS,
    ...options,
  });
}

export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

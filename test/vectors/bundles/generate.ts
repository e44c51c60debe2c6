/**
 * Generates the proof-bundle vectors at test time: a real ledger, anchored by the real anchor
 * loop on a Hardhat node, proves a few events; the broken cases are the declarative mutations
 * of cases.json applied to those bundles. Chain ids, addresses and hashes differ per run, so
 * only the mutations are data.
 *
 * Needs the contract artifacts (`hardhat build --quiet`). Runnable on its own: starts a node,
 * writes every case's bundle to test-artifacts/bundle-vectors.ndjson and prints the node URL
 * (kept running until Ctrl-C) so the CLI and the page can be tried by hand:
 *   node --import tsx test/vectors/bundles/generate.ts
 */
import { Wallet } from "ethers";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Bundle } from "../../../services/core/bundle.ts";
import { fieldDigest } from "../../../services/core/disclosure.ts";
import { type Hex, fromHex, toHex } from "../../../services/core/hex.ts";
import { RECEIPT_DOMAIN, RECEIPT_TYPES, receiptGroupValue } from "../../../services/core/receipt.ts";
import { loadConfig } from "../../../services/config.ts";
import { AnchorLoop } from "../../../services/anchoring/anchor-loop.ts";
import { ChainSession } from "../../../services/anchoring/chain-session.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import { type TrustPolicy, parseTrustPolicy } from "../../../services/core/trust-policy.ts";
import { eraseEvent } from "../../../services/ledger/erasure.ts";
import { type PatientHistory, patientHistory } from "../../../services/ledger/patient-history.ts";
import { makeNativeEvent } from "../../fixtures/events.ts";
import { HARDHAT_ACCOUNTS, HardhatNode, freePort } from "../../support/hardhat-node.ts";
import { policyDocument, policyFor } from "../../support/trust.ts";

export const ADMIN = new Wallet(HARDHAT_ACCOUNTS[0].privateKey);
export const ANCHORER = new Wallet(HARDHAT_ACCOUNTS[1].privateKey);
export const RECEIPT_SIGNER = new Wallet(HARDHAT_ACCOUNTS[2].privateKey);
/** Signs receipts but is registered nowhere. */
export const STRANGER = new Wallet(HARDHAT_ACCOUNTS[5].privateKey);

export type BaseName =
  | "fresh"
  | "erased"
  | "erasedOther"
  | "savedPending"
  | "pending"
  | "unsealed"
  | "withheld"
  | "v1";

export type Mutation =
  | { op: "set"; path: string; value: unknown }
  | { op: "add"; path: string; value: number }
  | { op: "flipHex"; path: string; at?: number }
  | { op: "lowercase"; path: string }
  | { op: "truncate"; path: string; count: number }
  | { op: "push"; path: string; value: unknown }
  | { op: "swap"; path: string; i: number; j: number }
  | { op: "delete"; path: string }
  | { op: "copyFrom"; base: BaseName; path: string }
  /** Entry v2: show the redactable value at `pointer` as its `{"_sd": digest}`, salt dropped. */
  | { op: "withhold"; pointer: string }
  | { op: "embed"; base: BaseName; path: string }
  | { op: "flipCase"; path: string }
  | { op: "resignReceipt"; signer: "registered" | "stranger"; issuedAtOffsetMs?: number };

export interface VectorCase {
  desc: string;
  base: BaseName;
  mutate: Mutation[];
  confirmations?: number | "depth" | "depth+1";
  rpc?: "dead";
  /** The policy the case is verified against: the generated one unless it names a variant. */
  trust?: "other-registry" | "other-log" | "chain-1";
  wantStatus: "verified" | "erased" | "withheld" | "pending" | "failed" | "error";
  wantCode?: string;
  wantStep?: string;
}

export async function loadCases(): Promise<VectorCase[]> {
  const text = await readFile(path.join(import.meta.dirname, "cases.json"), "utf8");
  return (JSON.parse(text) as { cases: VectorCase[] }).cases;
}

export interface GeneratedBundles {
  bases: Record<BaseName, Bundle>;
  chainId: number;
  contract: string;
  logId: string;
  /** The policy a regulator would publish for this log: this registry, this log. */
  trust: TrustPolicy;
  /** The same, as the JSON document (for files and pages). */
  trustDocument: Record<string, unknown>;
  /** The fixture patient's GET /v1/patient/history answer (complete as of batch 0). */
  history: PatientHistory;
  /** Block of the fresh bundle's anchoring transaction. */
  anchorBlock: number;
  /** A URL where nothing listens. */
  deadRpcUrl: string;
  close(): Promise<void>;
}

const BATCH_EVENTS = 10;
const FRESH_SEQ = 5;
const ERASED_SEQ = 3;
/** Seqs below this are written as entry v1 (a log upgraded in the middle of its first batch). */
const V1_EVENTS = 3;
const V1_SEQ = 1;
const ERASED_OTHER_SEQ = 4;
/** Batch 0: the events, then the two erasure events. */
const BATCH0_COUNT = BATCH_EVENTS + 2;

/**
 * A ledger anchored on `node`: batch 0 (10 events, then the two Deletes that erase seqs 3 and 4
 * through the ledger's own erasure) anchored, seq 5's bundle also saved before the anchor
 * (savedPending); batch 1 sealed with the loop stopped (pending); one more event accepted and
 * not sealed. Then a few blocks are mined on top so confirmation depths above 1 can be tested.
 */
export async function generateBundles(node: HardhatNode): Promise<GeneratedBundles> {
  const defaults = loadConfig({});
  const dir = await mkdtemp(path.join(tmpdir(), "veritrail-vectors-"));
  const ledger = await Ledger.open({
    location: dir,
    receiptSigner: RECEIPT_SIGNER,
    batchMaxEvents: 1_000,
    batchMaxWaitMs: 3_600_000,
    anchorDeadlineMs: defaults.ANCHOR_DEADLINE_MS,
    groupCommitMaxEvents: defaults.GROUP_COMMIT_MAX_EVENTS,
    entryVersion: () => (ledger.nextSeq < V1_EVENTS ? 1 : 2),
  });
  const newLoop = (contractAddress?: string) =>
    new AnchorLoop({
      ledger,
      session: new ChainSession({
        rpcUrl: node.url,
        chainMode: "development",
        anchorer: ANCHORER,
        admin: ADMIN,
        ...(contractAddress ? { contractAddress } : {}),
      }),
      confirmations: 1,
      retryMinMs: 50,
      retryMaxMs: 500,
      pollMs: 50,
    });
  let loop = newLoop();
  try {
    loop.start();
    // Receipts must be issued after the signer's on-chain period began (block timestamps,
    // seconds, which can run ahead of the wall clock when blocks are mined back to back).
    await waitUntil("log registration", async () => loop.status().receiptSignerRegistered === true);
    const registeredAt = await latestTimestamp(node);
    await waitUntil("wall clock past registration", async () => Date.now() > (registeredAt + 1) * 1000);

    const run = `${process.pid}-${Date.now()}`;
    const events = Array.from({ length: BATCH_EVENTS }, (_, i) => {
      const e = makeNativeEvent({ requestId: `req-vector-${run}-${i}` });
      // Every redactable path present: who, userName, altId, network.
      e.agents[2]!.altId = `EMP-${i}`;
      e.agents[2]!.network = { address: "10.1.2.3", type: "2" };
      return e;
    });
    // Registered; nothing anchors while batch 0 is built, so one of its bundles can be saved
    // before its anchor exists.
    const contract = loop.status().contract;
    await loop.stop();
    for (let i = 0; i < events.length; i += V1_EVENTS) await ledger.ingest(events.slice(i, i + V1_EVENTS));
    // Erasure as the ledger does it: the body and salt go, the entry stays, a Delete is logged.
    for (const seq of [ERASED_SEQ, ERASED_OTHER_SEQ])
      await eraseEvent(ledger, {
        seq,
        legalBasis: "GDPR Art. 17(1)(b)",
        reason: "vector",
        keyId: "key-vectors",
      });
    await ledger.sealPending();
    const savedPending = await ledger.prove(FRESH_SEQ);
    loop = newLoop(contract);
    loop.start();
    await loop.waitForAnchored(0, 60_000);
    await loop.stop();

    await ledger.ingest([makeNativeEvent({ requestId: `req-vector-${run}-pending` })]);
    await ledger.sealPending();
    await ledger.ingest([makeNativeEvent({ requestId: `req-vector-${run}-unsealed` })]);

    const fresh = await ledger.prove(FRESH_SEQ);
    const withheld = await ledger.prove(FRESH_SEQ, { staffIdentity: "withhold" });
    const v1 = await ledger.prove(V1_SEQ);
    if (fresh.entry.v !== 2 || v1.entry.v !== 1 || v1.disclosures !== undefined)
      throw new Error("unexpected entry versions in the generated bundles");
    const erased = await ledger.prove(ERASED_SEQ);
    const erasedOther = await ledger.prove(ERASED_OTHER_SEQ);
    const pending = await ledger.prove(BATCH0_COUNT);
    const unsealed = await ledger.prove(BATCH0_COUNT + 1);
    if (
      fresh.anchor === null ||
      erased.event !== null ||
      erased.erasure === undefined ||
      pending.status !== "sealed" ||
      savedPending.anchor !== null
    )
      throw new Error(`unexpected generated bundles: ${JSON.stringify([fresh.status, pending.status])}`);
    if (unsealed.status !== "unsealed") throw new Error(`seq ${BATCH0_COUNT + 1} got sealed`);
    await node.mine(3);
    const patient = (events[0] as { patient?: { system?: string; value: string } }).patient;
    if (!patient) throw new Error("the fixture events name no patient");
    const history = await patientHistory(ledger, ledger.subjectTagOf(patient), {
      staffIdentity: "withhold",
    });
    const trustDocument = policyDocument({
      chainId: fresh.anchor.chainId,
      contract: fresh.anchor.contract,
      logIds: [ledger.logId],
    });
    return {
      bases: { fresh, erased, erasedOther, savedPending, pending, unsealed, withheld, v1 },
      chainId: fresh.anchor.chainId,
      contract: fresh.anchor.contract,
      logId: ledger.logId,
      trust: parseTrustPolicy(trustDocument),
      trustDocument,
      history,
      anchorBlock: fresh.anchor.blockNumber,
      deadRpcUrl: `http://127.0.0.1:${await freePort()}`,
      close: async () => {
        await loop.stop();
        if (ledger.store.isOpen) await ledger.close();
      },
    };
  } catch (e) {
    await loop.stop();
    await ledger.close();
    throw e;
  }
}

/** The policy a case is verified against (DESIGN.md "Trust policy"). */
export function policyForCase(c: VectorCase, g: GeneratedBundles): TrustPolicy {
  switch (c.trust) {
    case undefined:
      return g.trust;
    case "other-registry":
      return policyFor({ chainId: g.chainId, contract: STRANGER.address, logIds: g.logId });
    case "other-log":
      return policyFor({ chainId: g.chainId, contract: g.contract, logIds: `0x${"ab".repeat(32)}` });
    case "chain-1":
      return policyFor({ chainId: 1, contract: g.contract, logIds: g.logId });
  }
}

/** The confirmations a case asks for, given the chain head now. */
export function confirmationsFor(c: VectorCase, latest: number, anchorBlock: number): number {
  const depth = latest - anchorBlock + 1;
  if (c.confirmations === "depth") return depth;
  if (c.confirmations === "depth+1") return depth + 1;
  return c.confirmations ?? 1;
}

/** What a verdict looks like to the vectors: its status and its first failed check. */
export interface VerdictSummary {
  status: string;
  code?: string;
  checks: Array<{ step: string; ok: boolean | "skipped"; code?: string; reason: string }>;
}

/** Why `v` is not what case `c` expects, or undefined when it is. */
export function verdictMismatch(c: VectorCase, v: VerdictSummary): string | undefined {
  const step = v.checks.find((k) => k.ok === false && k.code === v.code)?.step;
  const got = { status: v.status, code: v.code, step };
  const want = { status: c.wantStatus, code: c.wantCode, step: c.wantStep };
  if (JSON.stringify(got) === JSON.stringify(want)) return undefined;
  const checks = v.checks.map((k) => `  ${k.step}: ${String(k.ok)} ${k.code ?? ""} ${k.reason}`);
  return `${c.desc}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}\n${checks.join("\n")}`;
}

/** The case's bundle: its base, deep-copied, with the mutations applied in order. */
export async function buildCase(c: VectorCase, g: GeneratedBundles): Promise<unknown> {
  const bundle = structuredClone(g.bases[c.base]) as unknown as Record<string, unknown>;
  for (const m of c.mutate) await applyMutation(bundle, m, g);
  return bundle;
}

type Json = Record<string, unknown> | unknown[];

function locate(root: Record<string, unknown>, dotted: string): { parent: Json; key: string } {
  const parts = dotted.split(".");
  let parent: Json = root;
  for (const part of parts.slice(0, -1)) {
    const next = (parent as Record<string, unknown>)[part];
    if (next === null || typeof next !== "object") throw new Error(`no object at ${dotted}`);
    parent = next as Json;
  }
  return { parent, key: parts[parts.length - 1]! };
}

function get(root: Record<string, unknown>, dotted: string): unknown {
  const { parent, key } = locate(root, dotted);
  return (parent as Record<string, unknown>)[key];
}

function put(root: Record<string, unknown>, dotted: string, value: unknown): void {
  const { parent, key } = locate(root, dotted);
  (parent as Record<string, unknown>)[key] = value;
}

function array(root: Record<string, unknown>, dotted: string): unknown[] {
  const value = get(root, dotted);
  if (!Array.isArray(value)) throw new Error(`${dotted} is not an array`);
  return value;
}

/** Flips one hex digit (default: the last), keeping the string valid lowercase hex. */
export function flipHexDigit(hex: string, at?: number): string {
  const i = at ?? hex.length - 1;
  const digit = hex[i];
  if (i < 2 || digit === undefined) throw new Error(`cannot flip digit ${i} of ${hex}`);
  const flipped = (parseInt(digit, 16) ^ 0x1).toString(16);
  return hex.slice(0, i) + flipped + hex.slice(i + 1);
}

async function applyMutation(
  b: Record<string, unknown>,
  m: Mutation,
  g: GeneratedBundles,
): Promise<void> {
  switch (m.op) {
    case "set":
      put(b, m.path, structuredClone(m.value));
      return;
    case "add":
      put(b, m.path, (get(b, m.path) as number) + m.value);
      return;
    case "flipHex":
      put(b, m.path, flipHexDigit(get(b, m.path) as string, m.at));
      return;
    case "lowercase":
      put(b, m.path, (get(b, m.path) as string).toLowerCase());
      return;
    case "truncate":
      array(b, m.path).splice(-m.count, m.count);
      return;
    case "push":
      array(b, m.path).push(structuredClone(m.value));
      return;
    case "swap": {
      const a = array(b, m.path);
      [a[m.i], a[m.j]] = [a[m.j], a[m.i]];
      return;
    }
    case "delete": {
      const { parent, key } = locate(b, m.path);
      delete (parent as Record<string, unknown>)[key];
      return;
    }
    case "embed":
      put(b, m.path, structuredClone(g.bases[m.base]));
      return;
    case "flipCase": {
      // Flips the case of one hex letter: the same address in a mixed case whose EIP-55
      // checksum no longer holds.
      const v = get(b, m.path) as string;
      const i = [...v].findIndex((ch, k) => k > 1 && /[a-fA-F]/.test(ch));
      const ch = v[i]!;
      const flipped = ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase();
      put(b, m.path, v.slice(0, i) + flipped + v.slice(i + 1));
      return;
    }
    case "copyFrom":
      put(b, m.path, structuredClone(get(g.bases[m.base] as unknown as Record<string, unknown>, m.path)));
      return;
    case "resignReceipt":
      b.receipt = await resignedReceipt(b as unknown as Bundle, m);
      return;
    case "withhold": {
      const disclosures = b["disclosures"] as Record<string, Hex>;
      const salt = disclosures[m.pointer];
      if (salt === undefined) throw new Error(`no disclosure for ${m.pointer}`);
      const [, , index, field] = m.pointer.split("/");
      const agent = (b["event"] as { agents: Array<Record<string, unknown>> }).agents[
        Number(index)
      ]!;
      agent[field!] = { _sd: fieldDigest(fromHex(salt), m.pointer, agent[field!]) };
      delete disclosures[m.pointer];
      return;
    }
  }
}

/**
 * The bundle's receipt, re-issued as a group of one (leavesRoot = its leaf hash, empty path)
 * and signed by `signer`, optionally with issuedAt moved.
 */
async function resignedReceipt(
  b: Bundle,
  m: { signer: "registered" | "stranger"; issuedAtOffsetMs?: number },
): Promise<Bundle["receipt"]> {
  const wallet = m.signer === "registered" ? RECEIPT_SIGNER : STRANGER;
  return resignReceipt(b, wallet, Date.parse(b.receipt.issuedAt) + (m.issuedAtOffsetMs ?? 0));
}

/** The bundle's receipt re-issued by `wallet` at `issuedAtMs`, as a group of one. */
export async function resignReceipt(
  b: Bundle,
  wallet: Wallet,
  issuedAtMs: number,
): Promise<Bundle["receipt"]> {
  const r = b.receipt;
  const message = {
    log: r.log as Hex,
    firstSeq: r.seq,
    count: 1,
    leavesRoot: r.leafHash as Hex,
    issuedAt: issuedAtMs,
    anchorDeadline: Date.parse(r.anchorDeadline),
  };
  const signature = await wallet.signTypedData(
    RECEIPT_DOMAIN,
    RECEIPT_TYPES,
    receiptGroupValue(message),
  );
  return {
    ...r,
    issuedAt: new Date(issuedAtMs).toISOString(),
    group: { firstSeq: r.seq, count: 1, leavesRoot: toHex(fromHex(r.leafHash)), path: [] },
    signer: wallet.address,
    signature,
  };
}

async function latestTimestamp(node: HardhatNode): Promise<number> {
  const block = await node.rpc<{ timestamp: string }>("eth_getBlockByNumber", ["latest", false]);
  return Number(BigInt(block.timestamp));
}

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function main(): Promise<void> {
  const node = await HardhatNode.start();
  const g = await generateBundles(node);
  const cases = await loadCases();
  const out = path.resolve(import.meta.dirname, "../../../test-artifacts/bundle-vectors.ndjson");
  await mkdir(path.dirname(out), { recursive: true });
  const lines: string[] = [];
  for (const c of cases) lines.push(JSON.stringify(await buildCase(c, g)));
  await writeFile(out, `${lines.join("\n")}\n`);
  await g.close();
  console.log(`${cases.length} bundles in ${out}; Hardhat node at ${node.url} (Ctrl-C stops it)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}

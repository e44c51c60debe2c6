/**
 * (d) Tampering: random single-byte changes to LevelDB values of a stopped service — an event
 * body (b:), an entry (e:) or a batch record (k:) — each checked, then restored. A tampering is
 * reported when the ledger refuses to serve the affected proof (a broken record) or the
 * standalone verifier rejects the bundle against the chain. One base copy of the data is
 * reused: the byte is put back after each check, and the untouched log is re-verified at the
 * end to prove the restores were exact.
 *
 * Two detectors run on every tampering, as a regulator would use them: the audit
 * (services/ledger/audit.ts `auditLog`: replays the whole log and compares every header and
 * every stored anchor field with the chain) and the proof path (`ledger.prove` + the standalone
 * `verifyBundle` on the affected event). The table says what each caught; the property is that
 * one of them caught every change, to any field of a batch record included (the anchor fields by
 * the chain, operational ones such as `sealedAt` by the record's digest), and that the proof path
 * refused damaged records with a typed error (STORE_CORRUPT naming the key), never a raw
 * SyntaxError or TypeError.
 */
import { JsonRpcProvider, Wallet } from "ethers";
import path from "node:path";
import { auditLog } from "../../../services/ledger/audit.ts";
import { Ledger } from "../../../services/ledger/ledger.ts";
import type { TrustPolicy } from "../../../services/core/trust-policy.ts";
import { policyFor } from "../../../test/support/trust.ts";
import { ChainReads } from "../../../services/verifier/chain-reads.ts";
import { verifyBundle } from "../../../services/verifier/verify-bundle.ts";
import { K, parseSeqPart } from "../../../services/store/keys.ts";
import { freePort } from "../../../test/support/hardhat-node.ts";
import {
  Load,
  WRITER_ORG,
  checkAcknowledged,
  checkPassed,
  createKey,
  describeCheck,
} from "../client.ts";
import { RECEIPT_SIGNER_KEY, startExternalChain } from "../external-chain.ts";
import { type ScenarioResult, ScenarioReport } from "../result.ts";
import { ServiceProcess } from "../service-process.ts";
import { randomInt, withTempDir } from "../workspace.ts";

export interface TamperingOptions {
  tamperings: number;
  events: number;
  log?: (message: string) => void;
}

export const TAMPERING_DEFAULTS: TamperingOptions = { tamperings: 1_000, events: 300 };

const KINDS = ["body", "entry", "batch"] as const;
type Kind = (typeof KINDS)[number];
const PREFIXES: Record<Kind, string> = {
  body: K.bodyPrefix,
  entry: K.entryPrefix,
  batch: K.batchPrefix,
};

interface Target {
  kind: Kind;
  key: string;
  /** The seq whose proof depends on this value. */
  seq: number;
}

/** Fills a log through the API and stops the service cleanly; returns the number of events. */
async function buildLog(
  dataDir: string,
  chainEnv: Record<string, string>,
  rpcUrl: string,
  events: number,
): Promise<string> {
  const service = await ServiceProcess.start({
    ...chainEnv,
    PORT: String(await freePort()),
    BATCH_MAX_EVENTS: "32",
    BATCH_MAX_WAIT_MS: "100",
    LOG_LEVEL: "warn",
  });
  try {
    const writerKey = await createKey(service.baseUrl, service.adminKey!, {
      role: "writer",
      organization: WRITER_ORG,
    });
    const load = new Load(() => service.baseUrl, writerKey, {
      concurrency: 4,
      maxMs: 120_000,
      maxEvents: events,
      runId: "tamper",
    });
    await load.finished();
    const check = await checkAcknowledged(service.baseUrl, writerKey, rpcUrl, load.acked, {
      anchorTimeoutMs: 60_000,
    });
    if (!checkPassed(check))
      throw new Error(`log not provable before tampering: ${describeCheck(check)}`);
    return `${load.acked.length} events`;
  } finally {
    await service.kill("SIGTERM");
  }
}

async function targets(ledger: Ledger): Promise<Target[]> {
  const out: Target[] = [];
  for (const kind of KINDS) {
    const prefix = PREFIXES[kind];
    for await (const [key, value] of ledger.store.scan({ gte: prefix, lt: `${prefix}\uffff` })) {
      const seq =
        kind === "batch"
          ? (JSON.parse(value.toString("utf8")) as { header: { firstSeq: number } }).header.firstSeq
          : parseSeqPart(key.slice(prefix.length));
      out.push({ kind, key, seq });
    }
  }
  return out;
}

/** The dotted path of the first field that differs between two JSON texts, or "unparseable". */
function changedField(original: Buffer, tampered: Buffer): string {
  let a: unknown;
  let b: unknown;
  try {
    a = JSON.parse(original.toString("utf8"));
    b = JSON.parse(tampered.toString("utf8"));
  } catch {
    return "unparseable";
  }
  const walk = (x: unknown, y: unknown, at: string): string | undefined => {
    if (typeof x === "object" && x !== null && typeof y === "object" && y !== null) {
      const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
      for (const k of keys) {
        const found = walk(
          (x as Record<string, unknown>)[k],
          (y as Record<string, unknown>)[k],
          at ? `${at}.${k}` : k,
        );
        if (found !== undefined) return found;
      }
      return undefined;
    }
    return Object.is(x, y) ? undefined : at;
  };
  return walk(a, b, "") ?? "unchanged";
}

/** The audit's first finding on the tampered log, or undefined when it finds nothing. */
async function audit(
  ledger: Ledger,
  provider: JsonRpcProvider,
  contract: string,
): Promise<string | undefined> {
  try {
    const report = await auditLog(ledger.store, {
      chain: { reads: new ChainReads(provider), contract },
      maxFindings: 3,
    });
    return report.ok ? undefined : `audit: ${report.findings[0]?.kind ?? "not ok"}`;
  } catch (error) {
    return `audit threw: ${(error as Error).name}`;
  }
}

/** Errors the proof path answered without a code of ours: a parser's, not the ledger's. */
const untyped = new Map<string, number>();

/** Why the tampered log is caught by its proof, or undefined when it is not. */
async function detect(
  ledger: Ledger,
  provider: JsonRpcProvider,
  seq: number,
  trust: TrustPolicy,
): Promise<string | undefined> {
  let bundle;
  try {
    bundle = await ledger.prove(seq);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== "string") {
      const name = (error as Error).name;
      untyped.set(name, (untyped.get(name) ?? 0) + 1);
    }
    return `prove refused: ${typeof code === "string" ? code : (error as Error).name}`;
  }
  const verdict = await verifyBundle(bundle, provider, { trust, confirmations: 1 });
  return verdict.ok ? undefined : `verifier: ${verdict.code ?? verdict.status}`;
}

export async function runTampering(opts: TamperingOptions): Promise<ScenarioResult> {
  const report = new ScenarioReport("tampering", `${opts.tamperings} byte changes`);
  const log = opts.log ?? (() => undefined);
  await withTempDir("tamper", async (dataDir) => {
    const chain = await startExternalChain(dataDir);
    let ledger: Ledger | undefined;
    const provider = new JsonRpcProvider(chain.node.url, undefined, { staticNetwork: true });
    try {
      const built = await buildLog(dataDir, chain.env, chain.node.url, opts.events);
      ledger = await Ledger.open({
        location: path.join(dataDir, "ledger"),
        receiptSigner: new Wallet(RECEIPT_SIGNER_KEY),
        batchMaxEvents: 1_000_000,
        batchMaxWaitMs: 3_600_000,
        anchorDeadlineMs: 3_600_000,
        groupCommitMaxEvents: 4_096,
      });
      // The registry this scenario deployed, and its one log: what a regulator would list.
      const trust = policyFor({
        chainId: Number((await provider.getNetwork()).chainId),
        contract: chain.contract,
        logIds: chain.logId,
      });
      const all = await targets(ledger);
      const baseline = await Promise.all(
        [0, Math.floor(ledger.nextSeq / 2), ledger.nextSeq - 1].map((s) =>
          detect(ledger!, provider, s, trust),
        ),
      );
      baseline.push(await audit(ledger, provider, chain.contract));
      if (baseline.some((b) => b !== undefined))
        throw new Error(`untampered log does not verify: ${baseline.join(", ")}`);
      const byKind = new Map<Kind, { tried: number; caught: number; audit: number }>();
      const auditReasons = new Map<string, number>();
      const reasons = new Map<string, number>();
      const missed: string[] = [];
      untyped.clear();
      for (let i = 0; i < opts.tamperings; i++) {
        // Kind first, then a value of that kind: batch records are few next to events.
        const ofKind = all.filter((t) => t.kind === KINDS[i % KINDS.length]);
        const target = ofKind[randomInt(0, ofKind.length - 1)]!;
        const original = (await ledger.store.getRaw(target.key))!;
        const offset = randomInt(0, original.length - 1);
        const tampered = Buffer.from(original);
        tampered[offset] = original[offset]! ^ randomInt(1, 255);
        await ledger.store.write([{ type: "put", key: target.key, value: tampered }], false);
        let why: string | undefined;
        let audited: string | undefined;
        try {
          audited = await audit(ledger, provider, chain.contract);
          why = await detect(ledger, provider, target.seq, trust);
        } finally {
          await ledger.store.write([{ type: "put", key: target.key, value: original }], false);
        }
        const tally = byKind.get(target.kind) ?? { tried: 0, caught: 0, audit: 0 };
        tally.tried++;
        if (audited !== undefined) {
          tally.audit++;
          const kind = audited.replace(/^audit: /, "");
          auditReasons.set(kind, (auditReasons.get(kind) ?? 0) + 1);
        }
        if (why !== undefined || audited !== undefined) {
          tally.caught++;
          if (why !== undefined) reasons.set(why, (reasons.get(why) ?? 0) + 1);
        } else {
          const field = target.kind === "batch" ? changedField(original, tampered) : "";
          missed.push(`${target.key}@${offset} ${field}`);
        }
        byKind.set(target.kind, tally);
        if ((i + 1) % 100 === 0)
          log(`tampering ${i + 1}/${opts.tamperings}: ${missed.length} missed`);
      }
      const after = await Promise.all(
        [0, ledger.nextSeq - 1].map((s) => detect(ledger!, provider, s, trust)),
      );
      after.push(await audit(ledger, provider, chain.contract));
      const kinds = [...byKind].map(([k, t]) => `${k} ${t.caught}/${t.tried}`).join(", ");
      const auditKinds = [...byKind].map(([k, t]) => `${k} ${t.audit}/${t.tried}`).join(", ");
      const tally = (m: Map<string, number>): string =>
        [...m]
          .sort((a, b) => b[1] - a[1])
          .map(([r, n]) => `${r} ${n}`)
          .join(", ");
      report.check(
        "every single-byte tampering of a body, an entry or any field of a batch record is reported (audit or proof)",
        missed.length === 0,
        `${built}; caught by audit or proof: ${kinds}${missed.length ? `; missed: ${missed.slice(0, 3).join("; ")}` : ""}`,
      );
      report.check(
        "what the audit (auditLog with the chain) caught",
        true,
        `${auditKinds}; ${tally(auditReasons)}`,
      );
      report.check(
        "what the proof path (ledger.prove + verifyBundle) caught",
        true,
        tally(reasons),
      );
      const untypedTotal = [...untyped.values()].reduce((a, b) => a + b, 0);
      report.check(
        "the proof path refuses damaged records with a typed error (no SyntaxError or TypeError)",
        untypedTotal === 0,
        untypedTotal === 0 ? "every refusal had a code" : `untyped: ${tally(untyped)}`,
      );
      report.check(
        "the restored log verifies again",
        after.every((a) => a === undefined),
        after.every((a) => a === undefined)
          ? "first and last event verify, the audit is clean"
          : after.join(", "),
      );
    } finally {
      provider.destroy();
      await ledger?.close();
      await chain.close();
    }
  });
  return report.finish();
}

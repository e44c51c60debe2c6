/**
 * Writes the subject-index vectors (history.json, maps.json, completeness.json) next to this file.
 * Run: node --import tsx test/vectors/subject-index/generate.ts
 * Every broken case states the error it must produce; generation fails if the code disagrees,
 * so a regenerated file cannot silently bless a behaviour change.
 */
import { writeFileSync } from "node:fs";
import { sha256 } from "../../../services/core/hash.ts";
import { toHex, utf8 } from "../../../services/core/hex.ts";
import type { Hex } from "../../../services/core/hex.ts";
import {
  EMPTY_ROOT,
  MemoryNodeStore,
  historyChain,
  historyValueHash,
  internalNodeHash,
  keyBit,
  leafNodeHash,
} from "../../../services/core/subject-index.ts";
import {
  SubjectIndexProofError,
  subjectIndexProofFromJson,
  subjectIndexProofToJson,
  verifyCompleteness,
  verifySubjectIndexProof,
} from "../../../services/core/subject-index-proof.ts";
import type { SubjectIndexProofJson } from "../../../services/core/subject-index-proof.ts";

const dir = new URL("./", import.meta.url);

function keyWith(first: number, last: number): Uint8Array {
  const key = new Uint8Array(32);
  key[0] = first;
  key[31] = last;
  return key;
}

const leafHashOf = (label: string) => sha256(Uint8Array.of(0), utf8(label));

// ---------------------------------------------------------------------------------------------
// history.json

const historyCases: unknown[] = [];
function history(desc: string, events: Array<{ seq: number; leafHash: Uint8Array }>) {
  const json = events.map((e) => ({ seq: e.seq, leafHash: toHex(e.leafHash) }));
  try {
    const { count, chain } = historyChain(events);
    historyCases.push({
      desc,
      events: json,
      count,
      chain: toHex(chain),
      valueHash: toHex(historyValueHash(count, chain)),
    });
  } catch {
    historyCases.push({ desc, events: json, wantErr: "BAD_HISTORY" });
  }
}
history("no events: count 0, chain of 32 zero bytes", []);
history("one event at seq 0", [{ seq: 0, leafHash: leafHashOf("e0") }]);
history("three events with gaps in seq (other subjects' events in between)", [
  { seq: 3, leafHash: leafHashOf("e3") },
  { seq: 17, leafHash: leafHashOf("e17") },
  { seq: 4096, leafHash: leafHashOf("e4096") },
]);
history("seq above 2^32 (uint64be uses both halves)", [
  { seq: 2 ** 32 + 5, leafHash: leafHashOf("big") },
]);
history("unsorted seqs", [
  { seq: 5, leafHash: leafHashOf("a") },
  { seq: 4, leafHash: leafHashOf("b") },
]);
history("the same seq twice", [
  { seq: 5, leafHash: leafHashOf("a") },
  { seq: 5, leafHash: leafHashOf("a") },
]);

// ---------------------------------------------------------------------------------------------
// maps.json

interface Entry {
  key: Uint8Array;
  valueHash: Uint8Array;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SubjectIndexProofError) return err.code;
    throw err;
  }
  return undefined;
}

const mapCases: unknown[] = [];

async function map(
  desc: string,
  entries: Entry[],
  queries: Array<[string, Uint8Array]>,
  broken: (
    prove: (key: Uint8Array) => Promise<SubjectIndexProofJson>,
  ) => Promise<Array<[string, Uint8Array, unknown, string]>>,
) {
  const store = new MemoryNodeStore();
  await store.update(entries);
  const root = store.root;
  const prove = async (key: Uint8Array) => subjectIndexProofToJson(await store.prove(key));
  const proofs: unknown[] = [];
  for (const [what, key] of queries) {
    const proof = await store.prove(key);
    const claim = verifySubjectIndexProof(root, key, proof);
    proofs.push({
      desc: what,
      key: toHex(key),
      proof: subjectIndexProofToJson(proof),
      want: claim.member
        ? { member: true, valueHash: toHex(claim.valueHash) }
        : { member: false },
    });
  }
  for (const [what, key, proof, wantErr] of await broken(prove)) {
    const got = codeOf(() =>
      verifySubjectIndexProof(root, key, subjectIndexProofFromJson(proof)),
    );
    if (got !== wantErr) throw new Error(`${desc} / ${what}: want ${wantErr}, got ${got}`);
    proofs.push({ desc: what, key: toHex(key), proof, wantErr });
  }
  mapCases.push({
    desc,
    entries: entries.map((e) => ({ key: toHex(e.key), valueHash: toHex(e.valueHash) })),
    root: toHex(root),
    proofs,
  });
  return root;
}

const flipLastByte = (hex: Hex): Hex => {
  const last = parseInt(hex.slice(-2), 16) ^ 1;
  return `${hex.slice(0, -2)}${last.toString(16).padStart(2, "0")}` as Hex;
};

const subjects = Array.from({ length: 8 }, (_, i) => sha256(utf8(`vector subject ${i}`)));
const histories = subjects.map((_, i) =>
  Array.from({ length: i % 4 }, (_, j) => ({ seq: 10 * j + i, leafHash: leafHashOf(`s${i}e${j}`) })),
);
const present = subjects.flatMap((key, i) => {
  if (histories[i]!.length === 0) return [];
  const { count, chain } = historyChain(histories[i]!);
  return [{ key, valueHash: historyValueHash(count, chain) }];
});
const subjectStore = new MemoryNodeStore();
await subjectStore.update(present);

const A = keyWith(0x00, 0);
const B = keyWith(0x40, 0);
const C = keyWith(0x80, 0);
const value = (key: Uint8Array) => sha256(utf8("value"), key);

await map(
  "empty map: root is 32 zero bytes",
  [],
  [["any key is absent: empty root, no siblings", A]],
  async () => [
    ["a leaf claimed in the empty map", A, { siblings: [], leaf: { key: toHex(A), valueHash: toHex(value(A)) } }, "ROOT_MISMATCH"],
    ["an empty subtree below an empty sibling", A, { siblings: [toHex(EMPTY_ROOT)], leaf: null }, "NON_CANONICAL"],
  ],
);

await map(
  "one subject: the root is its leaf",
  [{ key: A, valueHash: value(A) }],
  [
    ["the subject itself", A],
    ["another key: the lone leaf at depth 0 is on every path", C],
  ],
  async (prove) => [
    ["valueHash altered", A, { ...(await prove(A)), leaf: { key: toHex(A), valueHash: flipLastByte(toHex(value(A))) } }, "ROOT_MISMATCH"],
    ["claimed empty", A, { siblings: [], leaf: null }, "ROOT_MISMATCH"],
  ],
);

const rootABC = await map(
  "three subjects with short prefixes: 00…, 01…, 1… (leaves at depths 2, 2, 1)",
  [A, B, C].map((key) => ({ key, valueHash: value(key) })),
  [
    ["leaf at depth 2 (00…)", A],
    ["leaf at depth 2 (01…)", B],
    ["leaf at depth 1 (1…)", C],
    ["absent 11…: another leaf (1…) ends the path at depth 1", keyWith(0xc0, 0)],
    ["absent 001…: leaf 00… ends the path at depth 2", keyWith(0x20, 0)],
  ],
  async (prove) => {
    const pa = await prove(A);
    const pc = await prove(C);
    const proveSubject = async (key: Uint8Array) =>
      subjectIndexProofToJson(await subjectStore.prove(key));
    return [
      ["sibling byte flipped", A, { ...pa, siblings: [flipLastByte(pa.siblings[0]!), pa.siblings[1]] }, "ROOT_MISMATCH"],
      ["truncated path (root-level sibling dropped)", A, { ...pa, siblings: pa.siblings.slice(0, 1) }, "ROOT_MISMATCH"],
      ["extra sibling appended", A, { ...pa, siblings: [...pa.siblings, toHex(sha256(A))] }, "ROOT_MISMATCH"],
      ["siblings in the wrong order (top-down)", A, { ...pa, siblings: [...pa.siblings].reverse() }, "ROOT_MISMATCH"],
      ["present subject claimed empty (forged non-membership)", A, { ...pa, leaf: null }, "ROOT_MISMATCH"],
      ["another subject's leaf off this key's path", A, pc, "KEY_MISMATCH"],
      [
        "leaf/node confusion: internal node 0… (children leafA, leafB) presented as a leaf",
        leafNodeHash(A, value(A)),
        { siblings: [pa.siblings[1]], leaf: { key: toHex(leafNodeHash(A, value(A))), valueHash: pa.siblings[0] } },
        "ROOT_MISMATCH",
      ],
      ["a proof from another map", subjects[1]!, await proveSubject(subjects[1]!), "ROOT_MISMATCH"],
      ["uppercase hex", A, { ...pa, siblings: pa.siblings.map((s) => `0x${s.slice(2).toUpperCase()}`) }, "BAD_PROOF_SHAPE"],
      ["sibling of 31 bytes", A, { ...pa, siblings: [pa.siblings[0]!.slice(0, -2), pa.siblings[1]] }, "BAD_PROOF_SHAPE"],
      ["leaf without valueHash", A, { siblings: pa.siblings, leaf: { key: toHex(A) } }, "BAD_PROOF_SHAPE"],
      ["siblings missing", A, { leaf: pa.leaf }, "BAD_PROOF_SHAPE"],
      ["unknown field", A, { ...pa, depth: 2 }, "BAD_PROOF_SHAPE"],
      ["257 siblings", A, { siblings: Array(257).fill(pa.siblings[0]), leaf: pa.leaf }, "BAD_PROOF_SHAPE"],
    ];
  },
);

const D0 = keyWith(0x00, 0);
const D1 = keyWith(0x00, 1);
await map(
  "two subjects sharing 255 bits: leaves at depth 256, a chain of internal nodes above",
  [D0, D1, C].map((key) => ({ key, valueHash: value(key) })),
  [
    ["leaf at depth 256, 256 siblings", D1],
    ["absent key sharing 254 bits: empty subtree at depth 255", keyWith(0x00, 2)],
  ],
  async (prove) => {
    const p = await prove(D1);
    return [
      ["the member's own leaf presented for its twin key", D0, { ...p, siblings: p.siblings }, "KEY_MISMATCH"],
      ["the twin's leaf moved up next to an empty sibling", D1, { ...p, siblings: p.siblings.slice(1) }, "NON_CANONICAL"],
    ];
  },
);

const rootSubjects = await map(
  "eight pseudo-random subjects, six with histories (values are history value hashes)",
  present,
  subjects.map((key, i): [string, Uint8Array] => [
    `vector subject ${i} (${histories[i]!.length} events)`,
    key,
  ]),
  async (prove) => [
    ["membership proof with its valueHash swapped for another subject's", subjects[3]!, { ...(await prove(subjects[3]!)), leaf: { key: toHex(subjects[3]!), valueHash: toHex(present[0]!.valueHash) } }, "ROOT_MISMATCH"],
  ],
);
// ---------------------------------------------------------------------------------------------
// completeness.json

const completenessCases: unknown[] = [];
const store = subjectStore;
async function completeness(
  desc: string,
  subjectTag: Uint8Array,
  events: Array<{ seq: number; leafHash: Uint8Array }>,
  want: { ok: true; count: number } | string,
  override?: { indexRoot?: Uint8Array; proof?: unknown },
) {
  const indexRoot = override?.indexRoot ?? rootSubjects;
  const proof = override?.proof ?? subjectIndexProofToJson(await store.prove(subjectTag));
  const result = verifyCompleteness({
    indexRoot,
    subjectTag,
    events,
    proof: proof as SubjectIndexProofJson,
  });
  const got = result.ok ? result : result.code;
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${desc}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
  completenessCases.push({
    desc,
    indexRoot: toHex(indexRoot),
    subjectTag: toHex(subjectTag),
    events: events.map((e) => ({ seq: e.seq, leafHash: toHex(e.leafHash) })),
    proof,
    ...(typeof want === "string" ? { wantErr: want } : { want }),
  });
}
const s3 = subjects[3]!;
const h3 = histories[3]!;
await completeness("full history of 3 events", s3, h3, { ok: true, count: 3 });
await completeness("full history shown newest first", s3, [...h3].reverse(), { ok: true, count: 3 });
await completeness("one event left out", s3, [h3[0]!, h3[2]!], "INCOMPLETE_HISTORY");
await completeness("an event added", s3, [...h3, { seq: 99, leafHash: leafHashOf("x") }], "INCOMPLETE_HISTORY");
await completeness("an event's leafHash swapped", s3, [h3[0]!, h3[1]!, { ...h3[2]!, leafHash: leafHashOf("x") }], "INCOMPLETE_HISTORY");
await completeness("no events shown for a subject that has some", s3, [], "INCOMPLETE_HISTORY");
await completeness("the same event shown twice", s3, [...h3, h3[0]!], "BAD_HISTORY");
await completeness("subject with no events, none shown", subjects[0]!, [], { ok: true, count: 0 });
await completeness("subject with no events, one shown", subjects[0]!, [h3[0]!], "UNEXPECTED_EVENTS");
await completeness("indexRoot of another batch", s3, h3, "ROOT_MISMATCH", { indexRoot: rootABC });
await completeness("another subject's proof", s3, h3, "KEY_MISMATCH", {
  proof: subjectIndexProofToJson(await store.prove(subjects[2]!)),
});
{
  // A root that hashes but that no map has: a leaf below the root next to an empty subtree.
  const { count, chain } = historyChain(h3);
  const valueHash = historyValueHash(count, chain);
  const leaf = leafNodeHash(s3, valueHash);
  const fakeRoot =
    keyBit(s3, 0) === 0 ? internalNodeHash(leaf, EMPTY_ROOT) : internalNodeHash(EMPTY_ROOT, leaf);
  const proof = { siblings: [toHex(EMPTY_ROOT)], leaf: { key: toHex(s3), valueHash: toHex(valueHash) } };
  await completeness("non-canonical shape: leaf next to an empty sibling", s3, h3, "NON_CANONICAL", {
    indexRoot: fakeRoot,
    proof,
  });
}
await completeness("indexRoot of 31 bytes", s3, h3, "BAD_INPUT", {
  indexRoot: rootSubjects.subarray(1),
});
await completeness("malformed proof JSON", s3, h3, "BAD_PROOF_SHAPE", { proof: { siblings: "none", leaf: null } });

const write = (name: string, value: unknown) =>
  writeFileSync(new URL(name, dir), JSON.stringify(value, null, 2) + "\n");
write("history.json", historyCases);
write("maps.json", mapCases);
write("completeness.json", completenessCases);
console.log(
  `wrote ${historyCases.length} history, ${mapCases.length} map, ${completenessCases.length} completeness cases`,
);

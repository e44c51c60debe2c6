import { expect } from "chai";
import { ErrorFragment, EventFragment, Fragment, FunctionFragment, Interface } from "ethers";
import { REGISTRY_ABI } from "../../../services/chain/registry-abi.ts";
import { readArtifact, registryInterface } from "../../../services/chain/registry-client.ts";

describe("registry ABI (hand-written, checked against the compiled artifact)", () => {
  let compiled: Interface;

  before(async () => {
    // `hardhat build` writes the artifact (npm test builds it first).
    compiled = new Interface((await readArtifact()).abi);
  });

  it("every function, event and error it lists exists in the artifact with the same full signature", () => {
    expect(REGISTRY_ABI.length).to.be.greaterThan(30);
    for (const text of REGISTRY_ABI) {
      const ours = Fragment.from(text);
      let theirs: Fragment | null = null;
      if (FunctionFragment.isFragment(ours)) theirs = compiled.getFunction(ours.selector);
      else if (EventFragment.isFragment(ours)) theirs = compiled.getEvent(ours.topicHash);
      else if (ErrorFragment.isFragment(ours)) theirs = compiled.getError(ours.selector);
      expect(theirs, text).to.not.equal(null);
      // "full" includes parameter and tuple component names, indexed flags, mutability, outputs.
      expect(ours.format("full"), text).to.equal(theirs?.format("full"));
    }
  });

  it("lists every custom error of the contract, so every revert decodes into a typed error", () => {
    const errors: string[] = [];
    compiled.forEachError((e) => errors.push(e.format("sighash")));
    for (const e of errors) expect(registryInterface.getError(e), e).to.not.equal(null);
  });

  it("lists every event and every non-role function the service or verifier uses", () => {
    for (const name of [
      "registerLog",
      "anchorBatch",
      "rotateAnchorer",
      "rotateReceiptSigner",
      "pause",
      "unpause",
      "headerHash",
      "batchCommitment",
      "isAnchored",
      "logHead",
      "getLog",
      "isLogRegistered",
      "signerPeriod",
      "verifyInclusion",
    ]) {
      expect(registryInterface.getFunction(name), name).to.not.equal(null);
    }
    const events: string[] = [];
    compiled.forEachEvent((e) => events.push(e.name));
    for (const e of events.filter((n) => !n.startsWith("Role"))) {
      if (e === "Paused" || e === "Unpaused") continue; // OpenZeppelin's, not read by the service
      expect(registryInterface.getEvent(e), e).to.not.equal(null);
    }
  });
});

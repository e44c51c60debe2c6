/**
 * Creates a new random key as an encrypted JSON keystore (Web3 Secret Storage, the format geth,
 * Clef and ethers read), for ANCHORER_KEYSTORE / RECEIPT_KEYSTORE.
 *
 *   KEYSTORE_PASSWORD=… node --import tsx scripts/new-keystore.ts <file>
 *
 * Prints the address (register it on-chain, fund the anchorer); never prints the key.
 */
import { Wallet } from "ethers";
import { writeFile } from "node:fs/promises";

const file = process.argv[2];
const password = process.env.KEYSTORE_PASSWORD;
if (!file || !password) {
  process.stderr.write(
    "usage: KEYSTORE_PASSWORD=… node --import tsx scripts/new-keystore.ts <file>\n",
  );
  process.exit(2);
}
const wallet = Wallet.createRandom();
await writeFile(file, await wallet.encrypt(password), { flag: "wx", mode: 0o600 });
process.stdout.write(`${wallet.address}\n`);

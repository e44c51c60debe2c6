import { expect } from "chai";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { makeTreePrivate, writePrivateFile } from "../../services/private-files.ts";

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe("private files under DATA_DIR", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), "veritrail-private-"));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("creates DATA_DIR 0700 and makes an existing tree 0700/0600, without following links", async () => {
    const data = path.join(root, "data");
    await makeTreePrivate(data);
    expect(await mode(data)).to.equal(0o700);

    await mkdir(path.join(data, "ledger"), { mode: 0o755 });
    await chmod(path.join(data, "ledger"), 0o755);
    await writeFile(path.join(data, "ledger", "CURRENT"), "x", { mode: 0o644 });
    await writeFile(path.join(data, "deployment.json"), "{}", { mode: 0o664 });
    await writeFile(path.join(data, "run.sh"), "", { mode: 0o755 });
    const outside = path.join(root, "outside.txt");
    await writeFile(outside, "not ours", { mode: 0o644 });
    await chmod(outside, 0o644);
    await symlink(outside, path.join(data, "link"));
    await chmod(data, 0o755);

    await makeTreePrivate(data);
    expect(await mode(data)).to.equal(0o700);
    expect(await mode(path.join(data, "ledger"))).to.equal(0o700);
    expect(await mode(path.join(data, "ledger", "CURRENT"))).to.equal(0o600);
    expect(await mode(path.join(data, "deployment.json"))).to.equal(0o600);
    expect(await mode(path.join(data, "run.sh"))).to.equal(0o700 & 0o600);
    expect(await mode(outside)).to.equal(0o644);
  });

  it("writes a file 0600 atomically, replacing the old content", async () => {
    const file = path.join(root, "deployment.json");
    await writeFile(file, "old", { mode: 0o644 });
    await chmod(file, 0o644);
    await writePrivateFile(file, '{"contract":"0x"}\n');
    expect(await mode(file)).to.equal(0o600);
    expect(await readFile(file, "utf8")).to.equal('{"contract":"0x"}\n');
  });
});

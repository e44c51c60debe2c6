import { expect } from "chai";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const VERIFIER = path.join(ROOT, "services/verifier");
const CORE = path.join(ROOT, "services/core");
/** Packages the verifier (and the browser bundle) may use, directly or through core. */
const ALLOWED_PACKAGES = new Set(["ethers"]);

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Every module specifier of static imports, re-exports and dynamic imports. */
export function importSpecifiers(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /^\s*import\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm,
    /^\s*export\s+(?:type\s+)?(?:\*|\{[^}]*\})\s*(?:as\s+\w+\s+)?from\s+["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[1]!);
  return specs;
}

describe("services/verifier imports only services/core and ethers", () => {
  it("the import parser sees every kind of import", () => {
    const specs = importSpecifiers(
      [
        'import { a } from "./a.ts";',
        'import type { B } from "../store/b.ts";',
        "import * as c from 'ethers';",
        'import "./side-effect.ts";',
        'export { d } from "../ledger/d.ts";',
        'const e = await import("../api/e.ts");',
        'import {\n  f,\n  g,\n} from "../chain/f.ts";',
      ].join("\n"),
    );
    expect(specs.sort()).to.deep.equal(
      [
        "./a.ts",
        "../store/b.ts",
        "ethers",
        "./side-effect.ts",
        "../ledger/d.ts",
        "../api/e.ts",
        "../chain/f.ts",
      ].sort(),
    );
  });

  it("every file under services/verifier (recursively)", async () => {
    const files = await sourceFiles(VERIFIER);
    expect(files.length).to.be.greaterThan(3);
    const offenders: string[] = [];
    for (const file of files) {
      for (const spec of importSpecifiers(await readFile(file, "utf8"))) {
        if (spec.startsWith(".")) {
          const target = path.resolve(path.dirname(file), spec);
          const inside = (dir: string) => target.startsWith(dir + path.sep);
          if (!inside(VERIFIER) && !inside(CORE))
            offenders.push(`${path.relative(ROOT, file)} → ${spec}`);
        } else if (!ALLOWED_PACKAGES.has(spec)) {
          offenders.push(`${path.relative(ROOT, file)} → ${spec}`);
        }
      }
    }
    expect(offenders).to.deep.equal([]);
  });

  it("core, which the verifier pulls in, does no I/O either (no node: modules, no store/chain)", async () => {
    const offenders: string[] = [];
    for (const file of await sourceFiles(CORE)) {
      for (const spec of importSpecifiers(await readFile(file, "utf8"))) {
        const relativeOutside =
          spec.startsWith(".") && !path.resolve(path.dirname(file), spec).startsWith(CORE);
        // *.node.ts are the Node halves of package.json imports (#sha256, #ecdsa); the browser
        // build uses the other halves.
        const nodeBuiltin = spec.startsWith("node:") && !file.endsWith(".node.ts");
        if (relativeOutside || nodeBuiltin)
          offenders.push(`${path.relative(ROOT, file)} → ${spec}`);
      }
    }
    expect(offenders).to.deep.equal([]);
  });
});

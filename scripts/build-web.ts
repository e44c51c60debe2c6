/**
 * Bundles the browser pages: web/verify.ts → web/dist/verify.js, web/patient.ts →
 * web/dist/patient.js, web/regulator.ts → web/dist/regulator.js and the regulator console's
 * workers web/regulator/worker.ts → web/dist/regulator-worker.js and web/regulator/verifier.ts
 * → web/dist/regulator-verifier.js (served at /assets/), and copies the stylesheets web/*.css
 * beside them.
 * esbuild with the browser platform and the "browser" condition, so package.json `imports`
 * picks services/core/sha256.browser.ts (@noble) instead of the Node/OpenSSL one, and
 * services/core/ecdsa.browser.ts (ethers) instead of the native libsecp256k1 signer.
 *
 *   node --import tsx scripts/build-web.ts
 */
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");
export const WEB_DIST = path.join(ROOT, "web/dist");

export interface WebBuildResult {
  outfile: string;
  bytes: number;
  inputs: string[];
}

/** The pages: each web/<name>.ts is bundled to web/dist/<name>.js. */
export const WEB_PAGES = ["verify", "patient", "regulator"] as const;

/** Scripts that are not pages: web workers, bundled the same way (dist name → source). */
export const WEB_WORKERS = {
  "regulator-worker": "web/regulator/worker.ts",
  "regulator-verifier": "web/regulator/verifier.ts",
} as const;

/** Stylesheets served at /assets/<name>. */
const STYLESHEETS = ["pages.css", "regulator.css"];

/** Builds every page; answers with the verify page's result (and each page's in `pages`). */
export async function buildWeb(
  opts: { minify?: boolean } = {},
): Promise<WebBuildResult & { pages: WebBuildResult[] }> {
  const pages = await Promise.all([
    ...WEB_PAGES.map((name) => buildPage(name, opts)),
    ...Object.entries(WEB_WORKERS).map(([name, entry]) => bundle(name, entry, opts)),
  ]);
  // The stylesheets are served beside the scripts, at /assets/<name>.css.
  await mkdir(WEB_DIST, { recursive: true });
  for (const css of STYLESHEETS)
    await copyFile(path.join(ROOT, "web", css), path.join(WEB_DIST, css));
  return { ...pages[0]!, pages };
}

export function buildPage(
  name: (typeof WEB_PAGES)[number],
  opts: { minify?: boolean } = {},
): Promise<WebBuildResult> {
  return bundle(name, `web/${name}.ts`, opts);
}

async function bundle(
  name: string,
  entry: string,
  opts: { minify?: boolean },
): Promise<WebBuildResult> {
  const outfile = path.join(WEB_DIST, `${name}.js`);
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, entry)],
    outfile,
    bundle: true,
    platform: "browser",
    conditions: ["browser"],
    format: "esm",
    target: ["es2022"],
    minify: opts.minify ?? true,
    sourcemap: true,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  const inputs = Object.keys(result.metafile.inputs);
  // The verifier must never reach the Node hash or signer (*.node.ts) or anything with I/O in
  // the browser.
  const forbidden = inputs.filter(
    (p) =>
      p.endsWith(".node.ts") ||
      /services\/(store|api|ledger|chain)\//.test(p) ||
      p.startsWith("node:"),
  );
  if (forbidden.length > 0) throw new Error(`the browser bundle pulls in ${forbidden.join(", ")}`);
  const output = result.metafile.outputs[path.relative(ROOT, outfile)];
  return { outfile, bytes: output?.bytes ?? 0, inputs };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { pages } = await buildWeb();
  for (const { outfile, bytes } of pages)
    console.log(`${path.relative(ROOT, outfile)}: ${(bytes / 1024).toFixed(0)} KiB`);
}

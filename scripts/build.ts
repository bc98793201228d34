import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

/**
 * Each entry becomes one self-contained ESM file that runs with `node <file>` and no node_modules:
 * what the container image and the EC2 instance hold. CommonJS dependencies (pino) call `require`
 * for Node built-ins, which plain ESM lacks, hence the createRequire banner.
 */
const { metafile } = await build({
  entryPoints: {
    'random-number': 'functions/random-number/server.ts',
    'ec2-agent': 'ec2-agent/main.ts',
  },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  // ESM builds first where a package ships both: esbuild can then drop what is never imported (the
  // AWS SDK marks itself side-effect free; its CJS build cannot be shaken, and the agent would be larger).
  mainFields: ['module', 'main'],
  target: 'node20',
  format: 'esm',
  minify: true,
  // At the end of the file: the agent travels to EC2 as that one file, its notices with it.
  legalComments: 'eof',
  metafile: true,
  // Loaded at run time only at a terminal in a checkout (lib/logger.ts); never bundled.
  external: ['pino-pretty'],
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
  logLevel: 'warning',
});

// Most packages mark no comment as legal, yet their licences ask that their notice go with every copy:
// beside each bundle, the licence and notice files of every package it holds code from (the image
// ships the service's).
for (const [output, { inputs }] of Object.entries(metafile.outputs)) {
  const dirs = Object.keys(inputs).map((input) => /^.*node_modules\/(@[^/]+\/)?[^/]+/.exec(input)?.[0]);
  const notices = [...new Set(dirs)].flatMap((dir) => {
    if (!dir) return [];
    const { name, version, license } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const files = readdirSync(dir).filter((f) => /^(licen[cs]e|copying|notice)/i.test(f));
    const texts = files.map((f) => readFileSync(join(dir, f), 'utf8').trim());
    return `${name} ${version} (${license})\n\n${texts.join('\n\n') || '(the package ships no licence file)'}\n`;
  });
  writeFileSync(output.replace(/\.mjs$/, '.licenses.txt'), notices.sort().join(`\n${'-'.repeat(78)}\n\n`));
}

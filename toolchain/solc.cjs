#!/usr/bin/env node
// A `solc` command line on top of the official solc-js build from npm.
//
// Native solc binaries cannot be downloaded on every machine this project targets, but the
// npm package always can. forge and py-solc-x (used by ape-solidity) only need two entry
// points of the native CLI, so this file answers exactly those:
//   solc --version
//   solc --standard-json [--base-path P] [--include-path P]... [--allow-paths P,...]
// Imports that the caller did not inline are resolved against the base path, the include
// paths and the working directory, the way the native compiler does.
"use strict";
const fs = require("fs");
const path = require("path");

function fail(message) {
  process.stderr.write(`solc (solc-js wrapper): ${message}\n`);
  process.exit(1);
}

function loadSolc() {
  try {
    return require("solc");
  } catch (err) {
    fail(`cannot load the npm package "solc" (${err.message}); run the project bootstrap first`);
  }
}

function parseArgs(argv) {
  const opts = { mode: null, basePath: null, includePaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const takeValue = () => {
      if (arg.includes("=")) return arg.slice(arg.indexOf("=") + 1);
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === "--version" || arg === "-v") opts.mode = "version";
    else if (arg === "--standard-json") opts.mode = "standard-json";
    else if (arg.startsWith("--base-path")) opts.basePath = takeValue();
    else if (arg.startsWith("--include-path")) opts.includePaths.push(takeValue());
    else if (arg.startsWith("--allow-paths")) takeValue(); // every readable path is allowed
    else if (arg === "-" || arg === "--pretty-json") continue;
    else fail(`unsupported argument "${arg}" (only --version and --standard-json are provided)`);
  }
  return opts;
}

function makeImportResolver(opts) {
  // The checkout's node_modules is searched last so that "@openzeppelin/contracts/..." imports
  // resolve for callers that pass no remapping (ape-solidity with npm packages).
  const projectRoot = path.resolve(__dirname, "..");
  const roots = [
    opts.basePath,
    ...opts.includePaths,
    process.cwd(),
    path.join(projectRoot, "node_modules"),
  ].filter(Boolean);
  return function findImports(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, "utf8") };
      } catch (_) {
        // try the next root
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = loadSolc();
  if (opts.mode === "version") {
    process.stdout.write(
      `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`
    );
    return;
  }
  if (opts.mode !== "standard-json") fail("pass --version or --standard-json");
  const input = fs.readFileSync(0, "utf8");
  const output = solc.compile(input, { import: makeImportResolver(opts) });
  process.stdout.write(output);
}

main();

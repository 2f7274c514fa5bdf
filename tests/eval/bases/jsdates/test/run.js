'use strict';
// The project's test runner: loads every *.test.js in this directory; each
// calls test(name, fn) or test.skip(name, fn).  Prints one line a test and
// exits 1 when one fails.
const fs = require('fs');
const path = require('path');

const tests = [];
global.test = (name, fn) => tests.push({ name, fn });
global.test.skip = (name, fn) => tests.push({ name, fn, skip: true });

for (const f of fs.readdirSync(__dirname).sort()) {
  if (f.endsWith('.test.js')) require(path.join(__dirname, f));
}
let failed = 0, passed = 0, skipped = 0;
for (const t of tests) {
  if (t.skip) { skipped++; console.log('skip ' + t.name); continue; }
  try { t.fn(); passed++; console.log('ok   ' + t.name); }
  catch (e) { failed++; console.log('FAIL ' + t.name + ': ' + String(e.message).split('\n')[0]); }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed ? 1 : 0);

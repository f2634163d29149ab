// Runs every exported ONNX model written by the C++ tests ("[onnx_cases]") under ONNX Runtime,
// an implementation independent of LibTorch and of our own graph evaluator, and compares its
// logits with the C++ network's: an export is right only if another runtime computes the same.
//   node check_onnxruntime.js <node_modules directory> <cases directory>
// Each case directory holds model.onnx, input.bin and expected.bin (little-endian float32) and
// case.json (shapes, tolerance); <cases directory>/cases.json lists them. Exits 1 with what
// differed (case, element, both values) on any mismatch, and when a case or the runtime is
// missing: a missing runtime is a failure, never a skip.
'use strict';
const fs = require('fs');
const path = require('path');

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const [modules, casesDir] = process.argv.slice(2);
if (!modules || !casesDir) fail('usage: node check_onnxruntime.js <node_modules> <cases directory>');

let ort;
try {
  ort = require(path.join(path.resolve(modules), 'onnxruntime-node'));
} catch (e) {
  fail(`onnxruntime-node is not installed in ${modules} (${e.message.split('\n')[0]}).\n` +
       `  install it: npm install --prefix ${path.dirname(path.resolve(modules))} ` +
       `--ignore-scripts onnxruntime-node@1.30.0   (scripts/run tests does this)`);
}

function readFloats(file, shape) {
  const bytes = fs.readFileSync(file);
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== 4 * count) fail(`${file} has ${bytes.length} bytes; expected ${4 * count} for shape [${shape}]`);
  const out = new Float32Array(count);
  for (let i = 0; i < count; ++i) out[i] = bytes.readFloatLE(4 * i);
  return out;
}

async function check(dir) {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8'));
  const input = readFloats(path.join(dir, c.input), c.input_shape);
  const expected = readFloats(path.join(dir, c.expected), c.expected_shape);
  const session = await ort.InferenceSession.create(path.join(dir, c.model));
  const results = await session.run({ input: new ort.Tensor('float32', input, c.input_shape) });
  const got = results[session.outputNames[0]];
  if (JSON.stringify(got.dims.map(Number)) !== JSON.stringify(c.expected_shape))
    fail(`${c.name}: ONNX Runtime returned shape [${got.dims}], the C++ network [${c.expected_shape}]`);
  let worst = 0, at = 0;
  for (let i = 0; i < expected.length; ++i) {
    const d = Math.abs(got.data[i] - expected[i]);
    if (!(d <= worst)) { worst = d; at = i; }
  }
  const classes = c.expected_shape[c.expected_shape.length - 1];
  const where = `sample ${Math.floor(at / classes)}, logit ${at % classes}`;
  if (!(worst <= c.tolerance))
    fail(`${c.name}: ONNX Runtime and the C++ network differ by ${worst} at ${where} ` +
         `(onnxruntime ${got.data[at]}, C++ ${expected[at]}); tolerance ${c.tolerance}`);
  console.log(`ok ${c.name}: ${c.input_shape[0]} images, ${c.relus} ReLUs per image in the graph, ` +
              `max |onnxruntime - C++| = ${worst.toExponential(2)} (${where})`);
}

(async () => {
  const listFile = path.join(casesDir, 'cases.json');
  if (!fs.existsSync(listFile)) fail(`${listFile} is missing: run the C++ side first (linearize_tests "[onnx_cases]")`);
  const cases = JSON.parse(fs.readFileSync(listFile, 'utf8'));
  if (cases.length === 0) fail(`${listFile} lists no cases`);
  console.log(`onnxruntime-node ${ort.env.versions ? ort.env.versions.node : ''}`);
  for (const c of cases) await check(path.join(casesDir, c.name));
  console.log(`all ${cases.length} cases match`);
})().catch((e) => fail(e.stack || String(e)));

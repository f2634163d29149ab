#!/usr/bin/env python3
"""Reads every PI export the C++ tests wrote ("[onnx_cases]") through its manifest alone, with
Python's standard library and nothing of linearize: the framework-neutral format
(include/linearize/io/pi_manifest.hpp, README "Export for private inference") must be readable as
documented. For each case it checks the data file (size, FNV-1a 64 checksum), every tensor (dtype,
64-byte aligned offset, inside the file), every layer's value ids, and every slot's positions
(int32, increasing, inside the activation, ReLU and polynomial positions disjoint); and that the
ReLUs it counts from the positions equal the manifest's relu_count and the case's ReLU count.
  python3 read_manifest.py <cases directory>
Exits 1 with what is wrong on the first failure, and when there are no cases."""
import array
import json
import os
import sys


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def fnv1a(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def check(directory, case):
    where = os.path.join(directory, case["name"])
    m = json.load(open(os.path.join(where, "manifest.json")))
    if m.get("format") != "linearize-pi-export 1":
        fail(f"{where}: format {m.get('format')!r}; expected 'linearize-pi-export 1'")
    data = open(os.path.join(where, m["data"]["file"]), "rb").read()
    if len(data) != m["data"]["bytes"]:
        fail(f"{where}: data file has {len(data)} bytes; the manifest says {m['data']['bytes']}")
    if f"{fnv1a(data):016x}" != m["data"]["fnv1a"]:
        fail(f"{where}: data checksum {fnv1a(data):016x}; the manifest says {m['data']['fnv1a']}")

    def tensor(t, what):
        codes = {"float32": "f", "int32": "i"}
        if t["dtype"] not in codes:
            fail(f"{where}: {what} has dtype {t['dtype']!r}; expected float32 or int32")
        a = array.array(codes[t["dtype"]])
        if a.itemsize != 4:
            fail(f"array '{codes[t['dtype']]}' is {a.itemsize} bytes on this platform; expected 4")
        count = 1
        for d in t["shape"]:
            count *= d
        start, end = t["offset"], t["offset"] + 4 * count
        if start % 64 != 0 or end > len(data):
            fail(f"{where}: {what} at bytes [{start}, {end}) of {len(data)}; expected inside the "
                 f"file, starting at a multiple of 64")
        a.frombytes(data[start:end])
        if sys.byteorder == "big":
            a.byteswap()
        return a

    values = len(m["shapes"])
    relus = polynomials = 0
    for i, layer in enumerate(m["layers"]):
        name = f"layer {i} ({layer['name']}, {layer['op']})"
        ids = layer["inputs"] + [layer["output"]]
        if any(not 0 <= v < values for v in ids):
            fail(f"{where}: {name} uses values {ids}; expected ids below {values}")
        for key in ("weight", "bias", "c2", "c1", "c0"):  # c2, c1, c0: a slot's polynomial
            if key in layer:
                tensor(layer[key], f"{name} {key}")
        if layer["op"] != "slot":
            continue
        elements = 1
        for d in m["shapes"][layer["output"]]:
            elements *= d
        if layer["elements"] != elements:
            fail(f"{where}: {name} has {layer['elements']} elements; its shape has {elements}")
        kept = tensor(layer["relu_positions"], f"{name} relu_positions")
        poly = tensor(layer["polynomial_positions"], f"{name} polynomial_positions")
        for what, positions, count in (("ReLU", kept, layer["relus"]),
                                       ("polynomial", poly, layer["polynomials"])):
            if len(positions) != count:
                fail(f"{where}: {name} lists {len(positions)} {what} positions; it says {count}")
            if any(b <= a for a, b in zip(positions, positions[1:])):
                fail(f"{where}: {name}: {what} positions are not increasing")
            if len(positions) and not (0 <= positions[0] and positions[-1] < elements):
                fail(f"{where}: {name}: {what} positions outside [0, {elements})")
        if set(kept) & set(poly):
            fail(f"{where}: {name}: a position is both ReLU and polynomial")
        relus += len(kept)
        polynomials += len(poly)
    if not 0 <= m["output"] < values:
        fail(f"{where}: output value {m['output']}; expected an id below {values}")
    if relus != m["relu_count"] or relus != case["relus"]:
        fail(f"{where}: {relus} ReLU positions in the slots; the manifest says {m['relu_count']}, "
             f"the case {case['relus']}")
    if polynomials != m["polynomial_count"]:
        fail(f"{where}: {polynomials} polynomial positions; the manifest says {m['polynomial_count']}")
    print(f"ok {case['name']}: {len(m['layers'])} layers, {relus} ReLUs and {polynomials} "
          f"polynomial positions per image, {len(data)} bytes of data")


def main():
    if len(sys.argv) != 2:
        fail("usage: read_manifest.py <cases directory>")
    directory = sys.argv[1]
    listing = os.path.join(directory, "cases.json")
    if not os.path.exists(listing):
        fail(f"{listing} is missing: run the C++ side first (linearize_tests \"[onnx_cases]\")")
    cases = json.load(open(listing))
    if not cases:
        fail(f"{listing} lists no cases")
    for case in cases:
        check(directory, case)
    print(f"all {len(cases)} manifests read")


if __name__ == "__main__":
    main()

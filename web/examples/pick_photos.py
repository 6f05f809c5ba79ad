#!/usr/bin/env python3
"""Chooses the demo's photographs: 16 CIFAR-10 test images, two for each of eight classes.

For each class, among its first CANDIDATES test images, the pair whose augmented views (the page's
default: augmentations abcde, seed 0) the shipped weights find most alike, averaged over the heads
(`amcl-train score --json`). Such a pair teaches "two photos of one class"; any photo teaches "two
views of one photo"; and photos of two classes are taken from different classes. Re-run it when the
shipped weights change, then check the lessons (the browser test does).

    python3 web/examples/pick_photos.py [--data target/data/cifar10] [--weights web/model.bpk]

Copies the chosen JPEGs, unchanged, to web/examples/photos/<class>-<n>.jpg and writes
web/examples/photos.json (name, class, source file) for the page.
"""
import argparse
import itertools
import json
import pathlib
import shutil
import subprocess
import sys

CLASSES = ["airplane", "automobile", "bird", "cat", "dog", "horse", "ship", "truck"]
CANDIDATES = 8


def similarity(binary, weights, a, b):
    out = subprocess.run(
        [binary, "score", str(a), str(b), "--weights", str(weights), "--augs", "abcde",
         "--seed", "0", "--device", "cpu", "--json"],
        check=True, capture_output=True, text=True).stdout
    heads = json.loads(out)["heads"]
    return sum(h["similarity"] for h in heads) / len(heads)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="target/data/cifar10")
    parser.add_argument("--weights", default="web/model.bpk")
    parser.add_argument("--binary", default="target/release/amcl-train")
    args = parser.parse_args()
    test = pathlib.Path(args.data) / "test"
    if not test.is_dir():
        sys.exit(f"error: {test} not found (run experiments/unpack-cifar10.sh)")
    out = pathlib.Path(__file__).parent / "photos"
    out.mkdir(exist_ok=True)
    chosen = []
    for cls in CLASSES:
        files = sorted((test / cls).glob("*.jpg"))[:CANDIDATES]
        best = max(itertools.combinations(files, 2),
                   key=lambda p: similarity(args.binary, args.weights, *p))
        for n, src in enumerate(best, 1):
            name = f"{cls}-{n}.jpg"
            shutil.copyfile(src, out / name)
            chosen.append({"name": name, "class": cls, "source": f"cifar10/test/{cls}/{src.name}"})
            print(f"{name}: {src}")
    (out.parent / "photos.json").write_text(json.dumps(chosen, indent=1) + "\n")


if __name__ == "__main__":
    main()

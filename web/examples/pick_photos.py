#!/usr/bin/env python3
"""Chooses the demo's photographs and its lesson: 16 CIFAR-10 test images, two per class for eight.

For each class, among its first CANDIDATES test images, the pair whose augmented views (the page's
default: augmentations abcde, seed 0) the shipped weights find most alike, averaged over the heads
(`amcl-train score --json`). Such a pair teaches "two photos of one class"; any photo teaches "two
views of one photo"; and photos of two classes are taken from different classes. Re-run it when the
shipped weights change, then check the lessons (the browser test does).

    python3 web/examples/pick_photos.py [--data target/data/cifar10] [--weights web/model.bpk]

Copies the chosen JPEGs, unchanged, to web/examples/photos/<class>-<n>.jpg and writes
web/examples/photos.json (name, class, source file) for the page. Then the lesson's three pairs
(web/examples/lessons.json): a photo's two views, it and the other photo of its class, it and a
photo of another class, such that in every head s falls from the first pair to the second and from
the second to the third, by the widest margin (ties: the lowest s of the third pair). The page
states that ordering under the pairs, and the browser test checks it.
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


def head_similarities(binary, weights, a, b=None):
    """Each head's s for the pair (a, b), or for two views of a, augmented as the page's default."""
    out = subprocess.run(
        [binary, "score", str(a), *([str(b)] if b else []), "--weights", str(weights), "--augs",
         "abcde", "--seed", "0", "--device", "cpu", "--json"],
        check=True, capture_output=True, text=True).stdout
    return [h["similarity"] for h in json.loads(out)["heads"]]


def similarity(binary, weights, a, b):
    heads = head_similarities(binary, weights, a, b)
    return sum(heads) / len(heads)


def lesson(binary, weights, photos, chosen):
    """The lesson's three pairs, as described above, or None when no photo gives that ordering."""
    s = lambda a, b=None: head_similarities(binary, weights, photos / a, b and photos / b)
    best = None
    for p in chosen:
        first, cls = p["name"], p["class"]
        mate = next(q["name"] for q in chosen if q["class"] == cls and q["name"] != first)
        views, same = s(first), s(first, mate)
        for q in chosen:
            if q["class"] == cls:
                continue
            other = s(first, q["name"])
            margin = min(min(v - m, m - o) for v, m, o in zip(views, same, other))
            key = (round(margin, 4), -sum(other))
            if margin > 0 and (best is None or key > best[0]):
                best = (key, first, mate, q["name"])
    if best is None:
        return None
    _, first, mate, other = best
    return {"augs": "abcde", "seed": 0, "pairs": [
        {"kind": "views", "a": first},
        {"kind": "same_class", "a": first, "b": mate},
        {"kind": "other_class", "a": first, "b": other},
    ]}


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
    pairs = lesson(args.binary, args.weights, out, chosen)
    if pairs is None:
        sys.exit("error: no photo's pairs fall in s from views to one class to two classes")
    (out.parent / "lessons.json").write_text(json.dumps(pairs, indent=1) + "\n")
    print("lesson:", ", ".join(f"{p['kind']} {p['a']} {p.get('b', '')}" for p in pairs["pairs"]))


if __name__ == "__main__":
    main()

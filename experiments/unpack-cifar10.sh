#!/usr/bin/env bash
# Unpacks the shared CIFAR-10 JPEGs once into target/data/cifar10: cifar10-jpg.zip (25,000
# training and the 10,000 test images) and cifar10-train-extra-jpg.zip (21,000 more training
# images), 46,000 training images in all. CIFAR10_DATA overrides the folder holding the archives.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${CIFAR10_DATA:-../shared/data}"
data=target/data/cifar10
if [ -f "$data/.unpacked" ]; then exit 0; fi
for zip in "$shared/cifar10-jpg.zip" "$shared/cifar10-train-extra-jpg.zip"; do
  [ -f "$zip" ] || { echo "error: $zip not found (set CIFAR10_DATA to the folder with the archives)" >&2; exit 1; }
  echo "unpacking $zip into target/data" >&2
  mkdir -p target/data
  python3 -m zipfile -e "$zip" target/data
done
touch "$data/.unpacked"

#!/usr/bin/env bash
# Builds `amcl-train --features cuda` with no network access beyond Debian's archive.
#
# burn 0.22's CUDA backend compiles kernels with LLVM (cubecl-cuda -> cubecl-llvm), and the
# build of cubecl-llvm downloads an LLVM 23 bundle from GitHub (tracel-llvm-bundler). That fails
# offline and on air-gapped clusters. This script stands Debian's LLVM 22 in for the bundle:
#
#  1. Debian's `llvm-22-dev` (LLVM's static libraries and headers): installed with apt where the
#     release has it (Debian 13 "trixie" and later); otherwise (Debian 12, this project's CI) the
#     package is fetched from deb.debian.org's trixie pool and checked as apt would (signed
#     InRelease -> package index -> .deb SHA-256), then unpacked under target/llvm-22 (nothing
#     is installed system-wide).
#  2. A bundle directory where the bundler looks (XDG_DATA_HOME/tracel/tracel-llvm-23.1.0-4),
#     holding one archive of every LLVM library, the headers, and an `llvm-config` that answers
#     for them; marked installed, so the bundler downloads nothing.
#  3. glibc 2.36 compatibility: trixie's archives call glibc 2.38's C23 `strtol` family; small
#     wrappers (scripts/cuda-offline/glibc-compat.c) go into the same archive.
#  4. `cargo build --release -p amcl-train --features cuda` (extra arguments are passed on;
#     `--profile cuda-link-check` replaces --release: CI's fast compile-and-link check).
#
# The normal online build (`cargo build --release -p amcl-train --features cuda`, which downloads
# the bundle) is untouched: only a build run through this script sees the bundle directory.
#
# Usage: bash scripts/build-cuda-offline.sh [cargo build arguments...]
#        bash scripts/build-cuda-offline.sh --profile cuda-link-check   # what CI runs
set -euo pipefail
cd "$(dirname "$0")/.."

LLVM_MAJOR=22
BUNDLE_NAME=tracel-llvm-23.1.0-4  # what cubecl-llvm 0.11's tracel-llvm-bundler expects
work="$PWD/target/llvm-$LLVM_MAJOR"
mkdir -p "$work/debs"

# Libraries LLVM's support code links against (curl, gpgv, xz and dpkg-deb are part of Debian).
for lib in libz.so libzstd.so; do
  [ -e "/usr/lib/x86_64-linux-gnu/$lib" ] || { bash scripts/apt-install.sh --no-install-recommends zlib1g-dev libzstd-dev; break; }
done

# 1. LLVM 22's headers and static libraries.
llvm_root=""
if [ -x "/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-config" ] && [ -e "/usr/lib/llvm-$LLVM_MAJOR/lib/libLLVMCore.a" ]; then
  llvm_root="/usr/lib/llvm-$LLVM_MAJOR"
elif apt-cache show "llvm-$LLVM_MAJOR-dev" >/dev/null 2>&1 && bash scripts/apt-install.sh --no-install-recommends "llvm-$LLVM_MAJOR-dev"; then
  llvm_root="/usr/lib/llvm-$LLVM_MAJOR"
else
  llvm_root="$work/root/usr/lib/llvm-$LLVM_MAJOR"
  if [ ! -e "$llvm_root/lib/libLLVMCore.a" ]; then
    echo "fetching llvm-$LLVM_MAJOR-dev from Debian trixie (not in this release's apt sources)"
    # The chain apt itself trusts: InRelease signed by Debian's archive key (this system's
    # keyring), which names the SHA-256 of the package index, which names that of the .deb.
    archive=http://deb.debian.org/debian
    curl -fsSL --retry 3 -o "$work/debs/InRelease" "$archive/dists/trixie/InRelease"
    gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$work/debs/InRelease" 2>/dev/null \
      || { echo "Debian trixie's InRelease has no valid signature" >&2; exit 1; }
    curl -fsSL --retry 3 -o "$work/debs/Packages.xz" "$archive/dists/trixie/main/binary-amd64/Packages.xz"
    index_sha=$(awk '/^SHA256:/ {s=1; next} s && $3 == "main/binary-amd64/Packages.xz" {print $1; exit}' "$work/debs/InRelease")
    echo "$index_sha  $work/debs/Packages.xz" | sha256sum -c --quiet - \
      || { echo "Debian trixie's package index does not match its signed InRelease" >&2; exit 1; }
    index="$work/debs/Packages"
    xz -dc "$work/debs/Packages.xz" > "$index"
    entry=$(awk -v p="llvm-$LLVM_MAJOR-dev" '$0 == "Package: " p {found=1} found && /^$/ {exit} found' "$index")
    file=$(sed -n 's/^Filename: //p' <<<"$entry")
    sha=$(sed -n 's/^SHA256: //p' <<<"$entry")
    [ -n "$file" ] || { echo "llvm-$LLVM_MAJOR-dev is not in Debian trixie's index" >&2; exit 1; }
    deb="$work/debs/$(basename "$file")"
    [ -e "$deb" ] || curl -fsSL --retry 3 -o "$deb" "$archive/$file"
    echo "$sha  $deb" | sha256sum -c --quiet - || { echo "checksum mismatch: $deb" >&2; rm -f "$deb"; exit 1; }
    dpkg-deb -x "$deb" "$work/root"
  fi
fi
version=$(sed -n 's/^#define LLVM_VERSION_STRING "\(.*\)"/\1/p' "$llvm_root/include/llvm/Config/llvm-config.h")
echo "LLVM $version from $llvm_root"

# 2. The bundle directory.
export XDG_DATA_HOME="$work/data"
bundle="$XDG_DATA_HOME/tracel/$BUNDLE_NAME"
# Laid out again only when its inputs change: the bundler's sentinel file is a rerun trigger
# of cubecl-llvm's build, and rebuilding that rebuilds the whole CUDA stack above it.
stamp="$llvm_root $version $(sha256sum < scripts/cuda-offline/glibc-compat.c | cut -c1-16)"
if [ ! -e "$bundle/.tracel-llvm-installed" ] || [ "$(cat "$bundle/.source" 2>/dev/null)" != "$stamp" ]; then
  echo "laying out the LLVM bundle in $bundle"
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib"
  ln -s "$(readlink -f "$llvm_root/include")" "$bundle/include"

  # 3. glibc compatibility wrappers, then one archive of every LLVM library and the wrappers.
  cc -O2 -fPIC -c scripts/cuda-offline/glibc-compat.c -o "$bundle/lib/glibc-compat.o"
  {
    echo "CREATE $bundle/lib/libLLVMAll.a"
    for a in "$llvm_root"/lib/libLLVM*.a; do echo "ADDLIB $a"; done
    echo "ADDMOD $bundle/lib/glibc-compat.o"
    echo "SAVE"
    echo "END"
  } | ar -M
  ranlib "$bundle/lib/libLLVMAll.a"

  cat > "$bundle/bin/llvm-config" <<EOF
#!/bin/sh
# llvm-config for Debian's LLVM $version laid out as a tracel-llvm bundle (build-cuda-offline.sh).
prefix="$bundle"
defs="-D_GNU_SOURCE -D__STDC_CONSTANT_MACROS -D__STDC_FORMAT_MACROS -D__STDC_LIMIT_MACROS"
for arg in "\$@"; do
  case "\$arg" in
    --link-static) ;;
    --version) echo "$version" ;;
    --libs) echo "-lLLVMAll" ;;
    --libnames) echo "libLLVMAll.a" ;;
    --system-libs) echo "-lrt -ldl -lm -lz -lzstd" ;;
    --libdir) echo "\$prefix/lib" ;;
    --includedir) echo "\$prefix/include" ;;
    --cflags) echo "-I\$prefix/include \$defs" ;;
    --cxxflags) echo "-I\$prefix/include -std=c++17 -fno-exceptions -funwind-tables \$defs" ;;
    *) echo "llvm-config (build-cuda-offline.sh): unsupported argument \$arg" >&2; exit 1 ;;
  esac
done
EOF
  chmod +x "$bundle/bin/llvm-config"
  echo "$stamp" > "$bundle/.source"
  touch "$bundle/.tracel-llvm-installed"
fi

# 4. The build.
export TRACEL_LLVM_BUNDLER_SKIP_CHECKSUM_DOWNLOAD=1
args=("$@")
[[ " ${args[*]} " == *" --profile "* ]] || args=(--release "${args[@]}")
cargo build -p amcl-train --features cuda "${args[@]}"
echo "built amcl-train with CUDA (LLVM $version, offline) in target/<profile>/amcl-train"

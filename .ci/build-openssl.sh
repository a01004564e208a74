#!/usr/bin/env bash
# The OpenSSL a binary wheel carries: one pinned release, its tarball checked
# against the SHA-256 below, built as a shared libcrypto under PREFIX.  The
# wheel build links against it, and auditwheel (Linux) or delocate (macOS)
# copies it into the wheel.  cibuildwheel runs this once per platform
# (pyproject.toml, [tool.cibuildwheel] before-all); CONTRIBUTING.md, "Building
# the C core", names the version.  To move to another release, change both lines
# and CONTRIBUTING.md (a mismatched hash stops the build).
#
# Usage: .ci/build-openssl.sh PREFIX
set -euo pipefail

OPENSSL_VERSION=3.5.6
OPENSSL_SHA256=deae7c80cba99c4b4f940ecadb3c3338b13cb77418409238e57d7f31f2a3b736

prefix=${1:?usage: $0 PREFIX}
if [ -f "$prefix/include/openssl/opensslv.h" ] && grep -q "\"$OPENSSL_VERSION\"" "$prefix/include/openssl/opensslv.h"; then
  exit 0  # already built (cibuildwheel may run before-all again on the same host)
fi

# Configure needs perl with IPC::Cmd; the images differ in what they carry.
if command -v apk >/dev/null; then
  apk add --no-cache perl linux-headers make
elif command -v dnf >/dev/null; then
  dnf install -y perl-IPC-Cmd perl-Time-Piece make
elif command -v yum >/dev/null; then
  yum install -y perl-IPC-Cmd perl-Time-Piece make
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball="openssl-$OPENSSL_VERSION.tar.gz"
curl --fail --silent --show-error --location --retry 3 -o "$work/$tarball" \
  "https://github.com/openssl/openssl/releases/download/openssl-$OPENSSL_VERSION/$tarball"
actual=$( (sha256sum "$work/$tarball" 2>/dev/null || shasum -a 256 "$work/$tarball") | cut -d' ' -f1)
if [ "$actual" != "$OPENSSL_SHA256" ]; then
  echo "error: $tarball has SHA-256 $actual, expected $OPENSSL_SHA256" >&2
  exit 1
fi
tar -xzf "$work/$tarball" -C "$work"
cd "$work/openssl-$OPENSSL_VERSION"

# Only libcrypto is used: no apps, docs, TLS-only code or dynamic modules.
flags=(shared no-apps no-docs no-tests no-module no-comp no-zlib no-ssl3 no-atexit --libdir=lib
       "--prefix=$prefix" "--openssldir=$prefix/ssl")
case "$(uname -s)-${ARCHFLAGS:-$(uname -m)}" in
  Darwin*arm64*) target=darwin64-arm64-cc ;;
  Darwin*x86_64*) target=darwin64-x86_64-cc ;;
  *) target= ;;
esac
if [ -n "$target" ]; then
  # The deployment target of the wheel (cibuildwheel sets MACOSX_DEPLOYMENT_TARGET).
  ./Configure "$target" "${flags[@]}" "-mmacosx-version-min=${MACOSX_DEPLOYMENT_TARGET:-11.0}"
else
  ./config "${flags[@]}"
fi
make -j"$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)" build_libs
make install_dev

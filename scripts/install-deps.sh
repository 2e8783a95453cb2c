#!/bin/sh
# Installs the Debian packages brokerd needs that are missing.
# Usage: scripts/install-deps.sh [build|bench|all]
# As root it runs apt-get (updating the package lists first when needed);
# otherwise it prints the exact command to run and exits 1.
set -eu

# python3-protobuf and protobuf-compiler: a test decodes fetch responses with
# another language's protobuf library, as a non-C client would.
# faketime (libfaketime): check_clock steps brokerd's wall clock while it runs.
# redis-server, redis-tools, libhiredis-dev: make bench runs the peer script
# (../shared/peers/redis_bench.sh) beside our wire benchmark.
# clang, libclang-rt-14-dev: the libFuzzer targets (make fuzz, make check)
# are built with clang -fsanitize=fuzzer,address,undefined.
build="gcc make pkg-config libevent-dev liburing-dev libprotobuf-c-dev protobuf-c-compiler check libisal-dev python3 python3-protobuf protobuf-compiler clang libclang-rt-14-dev faketime"
bench="fio redis-server redis-tools libhiredis-dev"
case "${1:-build}" in
  build) want="$build" ;;
  bench) want="$build $bench" ;;
  all)   want="$build $bench" ;;
  *) echo "usage: $0 [build|bench|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "brokerd needs these Debian packages:$missing" >&2
  echo "install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi

echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Fresh machines may have empty package lists: update once, then install.
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y --no-install-recommends $missing
fi

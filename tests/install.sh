#!/bin/sh
# install.sh — `make install` into a temporary DESTDIR, then build and run a
# program against the installed client library through pkg-config, as a
# user of the package would.  Run by `make test` (so by `make check`).
set -eu

tmp=$(mktemp -d "${TMPDIR:-/tmp}/brokerd-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
# A release build: an ASan-instrumented libbrokerc.so cannot be loaded by
# an uninstrumented program.
make --no-print-directory -s SAN=0 install DESTDIR="$root" PREFIX=/usr >/dev/null

for f in usr/bin/brokerd usr/bin/brokerctl usr/bin/broker-bench usr/lib/libbrokerc.a usr/lib/libbrokerc.so.0 \
	 usr/include/brokerd/client.h usr/include/brokerd/broker.pb-c.h \
	 usr/lib/pkgconfig/brokerc.pc usr/share/brokerd/broker.proto \
	 etc/brokerd.conf usr/lib/systemd/system/brokerd.service; do
	[ -e "$root/$f" ] || { echo "install.sh: $f was not installed" >&2; exit 1; }
done
grep -q '^ExecStart=/usr/bin/brokerd -c /etc/brokerd.conf' \
	"$root/usr/lib/systemd/system/brokerd.service" ||
	{ echo "install.sh: the systemd unit names the wrong paths" >&2; exit 1; }
"$root/usr/bin/brokerd" --version | grep -q '^brokerd ' ||
	{ echo "install.sh: brokerd --version failed" >&2; exit 1; }

cat > "$tmp/hello.c" <<'C'
#include <brokerd/client.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	struct bk_conn *c = NULL;
	/* Port 1 on loopback: nobody listens, so the library must say so. */
	int rc = bk_conn_open("127.0.0.1:1", 2000, &c);

	if (rc != -ECONNREFUSED || strcmp(bk_error_name(6), "UNKNOWN_TOPIC") != 0) {
		fprintf(stderr, "unexpected: %d %s\n", rc, bk_strerror(rc));
		return 1;
	}
	printf("%s\n", bk_strerror(rc));
	return 0;
}
C
export PKG_CONFIG_PATH="$root/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -o "$tmp/hello" "$tmp/hello.c" $(pkg-config --cflags --libs brokerc)
LD_LIBRARY_PATH="$root/usr/lib" "$tmp/hello" >/dev/null

# The complete examples of docs/client.md (code blocks opening with
# "/* example: NAME.c") compile, warning-free, against the package.
awk -v dir="$tmp" '
	/^```c$/ { inblock = 1; first = 1; next }
	/^```$/ { inblock = 0; out = ""; next }
	inblock && first { first = 0; if (match($0, /example: [a-z_]+\.c/)) out = dir "/" substr($0, RSTART + 9, RLENGTH - 9) }
	inblock && out != "" { print > out }
' docs/client.md
n=0
for ex in "$tmp"/*.c; do
	case "$ex" in */hello.c) continue ;; esac
	# shellcheck disable=SC2046
	cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "${ex%.c}" "$ex" $(pkg-config --cflags --libs brokerc)
	n=$((n + 1))
done
[ "$n" -ge 3 ] || { echo "install.sh: expected the producer, consumer and admin examples in docs/client.md" >&2; exit 1; }
echo "install.sh: make install, a pkg-config build against libbrokerc and the $n examples of docs/client.md: ok"

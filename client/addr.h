/* addr — the "host:port" / "[v6addr]:port" broker addresses every part of
 * libbrokerc accepts.  Internal: not installed, not exported. */
#ifndef BROKERD_CLIENT_ADDR_H
#define BROKERD_CLIENT_ADDR_H

#include <stddef.h>

/* Copy the host of addr into host (hlen bytes) and point *port into addr.
 * Returns 0, or -EINVAL for a malformed address or a host that does not
 * fit. */
__attribute__((visibility("hidden")))
int addr_split(const char *addr, char *host, size_t hlen, const char **port);

#endif

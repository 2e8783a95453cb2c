/* addr — broker address parsing (see addr.h). */
#include "client/addr.h"

#include <errno.h>
#include <string.h>

int addr_split(const char *addr, char *host, size_t hlen, const char **port)
{
	const char *colon, *start = addr, *end;

	if (addr[0] == '[') {
		end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		start = addr + 1;
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= hlen || colon[1] == '\0')
		return -EINVAL;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = colon + 1;
	return 0;
}

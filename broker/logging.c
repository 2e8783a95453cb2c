/* logging — see logging.h.  One write(2) per line so lines from several
 * processes sharing stderr (tests) do not interleave. */
#include "broker/logging.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int log_msg_level = LOGL_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_msg_emit(int level, int err, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	if (level < LOGL_DEBUG || level > LOGL_ERROR)
		level = LOGL_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ",
			      ts.tv_nsec / 1000000L, level_names[level]);
	va_start(ap, fmt);
	int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = w < 0 ? n : n + (size_t)w;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (err != 0)
		n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s",
				      strerror(err < 0 ? -err : err));
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t rc = write(STDERR_FILENO, line, n);
	(void)rc; /* nowhere left to report a failing stderr */
}

int log_msg_parse_level(const char *s, int *level)
{
	for (int i = LOGL_DEBUG; i <= LOGL_ERROR; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*level = LOGL_WARN;
		return 0;
	}
	return -EINVAL;
}

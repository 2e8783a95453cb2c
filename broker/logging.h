/* logging — the daemon's log lines on stderr: "time level message".
 * log_msg checks the level before its arguments are evaluated, so a
 * disabled debug line costs one comparison. */
#ifndef BROKER_LOGGING_H
#define BROKER_LOGGING_H

enum {
	LOGL_DEBUG = 0,
	LOGL_INFO,
	LOGL_WARN,
	LOGL_ERROR,
};

extern int log_msg_level; /* lines below this level are dropped */

#define log_msg(level, ...)                                             \
	do {                                                            \
		if ((level) >= log_msg_level)                           \
			log_msg_emit((level), 0, __VA_ARGS__);          \
	} while (0)

/* As log_msg, appending ": <strerror(err)>"; err may be errno or -errno. */
#define log_msg_errno(level, err, ...)                                  \
	do {                                                            \
		if ((level) >= log_msg_level)                           \
			log_msg_emit((level), (err), __VA_ARGS__);      \
	} while (0)

void log_msg_emit(int level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parse "debug|info|warn|error" into *level.  Returns 0 or -EINVAL. */
int log_msg_parse_level(const char *s, int *level);

#endif

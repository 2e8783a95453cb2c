/* failpoint — see failpoint.h.  A handful of armed points at most, so the
 * table is a small array searched linearly. */
#include "broker/failpoint.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/logging.h"

#define FP_MAX 32
#define FP_NAME_MAX 64

enum fp_action { FPA_CRASH, FPA_POWERLOSS, FPA_ERROR, FPA_SKIP };

struct fp {
	char name[FP_NAME_MAX];
	enum fp_action action;
	int err;            /* -errno for FPA_ERROR */
	unsigned long first; /* 1-based hit that starts firing */
	unsigned long count; /* hits that fire from then on; 0 = all */
	unsigned long hits;
};

bool fp_armed;
static struct fp fps[FP_MAX];
static int nfps;
static struct {
	void (*fn)(void *arg);
	void *arg;
} hooks[FP_POWERLOSS_HOOKS];

static const struct {
	const char *name;
	int err;
} errnames[] = {
	{ "EIO", EIO },       { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
	{ "EROFS", EROFS },   { "ENOMEM", ENOMEM }, { "EAGAIN", EAGAIN },
	{ "EINTR", EINTR },   { "EBADF", EBADF },   { "EMFILE", EMFILE },
	{ "EFBIG", EFBIG },   { "EPERM", EPERM },   { "EACCES", EACCES },
};

static int parse_errno(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (strlen(errnames[i].name) == n && memcmp(errnames[i].name, s, n) == 0)
			return errnames[i].err;
	return 0;
}

static int parse_ulong(const char **p, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (**p < '0' || **p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno != 0 || v == 0)
		return -EINVAL;
	*out = v;
	*p = end;
	return 0;
}

/* One "name=action" entry of length n. */
static int parse_entry(const char *s, size_t n, struct fp *fp)
{
	const char *eq = memchr(s, '=', n), *p, *end = s + n;
	size_t namelen;

	if (eq == NULL || eq == s)
		return -EINVAL;
	namelen = (size_t)(eq - s);
	if (namelen >= FP_NAME_MAX)
		return -EINVAL;
	memset(fp, 0, sizeof(*fp));
	memcpy(fp->name, s, namelen);
	fp->first = 1;
	p = eq + 1;
	if ((size_t)(end - p) >= 9 && memcmp(p, "powerloss", 9) == 0) {
		fp->action = FPA_POWERLOSS;
		p += 9;
	} else if ((size_t)(end - p) >= 5 && memcmp(p, "crash", 5) == 0) {
		fp->action = FPA_CRASH;
		p += 5;
	} else if ((size_t)(end - p) >= 4 && memcmp(p, "skip", 4) == 0) {
		fp->action = FPA_SKIP;
		p += 4;
	} else if ((size_t)(end - p) >= 6 && memcmp(p, "error(", 6) == 0) {
		const char *close = memchr(p, ')', (size_t)(end - p));

		if (close == NULL)
			return -EINVAL;
		fp->action = FPA_ERROR;
		fp->err = -parse_errno(p + 6, (size_t)(close - p - 6));
		if (fp->err == 0)
			return -EINVAL;
		p = close + 1;
	} else {
		return -EINVAL;
	}
	if (p < end && *p == '@' && (++p, parse_ulong(&p, &fp->first) < 0))
		return -EINVAL;
	if (p < end && *p == '*' && (++p, parse_ulong(&p, &fp->count) < 0))
		return -EINVAL;
	return p == end ? 0 : -EINVAL;
}

int fp_arm(const char *spec, char *err, size_t errlen)
{
	const char *s = spec;

	fp_disarm();
	while (s != NULL && *s != '\0') {
		const char *comma = strchr(s, ',');
		size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);

		if (nfps == FP_MAX || parse_entry(s, n, &fps[nfps]) < 0) {
			snprintf(err, errlen,
				 "BROKERD_FAILPOINTS: bad entry '%.*s' (want "
				 "name=crash|powerloss|skip|error(ERRNO)[@FIRST][*COUNT], at most %d)",
				 (int)n, s, FP_MAX);
			fp_disarm();
			return -EINVAL;
		}
		nfps++;
		s = comma != NULL ? comma + 1 : NULL;
	}
	fp_armed = nfps > 0;
	return 0;
}

int fp_arm_from_env(char *err, size_t errlen)
{
	const char *spec = getenv("BROKERD_FAILPOINTS");
	int rc = fp_arm(spec, err, errlen);

	if (rc == 0 && fp_armed)
		log_msg(LOGL_WARN, "failpoints armed (test builds only): %s", spec);
	return rc;
}

int fp_on_powerloss(void (*fn)(void *arg), void *arg)
{
	int free_slot = -1;

	for (int i = 0; i < FP_POWERLOSS_HOOKS; i++) {
		if (hooks[i].fn == fn && hooks[i].arg == arg)
			return 0;
		if (hooks[i].fn == NULL && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	hooks[free_slot].fn = fn;
	hooks[free_slot].arg = arg;
	return 0;
}

void fp_off_powerloss(void (*fn)(void *arg), void *arg)
{
	for (int i = 0; i < FP_POWERLOSS_HOOKS; i++)
		if (hooks[i].fn == fn && hooks[i].arg == arg)
			hooks[i].fn = NULL;
}

void fp_disarm(void)
{
	nfps = 0;
	fp_armed = false;
}

enum fp_kind fp_hit_slow(const char *name, int *err)
{
	for (int i = 0; i < nfps; i++) {
		struct fp *fp = &fps[i];
		unsigned long n;

		if (strcmp(fp->name, name) != 0)
			continue;
		n = ++fp->hits;
		if (n < fp->first || (fp->count != 0 && n - fp->first >= fp->count))
			return FP_NONE;
		switch (fp->action) {
		case FPA_POWERLOSS:
			log_msg(LOGL_WARN, "failpoint %s: power loss (hit %lu)", name, n);
			for (int h = 0; h < FP_POWERLOSS_HOOKS; h++)
				if (hooks[h].fn != NULL)
					hooks[h].fn(hooks[h].arg);
			__attribute__((fallthrough));
		case FPA_CRASH:
			log_msg(LOGL_WARN, "failpoint %s: crash (hit %lu)", name, n);
			kill(getpid(), SIGKILL);
			_exit(137); /* not reached */
		case FPA_SKIP:
			return FP_SKIP;
		case FPA_ERROR:
			if (err != NULL)
				*err = fp->err;
			return FP_ERROR;
		}
	}
	return FP_NONE;
}

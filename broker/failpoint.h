/* failpoint — named fault-injection points for the crash and fault tests.
 *
 * Armed only by the BROKERD_FAILPOINTS environment variable, read once at
 * start-up (brokerd logs a warning naming every armed point):
 *
 *   BROKERD_FAILPOINTS="name=action[,name=action...]"
 *   action := kind ['@' FIRST] ['*' COUNT]
 *   kind   := crash          kill the process with SIGKILL at that point
 *           | powerloss      run the power-loss hooks (fp_on_powerloss: the
 *                            logs cut every segment file back to what a
 *                            really executed fsync covered), then SIGKILL:
 *                            a power cut, where kill -9 keeps the page cache
 *           | error(ERRNO)   the point fails with -ERRNO (EIO, ENOSPC, ...)
 *           | skip           the operation is skipped but reported as done
 *   FIRST  := the 1-based hit on which the action starts (default 1)
 *   COUNT  := how many hits it applies to from then on (default: all)
 *
 * e.g. "log.fsync=error(EIO)@3*1" fails the third fsync only;
 *      "topic.meta.rename=crash" dies just before topics.meta is renamed;
 *      "log.write=powerloss@200" cuts the power at the 200th write completion.
 *
 * Unarmed, fp_hit() is one load and a branch; production never sets the
 * variable.  Points are named "<module>.<step>" and listed in
 * docs/operations.md.  Single-threaded: the reactor thread only. */
#ifndef BROKER_FAILPOINT_H
#define BROKER_FAILPOINT_H

#include <stdbool.h>
#include <stddef.h>

enum fp_kind {
	FP_NONE = 0, /* not armed, or not firing on this hit: go on */
	FP_ERROR,    /* fail with the returned -errno */
	FP_SKIP,     /* skip the operation, report success */
};

/* Arm the points of `spec` (the variable's syntax), replacing any armed
 * before; NULL or "" disarms.  Returns 0, or -EINVAL with err naming the
 * bad entry. */
int fp_arm(const char *spec, char *err, size_t errlen);

/* fp_arm(getenv("BROKERD_FAILPOINTS")). */
int fp_arm_from_env(char *err, size_t errlen);

/* Disarm every point (the table is static; power-loss hooks stay). */
void fp_disarm(void);

/* Count a hit of point `name`.  Returns FP_NONE (go on), FP_SKIP, or
 * FP_ERROR with *err set to the -errno to fail with; a crash action never
 * returns.  err may be NULL when the caller only handles FP_SKIP. */
enum fp_kind fp_hit_slow(const char *name, int *err);

/* Register fn(arg) to run when a powerloss action fires, just before the
 * SIGKILL (at most FP_POWERLOSS_HOOKS; registering the same pair again is a
 * no-op).  Returns 0 or -ENOSPC.  A hook must only do what a dying process
 * can: no allocation it relies on, blocking syscalls are fine. */
#define FP_POWERLOSS_HOOKS 8
int fp_on_powerloss(void (*fn)(void *arg), void *arg);
void fp_off_powerloss(void (*fn)(void *arg), void *arg);

extern bool fp_armed;

static inline enum fp_kind fp_hit(const char *name, int *err)
{
	return fp_armed ? fp_hit_slow(name, err) : FP_NONE;
}

/* Shorthand for points that can only fail: 0 or the -errno to fail with. */
static inline int fp_error(const char *name)
{
	int err = 0;

	return fp_hit(name, &err) == FP_ERROR ? err : 0;
}

#endif

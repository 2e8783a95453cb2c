/* testutil — small helpers shared by the unit tests: temporary directories
 * that are removed afterwards. */
#ifndef BROKER_TESTS_TESTUTIL_H
#define BROKER_TESTS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>

/* Create a fresh directory under $TMPDIR (or /tmp); returns it owned
 * (free() it), or NULL. */
static inline char *tu_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *path = NULL;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	if (asprintf(&path, "%s/brokerd-test-XXXXXX", base) < 0)
		return NULL;
	if (mkdtemp(path) == NULL) {
		free(path);
		return NULL;
	}
	return path;
}

/* Remove a directory tree made by tu_mkdtemp (best effort). */
static inline void tu_rmtree(const char *path)
{
	char *cmd = NULL;

	if (path == NULL || asprintf(&cmd, "rm -rf '%s'", path) < 0)
		return;
	if (system(cmd) != 0)
		fprintf(stderr, "tu_rmtree: could not remove %s\n", path);
	free(cmd);
}

#endif

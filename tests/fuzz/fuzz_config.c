/* fuzz_config — libFuzzer target for the configuration parser
 * (broker/config.c): config file text through config_load, and
 * command-line `-o key=value` overrides through config_set and
 * config_topic_set (what CreateTopic / AlterTopicConfig use).
 *
 * Byte 0 of the input is a mode; the rest is the text.  Mode bit 0 clear:
 * the text is a config file (written to a memfd, loaded by path).  Set:
 * each line is one KEY=VALUE override, split at the first '=' as main.c
 * does, applied to the broker config and to a topic config.
 *
 * Properties checked besides ASan/UBSan: a failed load leaves the config
 * untouched; every error has a message; and what config_each /
 * config_topic_each render parses back through config_set /
 * config_topic_set to the same rendering (config.h promises it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OVERRIDES 64

static __attribute__((noreturn)) void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_config: %s: %s\n", what, detail);
	abort();
}

/* --- rendering round trip ------------------------------------------------ */

struct render {
	char text[64 * 1024];
	size_t len;
};

static void add_kv(const char *key, const char *value, void *arg)
{
	struct render *r = arg;
	int n = snprintf(r->text + r->len, sizeof(r->text) - r->len, "%s=%s\n", key, value);

	if (n < 0 || (size_t)n >= sizeof(r->text) - r->len)
		fail("rendering too long", key);
	r->len += (size_t)n;
}

struct apply {
	struct config *c;
	struct log_config *lc;
};

static void set_back(const char *key, const char *value, void *arg)
{
	struct apply *a = arg;
	char err[512];

	if (a->c != NULL && config_set(a->c, key, value, err, sizeof(err)) != 0)
		fail("config_each value does not parse back", err);
	if (a->lc != NULL && config_topic_set(a->lc, key, value, err, sizeof(err)) != 0)
		fail("config_topic_each value does not parse back", err);
}

static void check_roundtrip(const struct config *c, const struct log_config *lc)
{
	static struct render r1, r2;
	static struct config c2;
	struct log_config lc2;
	struct apply a = { &c2, NULL };

	r1.len = r2.len = 0;
	config_defaults(&c2);
	config_each(c, add_kv, &r1);
	config_each(c, set_back, &a);
	config_each(&c2, add_kv, &r2);
	if (r1.len != r2.len || memcmp(r1.text, r2.text, r1.len) != 0)
		fail("config_each -> config_set changes a value", r1.text);
	if (lc == NULL)
		return;
	r1.len = r2.len = 0;
	log_config_defaults(&lc2);
	a = (struct apply){ NULL, &lc2 };
	config_topic_each(lc, add_kv, &r1);
	config_topic_each(lc, set_back, &a);
	config_topic_each(&lc2, add_kv, &r2);
	if (r1.len != r2.len || memcmp(r1.text, r2.text, r1.len) != 0)
		fail("config_topic_each -> config_topic_set changes a value", r1.text);
}

/* --- modes ------------------------------------------------------------------ */

static void fuzz_file(const uint8_t *text, size_t len)
{
	static int fd = -1;
	static char path[64];
	static struct config c, before;
	char err[1024];

	if (fd < 0) {
		fd = memfd_create("fuzz_config", MFD_CLOEXEC);
		if (fd < 0)
			fail("memfd_create", "no memfd");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, len, 0) != (ssize_t)len)
		fail("cannot write the memfd", path);
	config_defaults(&c);
	memcpy(&before, &c, sizeof(c));
	err[0] = 'x';
	if (config_load(&c, path, err, sizeof(err)) < 0) {
		if (memcmp(&c, &before, sizeof(c)) != 0)
			fail("a failed load changed the config", err);
		if (strncmp(err, path, strlen(path)) != 0 || strlen(err) <= strlen(path) + 1)
			fail("load error without \"path:line: reason\"", err);
		return;
	}
	check_roundtrip(&c, &c.topic_defaults);
}

static void fuzz_overrides(const uint8_t *text, size_t len)
{
	static struct config c;
	struct log_config lc;
	char *buf = malloc(len + 1), *line, *save = NULL;
	char err[512];
	int n = 0;

	if (buf == NULL)
		return;
	memcpy(buf, text, len);
	buf[len] = '\0';
	config_defaults(&c);
	log_config_defaults(&lc);
	for (line = strtok_r(buf, "\n", &save); line != NULL && n < MAX_OVERRIDES;
	     line = strtok_r(NULL, "\n", &save), n++) {
		char *eq = strchr(line, '=');
		static struct config cb;
		struct log_config lb;
		int rc;

		memcpy(&cb, &c, sizeof(c));
		memcpy(&lb, &lc, sizeof(lc));

		if (eq == NULL)
			continue; /* main.c refuses it before config_set */
		*eq = '\0';
		err[0] = '\0';
		rc = config_set(&c, line, eq + 1, err, sizeof(err));
		if (rc < 0 && (err[0] == '\0' || memcmp(&c, &cb, sizeof(c)) != 0))
			fail("config_set failed without a message or changed the config", line);
		err[0] = '\0';
		rc = config_topic_set(&lc, line, eq + 1, err, sizeof(err));
		if (rc < 0 && (err[0] == '\0' || memcmp(&lc, &lb, sizeof(lc)) != 0))
			fail("config_topic_set failed without a message or changed the config", line);
	}
	check_roundtrip(&c, &lc);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_overrides(data + 1, size - 1);
	else
		fuzz_file(data + 1, size - 1);
	return 0;
}

/* topic — see topic.h.  The registry keeps its topics in an array sorted by
 * name (topic_find is a binary search, topic_reg_at an index); each topic
 * keeps its overrides as the text the admin gave and its effective config.
 *
 * Invariants:
 *  1. r->topics is sorted by name, names unique; ids unique, > 0 and below
 *     r->next_id, which only grows: an id is never handed out twice while
 *     topics.meta survives.
 *  2. Memory follows topics.meta: create, delete and alter change the
 *     registry only once the new file has replaced the old one.
 *  3. t->cfg is the registry's defaults with t->ovr applied in order through
 *     config_topic_set, and every partition's log has that config.
 *  4. A waiter is armed iff it is linked on a list: its partition's, or the
 *     private list of a wake-up in progress (so topic_unwait can always
 *     unlink it, even from inside another waiter's wake callback).
 *
 * topics.meta, all integers little-endian:
 *   off size field
 *     0   4  magic    "BKTM" (u32 0x4d544b42)
 *     4   4  version  u32, 1
 *     8   4  length   u32 payload bytes; the file is exactly 16 + length
 *    12   4  crc      u32 CRC-32C (Castagnoli) of the payload
 *    16   n  payload  brokerd.meta.Topics (proto/meta.proto), protobuf
 */
#include "broker/topic.h"

#include <assert.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/failpoint.h"
#include "broker/logging.h"
#include "proto/batch.h"
#include "proto/meta.pb-c.h"

#define META_NAME     "topics.meta"
#define META_TMP      "topics.meta.tmp"
#define META_MAGIC    0x4d544b42u /* "BKTM" */
#define META_VERSION  1u
#define META_HDR_SIZE 16
#define META_MAX      (64u << 20) /* payload bound: ~10 k topics need < 2 MiB */
/* "<name>-<partition>": name, dash, up to 5 digits, NUL. */
#define DIRNAME_MAX   (TOPIC_NAME_MAX + 8)
#define PATH_LEN      (CONFIG_PATH_MAX + DIRNAME_MAX + 2)

struct meta_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t len;
	uint32_t crc;
};

_Static_assert(sizeof(struct meta_hdr) == META_HDR_SIZE, "topics.meta header is 16 bytes");
_Static_assert(TOPIC_PARTITIONS_MAX <= 99999, "partition numbers fit DIRNAME_MAX");

struct override {
	char *key;
	char *value;
};

LIST_HEAD(waiter_list, topic_waiter);

struct part {
	struct topic *t;
	struct log *log;
	struct waiter_list waiters;
};

struct topic {
	char *name;
	uint64_t id;
	int64_t created_ms;
	int partitions;
	struct part *parts;
	struct override *ovr;  /* in the order they were first set */
	size_t novr;
	struct log_config cfg; /* invariant 3 */
	unsigned rr;           /* round-robin produce counter */
	bool deleted;          /* topic_delete is waking its waiters */
};

struct topic_reg {
	char *dir;
	int dirfd;
	struct log_ctx *ctx;
	struct log_config defaults;
	struct topic **topics; /* invariant 1 */
	size_t n, cap;
	uint64_t next_id;
};

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- names --------------------------------------------------------------- */

static bool name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int topic_name_check(const char *name, size_t len, char *err, size_t errlen)
{
	set_err(err, errlen, "%s", "");
	if (len == 0) {
		set_err(err, errlen, "topic name is empty");
		return -EINVAL;
	}
	if (memchr(name, '\0', len) != NULL) {
		set_err(err, errlen, "topic name contains a NUL byte");
		return -EINVAL;
	}
	if (len > TOPIC_NAME_MAX) {
		set_err(err, errlen, "topic name is too long: %zu bytes (at most %d)",
			len, TOPIC_NAME_MAX);
		return -EINVAL;
	}
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) {
		set_err(err, errlen, "topic name \"%.*s\" is not allowed", (int)len, name);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (name_char_ok(c))
			continue;
		if (c > ' ' && c < 0x7f)
			set_err(err, errlen, "topic name contains an invalid character '%c' "
				"at byte %zu (allowed: A-Z a-z 0-9 . _ -)", c, i);
		else
			set_err(err, errlen, "topic name contains an invalid character "
				"(byte 0x%02x) at byte %zu (allowed: A-Z a-z 0-9 . _ -)", c, i);
		return -EINVAL;
	}
	return 0;
}

/* Split directory name `d` into topic name and partition if it has the form
 * "<valid topic name>-<digits>".  *canonical tells whether the digits are
 * what this module writes ("7", never "07") for a partition number below
 * TOPIC_PARTITIONS_MAX.  Returns false for anything else. */
static bool parse_part_dir(const char *d, char *name, int *p, bool *canonical)
{
	const char *dash = strrchr(d, '-');
	size_t nlen, ndig;

	if (dash == NULL || dash == d)
		return false;
	nlen = (size_t)(dash - d);
	ndig = strlen(dash + 1);
	if (ndig == 0 || strspn(dash + 1, "0123456789") != ndig)
		return false;
	if (topic_name_check(d, nlen, NULL, 0) < 0)
		return false;
	memcpy(name, d, nlen);
	name[nlen] = '\0';
	*canonical = ndig <= 5 && (ndig == 1 || dash[1] != '0') &&
		     atoi(dash + 1) < TOPIC_PARTITIONS_MAX;
	*p = *canonical ? atoi(dash + 1) : -1;
	return true;
}

static void part_dirname(const char *name, int p, char *out)
{
	snprintf(out, DIRNAME_MAX, "%s-%d", name, p);
}

/* <dir>/<name>-<p> into out (PATH_LEN).  Returns 0 or -ENAMETOOLONG. */
static int part_path(const struct topic_reg *r, const char *name, int p, char *out)
{
	int n = snprintf(out, PATH_LEN, "%s/%s-%d", r->dir, name, p);

	return n < 0 || n >= PATH_LEN ? -ENAMETOOLONG : 0;
}

/* --- directories ------------------------------------------------------------ */

static bool is_dir_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

/* Remove the tree at `path` (not following symlinks).  Blocks.  Returns 0 or
 * -errno. */
static int rmtree(const char *path)
{
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		return errno != 0 ? -errno : -EIO;
	return 0;
}

static int fsync_dirfd(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* --- overrides and configs --------------------------------------------------- */

static void ovr_free(struct override *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(o[i].key);
		free(o[i].value);
	}
	free(o);
}

static struct override *ovr_find(const struct override *o, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(o[i].key, key) == 0)
			return (struct override *)&o[i];
	return NULL;
}

/* Set key = value in the list (replacing an earlier value in place).
 * Borrows key and value (copied).  Returns 0 or -ENOMEM. */
static int ovr_set(struct override **o, size_t *n, const char *key, const char *value)
{
	struct override *e = ovr_find(*o, *n, key), *grown;
	char *v = strdup(value), *k = NULL;

	if (v == NULL)
		return -ENOMEM;
	if (e != NULL) {
		free(e->value);
		e->value = v;
		return 0;
	}
	k = strdup(key);
	grown = realloc(*o, (*n + 1) * sizeof(**o));
	if (k == NULL || grown == NULL) {
		free(k);
		free(v);
		if (grown != NULL)
			*o = grown;
		return -ENOMEM;
	}
	*o = grown;
	(*o)[*n] = (struct override){ k, v };
	(*n)++;
	return 0;
}

static void ovr_del(struct override *o, size_t *n, const char *key)
{
	struct override *e = ovr_find(o, *n, key);

	if (e == NULL)
		return;
	free(e->key);
	free(e->value);
	memmove(e, e + 1, (size_t)(o + *n - (e + 1)) * sizeof(*o));
	(*n)--;
}

/* Deep copy of a list.  Returns 0 and *out owned, or -ENOMEM. */
static int ovr_dup(const struct override *o, size_t n, struct override **out)
{
	struct override *c = NULL;
	size_t nc = 0;

	for (size_t i = 0; i < n; i++) {
		if (ovr_set(&c, &nc, o[i].key, o[i].value) < 0) {
			ovr_free(c, nc);
			return -ENOMEM;
		}
	}
	*out = c;
	return 0;
}

/* The effective config: defaults with the overrides applied in order.
 * Returns 0, -ENOENT (unknown or broker-only key) or -EDOM (bad value),
 * with err "key: reason" from the config module. */
static int cfg_build(const struct log_config *defaults, const struct override *o,
		     size_t n, struct log_config *out, char *err, size_t errlen)
{
	struct log_config c = *defaults;

	for (size_t i = 0; i < n; i++) {
		int rc = config_topic_set(&c, o[i].key, o[i].value, err, errlen);
		if (rc < 0)
			return rc == -EINVAL ? -EDOM : rc;
	}
	*out = c;
	return 0;
}

struct key_probe {
	const char *key;
	bool found;
};

static void key_probe_fn(const char *key, const char *value, void *arg)
{
	struct key_probe *kp = arg;

	(void)value;
	if (strcmp(key, kp->key) == 0)
		kp->found = true;
}

/* 0 if `key` is a topic-level config key, else -ENOENT with err set. */
static int topic_key_check(const struct log_config *any, const char *key, char *err,
			   size_t errlen)
{
	struct key_probe kp = { key, false };
	struct log_config scratch = *any;

	config_topic_each(any, key_probe_fn, &kp);
	if (kp.found)
		return 0;
	/* config_topic_set must refuse a non-topic key with -ENOENT whatever the
	 * value; ask it so the message is the config module's own. */
	if (config_topic_set(&scratch, key, "0", err, errlen) != -ENOENT)
		set_err(err, errlen, "%s: not a topic-level key", key);
	return -ENOENT;
}

/* --- topics in memory ------------------------------------------------------- */

/* A topic with no logs open yet.  Returns NULL on ENOMEM. */
static struct topic *topic_new(const char *name, int partitions)
{
	struct topic *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->name = strdup(name);
	t->parts = calloc((size_t)partitions, sizeof(*t->parts));
	if (t->name == NULL || t->parts == NULL) {
		free(t->name);
		free(t->parts);
		free(t);
		return NULL;
	}
	t->partitions = partitions;
	for (int p = 0; p < partitions; p++) {
		t->parts[p].t = t;
		LIST_INIT(&t->parts[p].waiters);
	}
	return t;
}

/* Free a topic whose logs are closed, destroyed or were never opened. */
static void topic_free(struct topic *t)
{
	if (t == NULL)
		return;
	ovr_free(t->ovr, t->novr);
	free(t->parts);
	free(t->name);
	free(t);
}

/* Wake every waiter of `pt` with `reason`.  The waiters move to a private
 * list first, so one that a wake callback arms (again) waits for the next
 * wake-up; each is unlinked and disarmed just before its callback, so a
 * callback may topic_unwait (and free) any other waiter of the batch. */
static void wake_all(struct part *pt, int reason)
{
	struct waiter_list batch = LIST_HEAD_INITIALIZER(batch);
	struct topic_waiter *w;

	/* Newest first on the partition's list; reversed here: oldest first. */
	while ((w = LIST_FIRST(&pt->waiters)) != NULL) {
		LIST_REMOVE(w, link);
		LIST_INSERT_HEAD(&batch, w, link);
	}
	while ((w = LIST_FIRST(&batch)) != NULL) {
		LIST_REMOVE(w, link);
		w->armed = false;
		w->wake(w, reason);
	}
}

/* Disarm every waiter of `pt` without calling it (registry shutdown). */
static void disarm_all(struct part *pt)
{
	struct topic_waiter *w;

	while ((w = LIST_FIRST(&pt->waiters)) != NULL) {
		LIST_REMOVE(w, link);
		w->armed = false;
	}
}

static void on_hw(struct log *log, void *arg)
{
	(void)log;
	wake_all(arg, 0);
}

static int cmp_topic(const void *a, const void *b)
{
	return strcmp((*(struct topic *const *)a)->name, (*(struct topic *const *)b)->name);
}

static int cmp_name_topic(const void *key, const void *elem)
{
	return strcmp(key, (*(struct topic *const *)elem)->name);
}

/* Index where `name` is or would be inserted. */
static size_t reg_lower_bound(const struct topic_reg *r, const char *name)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(r->topics[mid]->name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int reg_reserve(struct topic_reg *r, size_t n)
{
	struct topic **g;
	size_t cap;

	if (n <= r->cap)
		return 0;
	cap = r->cap ? 2 * r->cap : 16;
	while (cap < n)
		cap *= 2;
	g = realloc(r->topics, cap * sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	r->topics = g;
	r->cap = cap;
	return 0;
}

/* Insert t at its place by name (room reserved by the caller). */
static void reg_insert(struct topic_reg *r, struct topic *t)
{
	size_t i = reg_lower_bound(r, t->name);

	assert(r->n < r->cap);
	memmove(&r->topics[i + 1], &r->topics[i], (r->n - i) * sizeof(*r->topics));
	r->topics[i] = t;
	r->n++;
}

static void reg_remove(struct topic_reg *r, struct topic *t)
{
	size_t i = reg_lower_bound(r, t->name);

	assert(i < r->n && r->topics[i] == t);
	memmove(&r->topics[i], &r->topics[i + 1], (r->n - i - 1) * sizeof(*r->topics));
	r->n--;
}

/* --- topics.meta -------------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Replace topics.meta with header + payload: write topics.meta.tmp, fsync,
 * rename over topics.meta, fsync the directory.  Returns 0 once the rename
 * happened, or -errno (logged) with topics.meta unchanged.  A failed
 * directory fsync after the rename is logged but returns 0: the new file is
 * the one every later reader sees, so memory must follow it (invariant 2);
 * only its survival of a power loss is in doubt. */
static int meta_write(struct topic_reg *r, const void *payload, size_t len)
{
	struct meta_hdr h = {
		.magic = htole32(META_MAGIC),
		.version = htole32(META_VERSION),
		.len = htole32((uint32_t)len),
		.crc = htole32(batch_crc32c(0, payload, len)),
	};
	const char *what = "create";
	int fd, rc;

	fd = openat(r->dirfd, META_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	what = "write";
	rc = write_all(fd, &h, sizeof(h));
	fp_hit("topic.meta.write", NULL); /* a torn topics.meta.tmp */
	if (rc == 0)
		rc = write_all(fd, payload, len);
	if (rc == 0 && fsync(fd) < 0) {
		what = "fsync";
		rc = -errno;
	}
	if (close(fd) < 0 && rc == 0) {
		what = "close";
		rc = -errno;
	}
	if (rc < 0)
		goto fail_unlink;
	fp_hit("topic.meta.rename", NULL); /* tmp durable, not yet renamed */
	if (renameat(r->dirfd, META_TMP, r->dirfd, META_NAME) < 0) {
		what = "rename";
		rc = -errno;
		goto fail_unlink;
	}
	fp_hit("topic.meta.dirsync", NULL); /* renamed, directory not fsynced */
	rc = fsync_dirfd(r->dirfd);
	if (rc < 0)
		log_msg_errno(LOGL_ERROR, rc, "%s/%s replaced, but fsync of %s failed: "
			      "the change may not survive a crash", r->dir, META_NAME, r->dir);
	return 0;
fail_unlink:
	unlinkat(r->dirfd, META_TMP, 0);
fail:
	log_msg_errno(LOGL_ERROR, rc, "cannot %s %s/%s", what, r->dir, META_TMP);
	return rc;
}

/* Write the registry's topics to topics.meta, leaving out `skip` and
 * putting `put` in place of the topic of the same name (or adding it).
 * Borrows everything.  Returns 0 or -errno (logged; file unchanged). */
static int meta_save(struct topic_reg *r, const struct topic *skip, const struct topic *put,
		     uint64_t next_id)
{
	Brokerd__Meta__Topics m = BROKERD__META__TOPICS__INIT;
	Brokerd__Meta__Topic *mt = NULL, **pmt = NULL;
	Brokerd__Meta__TopicOverride *mo = NULL, **pmo = NULL;
	const struct topic **list = NULL;
	size_t n = 0, novr = 0, k = 0;
	uint8_t *buf = NULL;
	size_t len;
	int rc = -ENOMEM;

	list = calloc(r->n + 1, sizeof(*list));
	if (list == NULL)
		goto out;
	for (size_t i = 0; i < r->n; i++) {
		const struct topic *t = r->topics[i];
		if (t == skip)
			continue;
		if (put != NULL && strcmp(put->name, t->name) == 0) {
			list[n++] = put;
			put = NULL;
		} else {
			list[n++] = t;
		}
	}
	if (put != NULL)
		list[n++] = put;
	for (size_t i = 0; i < n; i++)
		novr += list[i]->novr;
	mt = calloc(n + 1, sizeof(*mt));
	pmt = calloc(n + 1, sizeof(*pmt));
	mo = calloc(novr + 1, sizeof(*mo));
	pmo = calloc(novr + 1, sizeof(*pmo));
	if (mt == NULL || pmt == NULL || mo == NULL || pmo == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct topic *t = list[i];

		mt[i] = (Brokerd__Meta__Topic)BROKERD__META__TOPIC__INIT;
		mt[i].name = t->name;
		mt[i].id = t->id;
		mt[i].partitions = (uint32_t)t->partitions;
		mt[i].created_ms = t->created_ms;
		mt[i].n_overrides = t->novr;
		mt[i].overrides = &pmo[k];
		for (size_t j = 0; j < t->novr; j++, k++) {
			mo[k] = (Brokerd__Meta__TopicOverride)BROKERD__META__TOPIC_OVERRIDE__INIT;
			mo[k].key = t->ovr[j].key;
			mo[k].value = t->ovr[j].value;
			pmo[k] = &mo[k];
		}
		pmt[i] = &mt[i];
	}
	m.next_id = next_id;
	m.n_topics = n;
	m.topics = pmt;
	len = brokerd__meta__topics__get_packed_size(&m);
	if (len > META_MAX) {
		rc = -EFBIG;
		log_msg(LOGL_ERROR, "%s/%s: %zu bytes of topic metadata, more than %u",
			r->dir, META_NAME, len, META_MAX);
		goto out;
	}
	buf = malloc(len + 1);
	if (buf == NULL)
		goto out;
	brokerd__meta__topics__pack(&m, buf);
	rc = meta_write(r, buf, len);
out:
	if (rc == -ENOMEM)
		log_msg(LOGL_ERROR, "%s/%s: out of memory", r->dir, META_NAME);
	free(buf);
	free(pmo);
	free(mo);
	free(pmt);
	free(mt);
	free(list);
	return rc;
}

/* Read and check topics.meta.  Returns 0 and *out owned (free_unpacked),
 * -ENOENT when there is no file, or (logged, naming the file) -EBADMSG for
 * a damaged file, -EPROTONOSUPPORT for an unknown version, or -errno. */
static int meta_read(struct topic_reg *r, Brokerd__Meta__Topics **out)
{
	struct meta_hdr h;
	struct stat st;
	uint8_t *buf = NULL;
	uint32_t crc;
	size_t size;
	ssize_t got;
	int fd, rc;

	fd = openat(r->dirfd, META_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			log_msg_errno(LOGL_ERROR, rc, "cannot open %s/%s", r->dir, META_NAME);
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		log_msg_errno(LOGL_ERROR, rc, "cannot stat %s/%s", r->dir, META_NAME);
		goto out;
	}
	if (st.st_size < META_HDR_SIZE || st.st_size > (off_t)META_HDR_SIZE + META_MAX) {
		rc = -EBADMSG;
		log_msg(LOGL_ERROR, "%s/%s: corrupt: %jd bytes is not a valid size",
			r->dir, META_NAME, (intmax_t)st.st_size);
		goto out;
	}
	size = (size_t)st.st_size;
	buf = malloc(size);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	got = pread(fd, buf, size, 0);
	if (got != (ssize_t)size) {
		rc = got < 0 ? -errno : -EIO;
		log_msg_errno(LOGL_ERROR, rc, "cannot read %s/%s", r->dir, META_NAME);
		goto out;
	}
	memcpy(&h, buf, sizeof(h));
	rc = -EBADMSG;
	if (le32toh(h.magic) != META_MAGIC) {
		log_msg(LOGL_ERROR, "%s/%s: corrupt: bad magic 0x%08" PRIx32 " (expected \"BKTM\")",
			r->dir, META_NAME, le32toh(h.magic));
		goto out;
	}
	if (le32toh(h.version) != META_VERSION) {
		rc = -EPROTONOSUPPORT;
		log_msg(LOGL_ERROR, "%s/%s: version %" PRIu32 " is not supported (expected %u)",
			r->dir, META_NAME, le32toh(h.version), META_VERSION);
		goto out;
	}
	if ((size_t)le32toh(h.len) != size - META_HDR_SIZE) {
		log_msg(LOGL_ERROR, "%s/%s: corrupt: header says %" PRIu32 " payload bytes, "
			"the file holds %zu", r->dir, META_NAME, le32toh(h.len), size - META_HDR_SIZE);
		goto out;
	}
	crc = batch_crc32c(0, buf + META_HDR_SIZE, size - META_HDR_SIZE);
	if (crc != le32toh(h.crc)) {
		log_msg(LOGL_ERROR, "%s/%s: corrupt: CRC-32C 0x%08" PRIx32 " of the payload, "
			"header says 0x%08" PRIx32, r->dir, META_NAME, crc, le32toh(h.crc));
		goto out;
	}
	*out = brokerd__meta__topics__unpack(NULL, size - META_HDR_SIZE, buf + META_HDR_SIZE);
	if (*out == NULL) {
		log_msg(LOGL_ERROR, "%s/%s: corrupt: the payload does not decode", r->dir,
			META_NAME);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Fill r->topics (no logs yet) from a decoded topics.meta, checking every
 * field as strictly as topic_create would.  Returns 0, or -EINVAL (logged
 * naming the file and the topic) / -ENOMEM; the caller frees the topics. */
static int meta_load(struct topic_reg *r, const Brokerd__Meta__Topics *m)
{
	char err[256];
	uint64_t *ids = NULL, max_id = 0;
	int rc;

	rc = reg_reserve(r, m->n_topics + 1);
	ids = calloc(m->n_topics + 1, sizeof(*ids));
	if (rc < 0 || ids == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m->n_topics; i++) {
		const Brokerd__Meta__Topic *mt = m->topics[i];
		struct topic *t;

		rc = topic_name_check(mt->name, strlen(mt->name), err, sizeof(err));
		if (rc < 0) {
			log_msg(LOGL_ERROR, "%s/%s: topic %zu: %s", r->dir, META_NAME, i, err);
			goto out;
		}
		if (mt->partitions < 1 || mt->partitions > TOPIC_PARTITIONS_MAX || mt->id == 0) {
			rc = -EINVAL;
			log_msg(LOGL_ERROR, "%s/%s: topic \"%s\": %s", r->dir, META_NAME, mt->name,
				mt->id == 0 ? "id 0" : "partition count out of range");
			goto out;
		}
		t = topic_new(mt->name, (int)mt->partitions);
		if (t == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		r->topics[r->n++] = t;
		t->id = mt->id;
		t->created_ms = mt->created_ms;
		ids[i] = mt->id;
		if (mt->id > max_id)
			max_id = mt->id;
		for (size_t j = 0; j < mt->n_overrides; j++) {
			const Brokerd__Meta__TopicOverride *o = mt->overrides[j];
			if (ovr_find(t->ovr, t->novr, o->key) != NULL) {
				rc = -EINVAL;
				log_msg(LOGL_ERROR, "%s/%s: topic \"%s\": override %s given twice",
					r->dir, META_NAME, t->name, o->key);
				goto out;
			}
			rc = ovr_set(&t->ovr, &t->novr, o->key, o->value);
			if (rc < 0)
				goto out;
		}
		rc = cfg_build(&r->defaults, t->ovr, t->novr, &t->cfg, err, sizeof(err));
		if (rc < 0) {
			rc = -EINVAL;
			log_msg(LOGL_ERROR, "%s/%s: topic \"%s\": %s", r->dir, META_NAME, t->name,
				err);
			goto out;
		}
	}
	qsort(r->topics, r->n, sizeof(*r->topics), cmp_topic);
	qsort(ids, m->n_topics, sizeof(*ids), cmp_u64);
	for (size_t i = 1; i < r->n; i++) {
		if (strcmp(r->topics[i - 1]->name, r->topics[i]->name) == 0) {
			rc = -EINVAL;
			log_msg(LOGL_ERROR, "%s/%s: topic \"%s\" listed twice", r->dir, META_NAME,
				r->topics[i]->name);
			goto out;
		}
		if (ids[i - 1] == ids[i]) {
			rc = -EINVAL;
			log_msg(LOGL_ERROR, "%s/%s: topic id %" PRIu64 " used twice", r->dir,
				META_NAME, ids[i]);
			goto out;
		}
	}
	/* Tolerate a next_id that lags (ids stay unique either way). */
	r->next_id = m->next_id > max_id ? m->next_id : max_id + 1;
	rc = 0;
out:
	free(ids);
	return rc;
}

/* --- partitions -------------------------------------------------------------------- */

/* Open partition p of t at start-up.  A directory that topics.meta names but
 * that is missing is recreated empty instead of failing the start: create
 * makes the directories before the metadata names them, so this is never
 * our crash but outside damage (an operator's rm, a lost file system
 * subtree), and refusing to start would take every other topic offline for
 * one lost partition.  The loss is logged as an error.  `legacy`: adopting
 * a data dir without metadata, where a gap in the numbers is expected.
 * Returns 0 or -errno (logged, naming the partition). */
static int part_open(struct topic_reg *r, struct topic *t, int p, bool legacy)
{
	char path[PATH_LEN], dname[DIRNAME_MAX];
	struct stat st;
	int rc;

	part_dirname(t->name, p, dname);
	rc = part_path(r, t->name, p, path);
	if (rc < 0) {
		log_msg_errno(LOGL_ERROR, rc, "topic %s: partition %d: path too long", t->name, p);
		return rc;
	}
	if (fstatat(r->dirfd, dname, &st, 0) < 0) {
		rc = -errno;
		if (rc != -ENOENT) {
			log_msg_errno(LOGL_ERROR, rc, "cannot stat %s", path);
			return rc;
		}
		if (legacy)
			log_msg(LOGL_WARN, "%s is missing (a gap in the partitions of "
				"topic %s): creating it empty", path, t->name);
		else
			log_msg(LOGL_ERROR, "%s is missing although %s/%s lists partition "
				"%d of topic %s: recreating it EMPTY, its records are lost",
				path, r->dir, META_NAME, p, t->name);
	}
	rc = log_open(r->ctx, path, &t->cfg, LOG_OPEN_CREATE, &t->parts[p].log);
	if (rc < 0) {
		log_msg_errno(LOGL_ERROR, rc, "topic %s: cannot open partition %d (%s)", t->name,
			      p, path);
		return rc;
	}
	log_set_hw_cb(t->parts[p].log, on_hw, &t->parts[p]);
	return 0;
}

/* Close every open log of t (waiters disarmed silently).  Returns 0 or the
 * first -errno. */
static int topic_close_logs(struct topic *t)
{
	int rc = 0;

	for (int p = 0; p < t->partitions; p++) {
		struct part *pt = &t->parts[p];
		int prc;

		disarm_all(pt);
		if (pt->log == NULL)
			continue;
		log_set_hw_cb(pt->log, NULL, NULL);
		prc = log_close(pt->log);
		pt->log = NULL;
		if (prc < 0 && rc == 0)
			rc = prc;
	}
	return rc;
}

/* Destroy every open log of t (directories removed).  Returns 0 or the first
 * -errno (logged; a directory left behind is an orphan, removed at the next
 * start). */
static int topic_destroy_logs(struct topic *t)
{
	int rc = 0;

	for (int p = 0; p < t->partitions; p++) {
		struct part *pt = &t->parts[p];
		char dir[PATH_LEN];
		int prc;

		if (pt->log == NULL)
			continue;
		fp_hit("topic.delete.partition", NULL); /* some directories removed */
		snprintf(dir, sizeof(dir), "%s", log_dir(pt->log));
		log_set_hw_cb(pt->log, NULL, NULL);
		prc = log_destroy(pt->log);
		pt->log = NULL;
		if (prc < 0) {
			log_msg_errno(LOGL_ERROR, prc, "cannot remove %s (removed at the next "
				      "start)", dir);
			if (rc == 0)
				rc = prc;
		}
	}
	return rc;
}

/* Remove `dname` (a directory of data_dir) that no topic owns, logging it. */
static int remove_orphan(struct topic_reg *r, const char *dname)
{
	char path[PATH_LEN];
	int rc, n = snprintf(path, sizeof(path), "%s/%s", r->dir, dname);

	if (n < 0 || n >= (int)sizeof(path)) /* never remove a truncated path */
		return -ENAMETOOLONG;
	log_msg(LOGL_WARN, "removing %s: no topic in %s/%s owns it (left by a deleted "
		"topic or an interrupted create)", path, r->dir, META_NAME);
	rc = rmtree(path);
	if (rc < 0)
		log_msg_errno(LOGL_ERROR, rc, "cannot remove %s", path);
	return rc;
}

/* True if directory name `dname` is a partition of a listed topic. */
static bool owned(const struct topic_reg *r, const char *name, int p, bool canonical)
{
	const struct topic *t = topic_find(r, name);

	return canonical && t != NULL && p < t->partitions;
}

/* Remove every "<name>-<digits>" directory that is not a partition of a
 * listed topic; leave every other entry alone.  Returns 0 or -errno. */
static int remove_orphans(struct topic_reg *r)
{
	char **doomed = NULL, name[TOPIC_NAME_MAX + 1];
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	DIR *d = opendir(r->dir);

	if (d == NULL) {
		rc = -errno;
		log_msg_errno(LOGL_ERROR, rc, "cannot list %s", r->dir);
		return rc;
	}
	/* Collect first: removing entries while readdir walks is unspecified. */
	while ((de = readdir(d)) != NULL) {
		bool canonical;
		int p;

		if (!parse_part_dir(de->d_name, name, &p, &canonical) ||
		    owned(r, name, p, canonical) || !is_dir_at(r->dirfd, de->d_name))
			continue;
		if (n == cap) {
			char **g = realloc(doomed, (cap ? 2 * cap : 8) * sizeof(*g));
			if (g == NULL) {
				rc = -ENOMEM;
				break;
			}
			doomed = g;
			cap = cap ? 2 * cap : 8;
		}
		doomed[n] = strdup(de->d_name);
		if (doomed[n] == NULL) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		int prc = remove_orphan(r, doomed[i]);
		if (prc < 0 && rc == 0)
			rc = prc;
		free(doomed[i]);
	}
	free(doomed);
	if (n > 0) {
		int frc = fsync_dirfd(r->dirfd);
		if (frc < 0 && rc == 0)
			rc = frc;
	}
	return rc;
}

struct legacy_dir {
	char name[TOPIC_NAME_MAX + 1];
	int p;
};

static int cmp_legacy(const void *a, const void *b)
{
	const struct legacy_dir *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->p > y->p) - (x->p < y->p);
}

/* No topics.meta: adopt every "<name>-<n>" directory as partition n of
 * topic name, with the default config (a data directory from before topic
 * metadata existed).  A number this module would not have written ("07",
 * "123456") fails the start rather than be deleted as an orphan later.
 * Fills r->topics (no logs yet).  Returns 0 or -errno (logged). */
static int legacy_scan(struct topic_reg *r)
{
	struct legacy_dir *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int64_t now = now_wall_ms();
	int rc = 0;
	DIR *d = opendir(r->dir);

	if (d == NULL) {
		rc = -errno;
		log_msg_errno(LOGL_ERROR, rc, "cannot list %s", r->dir);
		return rc;
	}
	while ((de = readdir(d)) != NULL) {
		struct legacy_dir e;
		bool canonical;

		if (!parse_part_dir(de->d_name, e.name, &e.p, &canonical) ||
		    !is_dir_at(r->dirfd, de->d_name))
			continue;
		if (!canonical) {
			rc = -EINVAL;
			log_msg(LOGL_ERROR, "%s/%s: no %s to say which topic owns it, and it is "
				"not a partition directory this broker writes: move it away",
				r->dir, de->d_name, META_NAME);
			break;
		}
		if (n == cap) {
			struct legacy_dir *g = realloc(v, (cap ? 2 * cap : 16) * sizeof(*g));
			if (g == NULL) {
				rc = -ENOMEM;
				break;
			}
			v = g;
			cap = cap ? 2 * cap : 16;
		}
		v[n++] = e;
	}
	closedir(d);
	if (rc < 0)
		goto out;
	if (n > 0) /* qsort(NULL, 0, ...) is undefined */
		qsort(v, n, sizeof(*v), cmp_legacy);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		struct topic *t;

		while (j + 1 < n && strcmp(v[j + 1].name, v[i].name) == 0)
			j++;
		rc = reg_reserve(r, r->n + 1);
		t = rc == 0 ? topic_new(v[i].name, v[j].p + 1) : NULL;
		if (t == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		t->id = r->next_id++;
		t->created_ms = now;
		t->cfg = r->defaults;
		r->topics[r->n++] = t; /* v is sorted by name: so is r->topics */
		log_msg(LOGL_WARN, "no %s/%s: adopting %s-0..%d as topic %s (id %" PRIu64
			", default config)", r->dir, META_NAME, t->name, t->partitions - 1,
			t->name, t->id);
		i = j + 1;
	}
out:
	free(v);
	return rc;
}

/* Free every topic of r and r itself; logs closed. */
static int reg_free(struct topic_reg *r)
{
	int rc = 0;

	for (size_t i = 0; i < r->n; i++) {
		int trc = topic_close_logs(r->topics[i]);
		if (trc < 0 && rc == 0)
			rc = trc;
		topic_free(r->topics[i]);
	}
	free(r->topics);
	if (r->dirfd >= 0)
		close(r->dirfd);
	free(r->dir);
	free(r);
	return rc;
}

/* --- public --------------------------------------------------------------------- */

int topic_reg_open(const char *data_dir, struct log_ctx *ctx,
		   const struct log_config *defaults, struct topic_reg **out)
{
	struct topic_reg *r = calloc(1, sizeof(*r));
	Brokerd__Meta__Topics *m = NULL;
	bool legacy = false;
	int rc;

	if (r == NULL)
		return -ENOMEM;
	r->dirfd = -1;
	r->ctx = ctx;
	r->defaults = *defaults;
	r->next_id = 1;
	r->dir = strdup(data_dir);
	if (r->dir == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	r->dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dirfd < 0) {
		rc = -errno;
		log_msg_errno(LOGL_ERROR, rc, "cannot open data directory %s", data_dir);
		goto fail;
	}
	/* A temp file is only ever a metadata write that did not reach its
	 * rename: topics.meta is still the previous, complete state. */
	if (unlinkat(r->dirfd, META_TMP, 0) == 0)
		log_msg(LOGL_WARN, "removed %s/%s left by an interrupted metadata write",
			data_dir, META_TMP);
	else if (errno != ENOENT)
		log_msg_errno(LOGL_WARN, errno, "cannot remove %s/%s", data_dir, META_TMP);
	rc = meta_read(r, &m);
	if (rc == -ENOENT) {
		legacy = true;
		rc = legacy_scan(r);
	} else if (rc == 0) {
		rc = meta_load(r, m);
		brokerd__meta__topics__free_unpacked(m, NULL);
	}
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < r->n; i++) {
		for (int p = 0; p < r->topics[i]->partitions; p++) {
			rc = part_open(r, r->topics[i], p, legacy);
			if (rc < 0)
				goto fail;
		}
	}
	if (legacy) {
		rc = meta_save(r, NULL, NULL, r->next_id);
		if (rc < 0)
			goto fail;
	}
	/* Only once every listed partition opened: a start that fails must not
	 * have deleted anything. */
	rc = remove_orphans(r);
	if (rc < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	log_msg_errno(LOGL_ERROR, rc, "cannot open the topics of %s", data_dir);
	reg_free(r);
	return rc;
}

int topic_reg_close(struct topic_reg *r)
{
	return r == NULL ? 0 : reg_free(r);
}

size_t topic_reg_count(const struct topic_reg *r)
{
	return r->n;
}

struct topic *topic_reg_at(const struct topic_reg *r, size_t i)
{
	assert(i < r->n);
	return r->topics[i];
}

struct topic *topic_find(const struct topic_reg *r, const char *name)
{
	struct topic **t;

	if (r->n == 0)
		return NULL;
	t = bsearch(name, r->topics, r->n, sizeof(*r->topics), cmp_name_topic);
	return t != NULL ? *t : NULL;
}

int topic_create(struct topic_reg *r, const char *name, int partitions,
		 const char *const *keys, const char *const *values, size_t n,
		 char *err, size_t errlen, struct topic **out)
{
	struct topic *t = NULL;
	char path[PATH_LEN], dname[DIRNAME_MAX];
	int rc;

	rc = topic_name_check(name, strlen(name), err, errlen);
	if (rc < 0)
		return rc;
	if (topic_find(r, name) != NULL) {
		set_err(err, errlen, "topic \"%s\" already exists", name);
		return -EEXIST;
	}
	if (partitions < 1 || partitions > TOPIC_PARTITIONS_MAX) {
		set_err(err, errlen, "partition count %d is out of range (1..%d)", partitions,
			TOPIC_PARTITIONS_MAX);
		return -ERANGE;
	}
	rc = reg_reserve(r, r->n + 1);
	t = rc == 0 ? topic_new(name, partitions) : NULL;
	if (t == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		rc = ovr_set(&t->ovr, &t->novr, keys[i], values[i]);
		if (rc < 0) {
			set_err(err, errlen, "out of memory");
			goto fail;
		}
	}
	rc = cfg_build(&r->defaults, t->ovr, t->novr, &t->cfg, err, errlen);
	if (rc < 0)
		goto fail;
	t->id = r->next_id;
	t->created_ms = now_wall_ms();
	for (int p = 0; p < partitions; p++) {
		part_dirname(name, p, dname);
		rc = part_path(r, name, p, path);
		if (rc < 0) {
			set_err(err, errlen, "data directory path too long");
			goto fail_logs;
		}
		/* No listed topic owns it: a crash during a delete, or during an
		 * earlier create, left it.  Its records must not reappear. */
		if (is_dir_at(r->dirfd, dname)) {
			rc = remove_orphan(r, dname);
			if (rc == 0)
				rc = fsync_dirfd(r->dirfd);
			if (rc < 0) {
				set_err(err, errlen, "cannot remove stale %s: %s", path,
					strerror(-rc));
				goto fail_logs;
			}
		}
		rc = log_open(r->ctx, path, &t->cfg, LOG_OPEN_CREATE, &t->parts[p].log);
		if (rc < 0) {
			set_err(err, errlen, "cannot create partition %s: %s", path,
				strerror(-rc));
			goto fail_logs;
		}
		fp_hit("topic.create.partition", NULL); /* dirs made, metadata not */
	}
	rc = meta_save(r, NULL, t, r->next_id + 1);
	if (rc < 0) {
		set_err(err, errlen, "cannot write %s/%s: %s", r->dir, META_NAME, strerror(-rc));
		goto fail_logs;
	}
	r->next_id++;
	reg_insert(r, t);
	for (int p = 0; p < partitions; p++)
		log_set_hw_cb(t->parts[p].log, on_hw, &t->parts[p]);
	log_msg(LOGL_INFO, "created topic %s (id %" PRIu64 ", partitions %d, overrides %zu)",
		name, t->id, partitions, t->novr);
	set_err(err, errlen, "%s", "");
	*out = t;
	return 0;
fail_logs:
	topic_destroy_logs(t);
fail:
	topic_free(t);
	return rc;
}

int topic_delete(struct topic_reg *r, struct topic *t)
{
	int rc;

	/* The metadata first (the commit point), so a failure here leaves the
	 * topic untouched and its waiters waiting; then nobody finds the topic
	 * any more while its waiters hear -ENOENT. */
	rc = meta_save(r, t, NULL, r->next_id);
	if (rc < 0)
		return rc;
	reg_remove(r, t);
	t->deleted = true;
	for (int p = 0; p < t->partitions; p++) {
		log_set_hw_cb(t->parts[p].log, NULL, NULL);
		wake_all(&t->parts[p], -ENOENT);
	}
	rc = topic_destroy_logs(t);
	log_msg(LOGL_INFO, "deleted topic %s (id %" PRIu64 ")", t->name, t->id);
	topic_free(t);
	return rc;
}

int topic_alter(struct topic_reg *r, struct topic *t,
		const char *const *set_keys, const char *const *set_values,
		size_t nset, const char *const *reset_keys, size_t nreset,
		char *err, size_t errlen)
{
	struct override *o = NULL;
	struct log_config cfg;
	struct topic shadow;
	size_t n = 0;
	int rc;

	set_err(err, errlen, "%s", "");
	/* Resets first, then sets: a key in both ends up set. */
	for (size_t i = 0; i < nreset; i++) {
		rc = topic_key_check(&r->defaults, reset_keys[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	rc = ovr_dup(t->ovr, t->novr, &o);
	if (rc < 0)
		goto nomem;
	n = t->novr;
	for (size_t i = 0; i < nreset; i++)
		ovr_del(o, &n, reset_keys[i]);
	for (size_t i = 0; i < nset; i++) {
		rc = ovr_set(&o, &n, set_keys[i], set_values[i]);
		if (rc < 0)
			goto nomem;
	}
	rc = cfg_build(&r->defaults, o, n, &cfg, err, errlen);
	if (rc < 0)
		goto fail;
	shadow = *t;
	shadow.ovr = o;
	shadow.novr = n;
	rc = meta_save(r, NULL, &shadow, r->next_id);
	if (rc < 0) {
		set_err(err, errlen, "cannot write %s/%s: %s", r->dir, META_NAME, strerror(-rc));
		goto fail;
	}
	ovr_free(t->ovr, t->novr);
	t->ovr = o;
	t->novr = n;
	t->cfg = cfg;
	for (int p = 0; p < t->partitions; p++)
		log_set_config(t->parts[p].log, &t->cfg);
	log_msg(LOGL_INFO, "altered topic %s: %zu set, %zu reset", t->name, nset, nreset);
	return 0;
nomem:
	rc = -ENOMEM;
	set_err(err, errlen, "out of memory");
fail:
	ovr_free(o, n);
	return rc;
}

const char *topic_name(const struct topic *t)
{
	return t->name;
}

uint64_t topic_id(const struct topic *t)
{
	return t->id;
}

int64_t topic_created_ms(const struct topic *t)
{
	return t->created_ms;
}

int topic_partitions(const struct topic *t)
{
	return t->partitions;
}

struct log *topic_log(const struct topic *t, int p)
{
	assert(p >= 0 && p < t->partitions);
	return t->parts[p].log;
}

const struct log_config *topic_config(const struct topic *t)
{
	return &t->cfg;
}

struct config_each_arg {
	const struct topic *t;
	void (*fn)(const char *key, const char *value, bool is_default, void *arg);
	void *arg;
};

static void each_fn(const char *key, const char *value, void *arg)
{
	struct config_each_arg *a = arg;

	a->fn(key, value, ovr_find(a->t->ovr, a->t->novr, key) == NULL, a->arg);
}

void topic_config_each(const struct topic *t,
		       void (*fn)(const char *key, const char *value,
				  bool is_default, void *arg),
		       void *arg)
{
	struct config_each_arg a = { t, fn, arg };

	config_topic_each(&t->cfg, each_fn, &a);
}

int topic_next_partition(struct topic *t)
{
	return (int)(t->rr++ % (unsigned)t->partitions);
}

void topic_wait(struct topic *t, int p, struct topic_waiter *w)
{
	/* Arming on a topic whose delete already said -ENOENT would leave the
	 * waiter on freed memory: a caller bug. */
	assert(!t->deleted);
	assert(p >= 0 && p < t->partitions);
	if (w->armed)
		return;
	LIST_INSERT_HEAD(&t->parts[p].waiters, w, link);
	w->armed = true;
}

void topic_unwait(struct topic_waiter *w)
{
	if (!w->armed)
		return;
	LIST_REMOVE(w, link);
	w->armed = false;
}

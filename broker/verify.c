/* verify — `brokerd --verify`: an offline check of a whole data directory.
 * Every partition directory (topics and __consumer_offsets) is scanned as a
 * recovery scan would scan it, but nothing is written, cut or rebuilt: the
 * report names each bad batch (file, byte position, offsets) and each index
 * that the next start would rebuild.  Holds the data-directory lock while it
 * runs, so it never reads files a broker is writing. */
#include "broker/verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/segment.h"
#include "proto/batch.h"

#define VERIFY_INTERVAL 4096 /* index spacing of the scan: irrelevant here */

struct vstats {
	FILE *out;
	uint32_t max_batch;
	long partitions, segments, batches_bad, tails, index_warnings;
	uint64_t bytes;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every .index entry must point at a batch header carrying the offset it
 * claims, outside any corrupt range.  Returns the first bad entry or -1. */
static long index_entries_bad(const struct segment *s)
{
	for (uint32_t i = 0; i < s->idx.noff; i++) {
		uint8_t hdr[BATCH_HEADER_SIZE];
		struct batch_header h;
		const struct idx_entry *e = &s->idx.off[i];

		if (seg_bad_at(s, e->pos) != NULL ||
		    pread(s->fd, hdr, sizeof(hdr), (off_t)e->pos) != (ssize_t)sizeof(hdr) ||
		    batch_header_decode(hdr, sizeof(hdr), &h) < 0 ||
		    h.base_offset != s->base + (int64_t)e->rel)
			return (long)i;
	}
	return -1;
}

/* Check the index files of segment `s` (already scanned: size known). */
static void check_index(struct vstats *v, const char *pdir, int dirfd, const struct segment *s,
			bool last)
{
	struct segment *x = seg_new(s->base);
	char name[SEG_NAME_MAX];
	long bad;
	int rc;

	if (x == NULL)
		return;
	x->fd = s->fd;
	x->size = s->size;
	x->next_offset = s->next_offset;
	x->bad = s->bad; /* borrowed for the check */
	x->nbad = s->nbad;
	seg_name(name, s->base, ".index");
	rc = seg_read_index(x, dirfd, s->size);
	if (rc == -ENOENT && last) {
		/* The active segment's index is written at checkpoints and at
		 * shutdown only; after a crash it may not exist yet. */
	} else if (rc < 0) {
		fprintf(v->out, "INDEX   %s/%s: %s (rebuilt from the log at the next start)\n",
			pdir, name, rc == -ENOENT ? "missing" : "unreadable or inconsistent");
		v->index_warnings++;
	} else if ((bad = index_entries_bad(x)) >= 0) {
		fprintf(v->out, "INDEX   %s/%s: entry %ld does not point at its batch (rebuilt "
			"from the log at the next start)\n", pdir, name, bad);
		v->index_warnings++;
	}
	x->fd = -1;
	x->bad = NULL;
	x->nbad = 0;
	seg_free(x);
}

/* Scan one segment file.  *next is the offset expected at its start (-1:
 * the first segment) and becomes the offset after it. */
static int check_segment(struct vstats *v, const char *pdir, int dirfd, int64_t base,
			 bool last, int64_t *next)
{
	char name[SEG_NAME_MAX];
	uint8_t hdr[SEG_HEADER_SIZE];
	struct seg_scan_result r;
	struct segment *s;
	struct stat st;
	int rc = 0;

	seg_name(name, base, ".log");
	s = seg_new(base);
	if (s == NULL)
		return -ENOMEM;
	s->fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		rc = -errno;
		fprintf(v->out, "ERROR   %s/%s: %s\n", pdir, name, strerror(-rc));
		goto out;
	}
	v->segments++;
	v->bytes += (uint64_t)st.st_size;
	if (*next >= 0 && *next != base)
		fprintf(v->out, "NOTE    %s/%s: previous segment ends at offset %" PRId64
			" (an interrupted roll or a corrupt tail; handled at start-up)\n",
			pdir, name, *next);
	if (st.st_size < SEG_HEADER_SIZE) {
		if (!last || st.st_size != 0) {
			fprintf(v->out, "%s %s/%s: %lld bytes, shorter than the file header\n",
				last ? "NOTE   " : "CORRUPT", pdir, name, (long long)st.st_size);
			v->batches_bad += !last;
		}
		*next = base;
		goto out;
	}
	if (pread(s->fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    seg_header_check(hdr, SEG_MAGIC_LOG, base) < 0) {
		fprintf(v->out, "CORRUPT %s/%s position 0: bad file header\n", pdir, name);
		v->batches_bad++;
		*next = base;
		goto out;
	}
	rc = seg_scan(s, SEG_HEADER_SIZE, base, v->max_batch, VERIFY_INTERVAL, &r);
	if (rc < 0) {
		fprintf(v->out, "ERROR   %s/%s: %s\n", pdir, name, strerror(-rc));
		goto out;
	}
	for (int i = 0; i < s->nbad; i++) {
		const struct seg_bad *b = &s->bad[i];
		fprintf(v->out, "CORRUPT %s/%s position %" PRIu64 ": offsets %" PRId64 "..%" PRId64
			" (%" PRIu64 " bytes) fail their check\n", pdir, name, b->pos, b->off,
			b->off_end - 1, b->end - b->pos);
		v->batches_bad++;
	}
	if (r.torn_bytes > 0) {
		if (last && seg_all_zero(s->fd, r.torn_pos, r.torn_bytes)) {
			/* zero-ahead left by a crash: cut at the next start */
		} else if (last) {
			fprintf(v->out, "CORRUPT %s/%s position %" PRIu64 ": offset %" PRId64
				": %" PRIu64 " bytes after the last valid batch do not validate "
				"(a write cut short by a crash is cut at the next start)\n",
				pdir, name, r.torn_pos, s->next_offset, r.torn_bytes);
			v->tails++;
		} else {
			fprintf(v->out, "CORRUPT %s/%s position %" PRIu64 ": offset %" PRId64
				"..: %" PRIu64 " bytes at the end of a sealed segment fail their "
				"check\n", pdir, name, r.torn_pos, s->next_offset, r.torn_bytes);
			v->batches_bad++;
		}
	}
	check_index(v, pdir, dirfd, s, last);
	*next = s->next_offset;
out:
	seg_free(s);
	return rc;
}

static int check_partition(struct vstats *v, const char *pdir)
{
	DIR *d = opendir(pdir);
	struct dirent *de;
	int64_t *bases = NULL, next = -1;
	size_t n = 0, cap = 0;
	int dfd, rc = 0;

	if (d == NULL)
		return -errno;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		int64_t base;
		if (seg_parse_name(de->d_name, &base) < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			int64_t *nb = realloc(bases, cap * sizeof(*nb));
			if (nb == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			bases = nb;
		}
		bases[n++] = base;
	}
	if (n == 0)
		goto out; /* not a partition */
	v->partitions++;
	qsort(bases, n, sizeof(*bases), cmp_i64);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = check_segment(v, pdir, dfd, bases[i], i + 1 == n, &next);
out:
	free(bases);
	closedir(d);
	return rc;
}

int verify_data_dir(const char *data_dir, uint32_t max_batch, FILE *out)
{
	struct vstats v = { .out = out, .max_batch = max_batch };
	char path[4096], **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int lockfd, rc = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/.lock", data_dir);
	lockfd = open(path, O_RDONLY | O_CLOEXEC);
	if (lockfd >= 0 && flock(lockfd, LOCK_SH | LOCK_NB) < 0) {
		fprintf(stderr, "brokerd: refusing to verify %s: a running brokerd holds its lock "
			"(%s); stop it first\n", data_dir, path);
		close(lockfd);
		return -EBUSY;
	}
	d = opendir(data_dir);
	if (d == NULL) {
		rc = -errno;
		fprintf(stderr, "brokerd: cannot verify %s: %s\n", data_dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (nn == NULL) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (names != NULL)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", data_dir, names[i]);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			rc = check_partition(&v, path);
	}
	if (rc < 0) {
		fprintf(stderr, "brokerd: verify stopped: %s\n", strerror(-rc));
		goto out;
	}
	fprintf(out, "verified %s: %ld partitions, %ld segments, %" PRIu64 " bytes; "
		"%ld corrupt ranges, %ld bad tails, %ld index warnings\n", data_dir,
		v.partitions, v.segments, v.bytes, v.batches_bad, v.tails, v.index_warnings);
	rc = v.batches_bad + v.tails > 0 ? 1 : 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

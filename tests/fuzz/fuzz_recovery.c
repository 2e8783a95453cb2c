/* fuzz_recovery — libFuzzer target for crash recovery (broker/log.c,
 * broker/segment.c, broker/index.c): the input becomes the files of one
 * partition directory, which log_open() then opens and recovers as after a
 * crash; the recovered log is read end to end, looked up by time, appended
 * to, closed, and opened again.
 *
 * Input: sections [kind u8][len u16 LE][len bytes]; a section cut short by
 * the end of the input keeps what there is.  kind % 8:
 *   0 1 2  .log .index .timeindex of segment 0
 *   3 4 5  .log .index .timeindex of a second segment, named by the base
 *          offset in its .log header (bytes 8..15) when that is a sane
 *          positive offset, else 1
 *   6      the checkpoint file
 *   7      the `corrupt` file (known corrupt ranges, text)
 * A later section of the same kind replaces an earlier one.
 *
 * Properties checked besides ASan/UBSan/LeakSanitizer: log_read only ever
 * serves whole batches that validate (without a checkpoint file, which
 * recovery trusts by design), with offsets from the slice's first offset
 * up; start <= hw <= end; an append after recovery is readable at its
 * offset; a close and reopen keeps the end offset. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/log.h"
#include "broker/logging.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "proto/le.h"
#include "tests/unit/testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NKINDS       8
#define MAX_READS    4096
#define READ_MAX     (256u << 10)
#define WAIT_SECONDS 10

static struct event_base *base;
static struct uring *u;
static struct log_ctx *ctx;
static struct event *tick;
static char *tmp, dir[4200];

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "fuzz_recovery: %s\n", what);
	abort();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void teardown(void)
{
	log_ctx_free(ctx);
	uring_free(u);
	event_free(tick);
	event_base_free(base);
	tu_rmtree(tmp);
	free(tmp);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct log_ctx_opts opts = { .max_open_segments = 16, .max_batch_bytes = 1u << 20 };
	struct timeval tv = { 0, 50 * 1000 };

	(void)argc;
	(void)argv;
	/* quiet (recovery logs every repair); FUZZ_LOG=1 shows the broker's log */
	log_msg_level = getenv("FUZZ_LOG") != NULL ? LOGL_DEBUG : LOGL_ERROR + 1;
	tmp = tu_mkdtemp();
	if (tmp == NULL)
		die("cannot create a temporary directory");
	snprintf(dir, sizeof(dir), "%s/t-0", tmp);
	base = event_base_new();
	if (base == NULL || uring_new(base, 64, &u) < 0 || log_ctx_new(u, &opts, &ctx) < 0)
		die("no event base, io_uring or log context");
	tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
	if (tick == NULL || event_add(tick, &tv) < 0)
		die("no tick timer");
	atexit(teardown);
	return 0;
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
	char path[4300];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n))
		die("cannot write a partition file");
	close(fd);
}

/* Empty the partition directory (in-process: this runs per input). */
static void clear_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

/* Lay the input out as a partition directory. */
static bool build_dir(const uint8_t *data, size_t size)
{
	static const char *const ext[] = { "log", "index", "timeindex" };
	const uint8_t *sec[NKINDS] = { NULL };
	size_t len[NKINDS] = { 0 };
	int64_t base2 = 1;
	size_t off = 0;
	char name[64];

	while (off + 3 <= size) {
		unsigned kind = data[off] % NKINDS;
		size_t n = get_le16(data + off + 1);

		off += 3;
		if (n > size - off)
			n = size - off;
		sec[kind] = data + off;
		len[kind] = n;
		off += n;
	}
	clear_dir();
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die("cannot create the partition directory");
	if (sec[3] != NULL && len[3] >= 16) {
		int64_t b = (int64_t)get_le64(sec[3] + 8);
		if (b > 0 && b < INT64_MAX / 2)
			base2 = b;
	}
	for (int k = 0; k < 6; k++) {
		if (sec[k] == NULL)
			continue;
		snprintf(name, sizeof(name), "%020lld.%s", k < 3 ? 0LL : (long long)base2,
			 ext[k % 3]);
		write_file(name, sec[k], len[k]);
	}
	if (sec[6] != NULL)
		write_file("checkpoint", sec[6], len[6]);
	if (sec[7] != NULL)
		write_file("corrupt", sec[7], len[7]);
	/* Recovery trusts a checkpoint's claims (CRC-protected) without a scan. */
	return sec[6] != NULL;
}

/* Read the log end to end; every batch served must validate. */
static void read_all(struct log *l, bool strict)
{
	int64_t off = log_start_offset(l);
	uint8_t *buf = malloc(READ_MAX * 2);

	if (buf == NULL)
		die("out of memory");
	for (int i = 0; i < MAX_READS; i++) {
		struct log_slice s;
		int64_t expect;
		uint64_t pos = 0;
		int rc = log_read(l, off, READ_MAX, &s);

		if (rc < 0 || s.len == 0) {
			if (rc == 0)
				log_slice_release(&s);
			break;
		}
		if (s.len > READ_MAX * 2) {
			log_slice_release(&s); /* one huge first batch */
			break;
		}
		if (pread(s.fd, buf, s.len, (off_t)s.pos) != (ssize_t)s.len)
			die("a slice is not readable");
		if (s.first_offset > off || s.next_offset <= off)
			die("a slice does not cover the offset asked for");
		expect = s.first_offset;
		while (strict && pos < s.len) {
			struct batch_header h;
			if (s.len - pos < BATCH_HEADER_SIZE ||
			    batch_header_decode(buf + pos, s.len - pos, &h) != 0 ||
			    batch_size(&h) > s.len - pos ||
			    batch_validate(buf + pos, batch_size(&h), &h) != 0)
			{
				fprintf(stderr, "slice pos %llu len %llu first %lld: batch at +%llu\n",
					(unsigned long long)s.pos, (unsigned long long)s.len,
					(long long)s.first_offset, (unsigned long long)pos);
				die("log_read served a batch that does not validate");
			}
			if (h.base_offset != expect)
				die("log_read served batches with unexpected offsets");
			expect = batch_last_offset(&h) + 1;
			pos += batch_size(&h);
		}
		if (strict && expect != s.next_offset)
			die("a slice's next offset is not after its last batch");
		off = s.next_offset;
		log_slice_release(&s);
	}
	free(buf);
}

struct app {
	struct log_append a;
	int res;
	bool done;
};

static void on_app(struct log_append *a, int res)
{
	struct app *p = (struct app *)a;

	p->res = res;
	p->done = true;
}

/* Append one small batch and read it back. */
static void append_one(struct log *l)
{
	struct batch_builder bb;
	struct app p = { .res = 0 };
	struct log_slice s;
	uint8_t *buf;
	size_t n;
	time_t deadline = time(NULL) + WAIT_SECONDS;

	batch_builder_init(&bb);
	if (batch_builder_add(&bb, 1700000000000LL, "k", 1, "v", 1, NULL, 0) != 0 ||
	    batch_builder_finish(&bb, 0, &buf, &n) != 0)
		die("cannot build a batch");
	p.a = (struct log_append){ .buf = buf, .len = n, .acks = LOG_ACKS_ALL, .cb = on_app };
	if (log_append(l, &p.a) == 0) {
		while (!p.done) {
			if (time(NULL) > deadline)
				die("an append after recovery never completed");
			event_base_loop(base, EVLOOP_ONCE);
		}
		if (p.res == 0) {
			if (log_read(l, p.a.base_offset, 1, &s) != 0 || s.len != n ||
			    s.first_offset != p.a.base_offset)
				die("an append after recovery is not readable at its offset");
			log_slice_release(&s);
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log_config cfg;
	struct log *l;
	int64_t end, off;
	bool ckpt = build_dir(data, size);

	log_config_defaults(&cfg);
	if (log_open(ctx, dir, &cfg, 0, &l) < 0)
		return 0;
	if (!(log_start_offset(l) <= log_high_watermark(l) &&
	      log_high_watermark(l) <= log_end_offset(l)))
		die("recovered offsets out of order");
	read_all(l, !ckpt);
	log_offset_for_time(l, 0, &off);
	log_offset_for_time(l, 1700000000000LL, &off);
	log_offset_for_time(l, INT64_MAX, &off);
	if (log_error(l) == 0)
		append_one(l);
	end = log_end_offset(l);
	if (log_close(l) < 0)
		return 0;
	/* Cleanly closed: opening again scans nothing and finds the same end. */
	if (log_open(ctx, dir, &cfg, 0, &l) < 0)
		die("a log closed cleanly after recovery does not open again");
	if (log_end_offset(l) != end)
		die("the end offset changed across a clean close");
	read_all(l, !ckpt);
	log_close(l);
	return 0;
}

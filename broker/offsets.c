/* offsets — see offsets.h.  The table lives in memory; the internal log
 * <data>/__consumer_offsets/ and the snapshot file beside its segments make
 * it durable.
 *
 * Invariants:
 *  1. The table holds exactly the records of the log below `applied`,
 *     applied in log order: snapshot + replay at open, then the append
 *     callback of each durable batch (res 0).  Nothing else changes it, so
 *     a reader never sees an offset that a crash could take back.
 *  2. The snapshot on disk holds every record below its covered offset; a
 *     segment is deleted only once a snapshot covering it is durable, so
 *     the log start offset never passes the snapshot's covered offset.
 *  3. Within a group, topics are sorted by name and partitions by number;
 *     groups live in a hash table and are sorted only when listed.
 *
 * Record key (every record of the log), version 1, little-endian:
 *   off      size  field
 *     0         1  version      1
 *     1         2  group_len    u16, 1..OFS_GROUP_MAX
 *     3         g  group        bytes, no NUL
 *     3+g       2  topic_len    u16, >= 1
 *     5+g       t  topic        bytes, no NUL
 *     5+g+t     4  partition    u32
 * Record value, version 1 (a null value, length -1, is a tombstone):
 *     0         1  version      1
 *     1         8  offset       i64 >= 0
 *     9         8  commit_time  i64 ms since the epoch
 *    17         2  meta_len     u16, <= OFS_METADATA_MAX
 *    19         m  metadata     bytes, no NUL
 * Batch: one per commit; deletes are split into batches of at most
 * OFS_CHUNK_BYTES.  Record timestamps are the commit time.
 *
 * Snapshot file `snapshot` (replaced atomically: snapshot.tmp, fdatasync,
 * rename, fsync of the directory):
 *     0         4  magic        "BKOF" (u32 0x464f4b42)
 *     4         2  version      1
 *     6         2  flags        0
 *     8         8  covered      i64: every record below it is included
 *    16         4  group_count  u32
 *    20         4  reserved     0
 *    24         8  entry_count  u64 (group, topic, partition) entries
 *    32            groups, strictly increasing by name (bytewise):
 *                    u16 group_len, group, u32 topic_count >= 1, then
 *                    topics, strictly increasing by name:
 *                      u16 topic_len, topic, u32 part_count >= 1, then
 *                      partitions, strictly increasing:
 *                        u32 partition, i64 offset, i64 commit_time,
 *                        u16 meta_len, metadata
 *   end-4       4  crc          CRC-32C of bytes [0, end-4)
 */
#include "broker/offsets.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/failpoint.h"
#include "broker/logging.h"
#include "broker/uring.h"
#include "proto/batch.h"
#include "proto/le.h"

#define OFS_DIR_NAME       "__consumer_offsets"
#define OFS_SNAP_NAME      "snapshot"
#define OFS_SNAP_TMP       "snapshot.tmp"
#define OFS_SEGMENT_BYTES  (16LL << 20)
#define OFS_CHUNK_BYTES    (64u << 10)  /* largest delete batch */
#define OFS_REPLAY_BYTES   (1u << 20)   /* log_read size at start-up */
#define OFS_TOPIC_LEN_MAX  UINT16_MAX

#define OFS_KEY_VERSION    1
#define OFS_KEY_FIXED      9            /* key bytes besides the names */
#define OFS_VALUE_VERSION  1
#define OFS_VALUE_FIXED    19           /* value bytes besides metadata */

#define SNAP_MAGIC         0x464f4b42u  /* "BKOF" */
#define SNAP_VERSION       1
#define SNAP_HEADER_SIZE   32
#define SNAP_CRC_SIZE      4
#define SNAP_GROUP_FIXED   6            /* u16 len + u32 topic count */
#define SNAP_TOPIC_FIXED   6            /* u16 len + u32 partition count */
#define SNAP_PART_FIXED    22           /* u32 + i64 + i64 + u16 */

_Static_assert(OFS_KEY_FIXED == 1 + 2 + 2 + 4, "key layout");
_Static_assert(OFS_VALUE_FIXED == 1 + 8 + 8 + 2, "value layout");
_Static_assert(SNAP_HEADER_SIZE == 4 + 2 + 2 + 8 + 4 + 4 + 8, "snapshot header layout");
_Static_assert(SNAP_PART_FIXED == 4 + 8 + 8 + 2, "snapshot partition layout");
_Static_assert(OFS_GROUP_MAX <= UINT16_MAX && OFS_METADATA_MAX <= UINT16_MAX,
	       "lengths are u16 on disk");

/* A deleted topic's commits still in flight: records for `topic` below
 * log offset `upto` are not applied (their tombstones follow them in the
 * log).  Dropped once everything below `upto` is applied. */
struct fence {
	char *topic;            /* owned */
	size_t len;
	int64_t upto;
};

/* One committed offset. */
struct part {
	uint32_t partition;
	uint16_t meta_len;
	int64_t offset;
	int64_t time_ms;
	char *meta;             /* owned, NUL-terminated; NULL when empty */
};

/* The partitions of one topic in one group, sorted by number. */
struct tp {
	char *name;             /* owned */
	size_t len;
	struct part *parts;
	size_t n, cap;
};

struct group {
	char *name;             /* owned */
	size_t len;
	uint64_t hash;
	struct tp **tps;        /* sorted by name */
	size_t ntp, cap;
	size_t nparts;          /* over all its topics */
};

/* Open addressing, linear probing, backward-shift deletion. */
struct gmap {
	struct group **slots;   /* NULL = empty; capacity a power of two */
	size_t cap, n;
};

enum snap_step { SNAP_IDLE = 0, SNAP_WRITE, SNAP_FSYNC, SNAP_RENAME, SNAP_DIRSYNC };

/* The snapshot being written by ofs_compact, one io_uring step at a time. */
struct snap_io {
	struct uring_op op;
	struct offsets *o;
	enum snap_step step;
	int fd;                 /* snapshot.tmp */
	uint8_t *buf;           /* owned by the write until it completes */
	size_t len, done;
	int64_t covered;
	size_t entries;
};

struct offsets {
	char *dir;              /* <data>/__consumer_offsets */
	int dirfd;
	struct uring *u;
	struct log *log;
	struct gmap groups;
	size_t nentries;
	int64_t applied;        /* inv. 1: the table holds the log below it */
	int64_t snap_covered;   /* offset the durable snapshot covers; -1 none */
	struct snap_io snap;
	LIST_HEAD(, ofs_op) inflight; /* commits and deletes not yet durable */
	struct fence *fences;   /* topics deleted while commits were in flight */
	size_t nfences;
};

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

/* --- memory ---------------------------------------------------------------- */

/* The table must follow the log exactly (inv. 1): an allocation failure
 * while applying a durable record cannot be answered with an error, so the
 * daemon stops, as it does on out-of-memory elsewhere. */
static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL) {
		log_msg(LOGL_ERROR, "out of memory (%zu bytes) in the consumer offsets store", n);
		abort();
	}
	return q;
}

static void *xmalloc(size_t n)
{
	return xrealloc(NULL, n);
}

static char *xmemdup(const void *s, size_t len)
{
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, 64-bit. */
static uint64_t name_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Bytewise order, the order of strcmp for names without NUL. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* --- the table ------------------------------------------------------------- */

/* Slot of the group, or of the empty slot where it would go. */
static size_t gmap_slot(const struct gmap *m, const char *name, size_t len, uint64_t hash)
{
	size_t mask = m->cap - 1, i = (size_t)hash & mask;

	for (;; i = (i + 1) & mask) {
		const struct group *g = m->slots[i];
		if (g == NULL || (g->hash == hash && g->len == len && memcmp(g->name, name, len) == 0))
			return i;
	}
}

static struct group *gmap_find(const struct gmap *m, const char *name, size_t len)
{
	if (m->n == 0)
		return NULL;
	return m->slots[gmap_slot(m, name, len, name_hash(name, len))];
}

static void gmap_grow(struct gmap *m)
{
	struct group **old = m->slots;
	size_t oldcap = m->cap;

	m->cap = oldcap ? oldcap * 2 : 64;
	m->slots = xmalloc(m->cap * sizeof(*m->slots));
	memset(m->slots, 0, m->cap * sizeof(*m->slots));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i] != NULL)
			m->slots[gmap_slot(m, old[i]->name, old[i]->len, old[i]->hash)] = old[i];
	free(old);
}

static void gmap_remove(struct gmap *m, const struct group *g)
{
	size_t mask = m->cap - 1, i = gmap_slot(m, g->name, g->len, g->hash), j = i;

	assert(m->slots[i] == g);
	m->slots[i] = NULL;
	m->n--;
	/* Backward shift: move up every entry whose probe ran through i. */
	for (;;) {
		j = (j + 1) & mask;
		if (m->slots[j] == NULL)
			return;
		size_t home = (size_t)m->slots[j]->hash & mask;
		bool between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
		if (between)
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j] = NULL;
		i = j;
	}
}

static struct group *group_get(struct offsets *o, const char *name, size_t len)
{
	struct gmap *m = &o->groups;
	uint64_t hash = name_hash(name, len);
	struct group *g;
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3)
		gmap_grow(m);
	i = gmap_slot(m, name, len, hash);
	if (m->slots[i] != NULL)
		return m->slots[i];
	g = xmalloc(sizeof(*g));
	memset(g, 0, sizeof(*g));
	g->name = xmemdup(name, len);
	g->len = len;
	g->hash = hash;
	m->slots[i] = g;
	m->n++;
	return g;
}

static void tp_free(struct tp *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->parts[i].meta);
	free(t->parts);
	free(t->name);
	free(t);
}

static void group_free(struct group *g)
{
	for (size_t i = 0; i < g->ntp; i++)
		tp_free(g->tps[i]);
	free(g->tps);
	free(g->name);
	free(g);
}

/* Index of the topic in g, or where it would go (*found false). */
static size_t tp_index(const struct group *g, const char *name, size_t len, bool *found)
{
	size_t lo = 0, hi = g->ntp;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(g->tps[mid]->name, g->tps[mid]->len, name, len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static size_t part_index(const struct tp *t, uint32_t partition, bool *found)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->parts[mid].partition == partition) {
			*found = true;
			return mid;
		}
		if (t->parts[mid].partition < partition)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static const struct part *table_find(const struct offsets *o, const char *group, size_t glen,
				     const char *topic, size_t tlen, uint32_t partition)
{
	const struct group *g = gmap_find(&o->groups, group, glen);
	bool found;
	size_t i;

	if (g == NULL)
		return NULL;
	i = tp_index(g, topic, tlen, &found);
	if (!found)
		return NULL;
	const struct tp *t = g->tps[i];
	i = part_index(t, partition, &found);
	return found ? &t->parts[i] : NULL;
}

/* Set (group, topic, partition) to the value; copies the names and meta. */
static void table_set(struct offsets *o, const char *group, size_t glen, const char *topic,
		      size_t tlen, uint32_t partition, int64_t offset, int64_t time_ms,
		      const char *meta, size_t meta_len)
{
	struct group *g = group_get(o, group, glen);
	struct tp *t;
	struct part *p;
	bool found;
	size_t i = tp_index(g, topic, tlen, &found);

	if (!found) {
		if (g->ntp == g->cap) {
			g->cap = g->cap ? 2 * g->cap : 2;
			g->tps = xrealloc(g->tps, g->cap * sizeof(*g->tps));
		}
		t = xmalloc(sizeof(*t));
		memset(t, 0, sizeof(*t));
		t->name = xmemdup(topic, tlen);
		t->len = tlen;
		memmove(g->tps + i + 1, g->tps + i, (g->ntp - i) * sizeof(*g->tps));
		g->tps[i] = t;
		g->ntp++;
	}
	t = g->tps[i];
	i = part_index(t, partition, &found);
	if (!found) {
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 4;
			t->parts = xrealloc(t->parts, t->cap * sizeof(*t->parts));
		}
		memmove(t->parts + i + 1, t->parts + i, (t->n - i) * sizeof(*t->parts));
		t->n++;
		g->nparts++;
		o->nentries++;
		t->parts[i] = (struct part){ .partition = partition };
	}
	p = &t->parts[i];
	free(p->meta);
	p->meta = meta_len > 0 ? xmemdup(meta, meta_len) : NULL;
	p->meta_len = (uint16_t)meta_len;
	p->offset = offset;
	p->time_ms = time_ms;
}

/* Forget (group, topic, partition); dropping emptied topics and groups. */
static void table_del(struct offsets *o, const char *group, size_t glen, const char *topic,
		      size_t tlen, uint32_t partition)
{
	struct group *g = gmap_find(&o->groups, group, glen);
	struct tp *t;
	bool found;
	size_t ti, pi;

	if (g == NULL)
		return;
	ti = tp_index(g, topic, tlen, &found);
	if (!found)
		return;
	t = g->tps[ti];
	pi = part_index(t, partition, &found);
	if (!found)
		return;
	free(t->parts[pi].meta);
	memmove(t->parts + pi, t->parts + pi + 1, (t->n - pi - 1) * sizeof(*t->parts));
	t->n--;
	g->nparts--;
	o->nentries--;
	if (t->n > 0)
		return;
	tp_free(t);
	memmove(g->tps + ti, g->tps + ti + 1, (g->ntp - ti - 1) * sizeof(*g->tps));
	g->ntp--;
	if (g->ntp > 0)
		return;
	gmap_remove(&o->groups, g);
	group_free(g);
}

/* Forget `topic` in every group now (ofs_delete_topic: the topic is gone
 * from the registry, so its offsets must not outlive it even before their
 * tombstones are durable). */
static void table_del_topic(struct offsets *o, const char *topic, size_t tlen)
{
	char **names = NULL;
	size_t n = 0;

	for (size_t i = 0; i < o->groups.cap; i++) {
		const struct group *g = o->groups.slots[i];
		bool found;
		if (g == NULL)
			continue;
		tp_index(g, topic, tlen, &found);
		if (!found)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xmemdup(g->name, g->len);
	}
	for (size_t i = 0; i < n; i++) {
		size_t glen = strlen(names[i]);
		struct group *g;
		bool found;
		size_t ti;
		/* table_del drops emptied topics and groups: look them up again */
		while ((g = gmap_find(&o->groups, names[i], glen)) != NULL) {
			ti = tp_index(g, topic, tlen, &found);
			if (!found)
				break;
			table_del(o, names[i], glen, topic, tlen, g->tps[ti]->parts[0].partition);
		}
		free(names[i]);
	}
	free(names);
}

static int group_ptr_cmp(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;

	return name_cmp(x->name, x->len, y->name, y->len);
}

/* Every group in name order; returns the array owned (free() it). */
static struct group **groups_sorted(const struct offsets *o, size_t *n)
{
	struct group **v = xmalloc((o->groups.n ? o->groups.n : 1) * sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < o->groups.cap; i++)
		if (o->groups.slots[i] != NULL)
			v[k++] = o->groups.slots[i];
	assert(k == o->groups.n);
	qsort(v, k, sizeof(*v), group_ptr_cmp);
	*n = k;
	return v;
}

static void table_free(struct offsets *o)
{
	for (size_t i = 0; i < o->groups.cap; i++)
		if (o->groups.slots[i] != NULL)
			group_free(o->groups.slots[i]);
	free(o->groups.slots);
	o->groups = (struct gmap){ 0 };
	o->nentries = 0;
}

/* --- records --------------------------------------------------------------- */

/* A name read from disk: 1..max bytes without NUL. */
static bool name_ok(const uint8_t *p, size_t len, size_t max)
{
	return len >= 1 && len <= max && memchr(p, '\0', len) == NULL;
}

static size_t key_encode(uint8_t *p, const char *group, size_t glen, const char *topic,
			 size_t tlen, uint32_t partition)
{
	p[0] = OFS_KEY_VERSION;
	put_le16(p + 1, (uint16_t)glen);
	memcpy(p + 3, group, glen);
	put_le16(p + 3 + glen, (uint16_t)tlen);
	memcpy(p + 5 + glen, topic, tlen);
	put_le32(p + 5 + glen + tlen, partition);
	return OFS_KEY_FIXED + glen + tlen;
}

static size_t value_encode(uint8_t *p, int64_t offset, int64_t time_ms, const char *meta,
			   size_t meta_len)
{
	p[0] = OFS_VALUE_VERSION;
	put_le64(p + 1, (uint64_t)offset);
	put_le64(p + 9, (uint64_t)time_ms);
	put_le16(p + 17, (uint16_t)meta_len);
	if (meta_len > 0)
		memcpy(p + 19, meta, meta_len);
	return OFS_VALUE_FIXED + meta_len;
}

/* A record key, decoded; the names point into the record. */
struct key {
	const char *group, *topic;
	size_t glen, tlen;
	uint32_t partition;
};

/* Decode the key of record r into *out.  Returns NULL, or why the key is
 * malformed. */
static const char *key_decode(const struct batch_record *r, struct key *out)
{
	const uint8_t *k = r->key;
	size_t klen = r->key_len > 0 ? (size_t)r->key_len : 0, glen, tlen;

	if (klen < OFS_KEY_FIXED)
		return "short key";
	if (k[0] != OFS_KEY_VERSION)
		return "unknown key version";
	glen = get_le16(k + 1);
	if (OFS_KEY_FIXED + glen > klen || !name_ok(k + 3, glen, OFS_GROUP_MAX))
		return "bad group name in key";
	tlen = get_le16(k + 3 + glen);
	if (OFS_KEY_FIXED + glen + tlen != klen || !name_ok(k + 5 + glen, tlen, OFS_TOPIC_LEN_MAX))
		return "bad topic name in key";
	*out = (struct key){ .group = (const char *)k + 3, .topic = (const char *)k + 5 + glen,
			     .glen = glen, .tlen = tlen, .partition = get_le32(k + 5 + glen + tlen) };
	return NULL;
}

/* Apply one record to the table.  Returns 0, or -EINVAL with *why set for a
 * malformed or unknown record (never ours: only a damaged log has them). */
static int apply_record(struct offsets *o, const struct batch_record *r, const char **why)
{
	const uint8_t *v = r->value;
	struct key key;
	const char *bad = key_decode(r, &key);

	if (bad != NULL) {
		*why = bad;
		return -EINVAL;
	}
	if (v == NULL) { /* tombstone */
		table_del(o, key.group, key.glen, key.topic, key.tlen, key.partition);
		return 0;
	}
	size_t vlen = (size_t)r->value_len;
	if (vlen < OFS_VALUE_FIXED || v[0] != OFS_VALUE_VERSION) {
		*why = vlen < OFS_VALUE_FIXED ? "short value" : "unknown value version";
		return -EINVAL;
	}
	int64_t offset = (int64_t)get_le64(v + 1), time_ms = (int64_t)get_le64(v + 9);
	size_t mlen = get_le16(v + 17);
	if (offset < 0 || mlen > OFS_METADATA_MAX || OFS_VALUE_FIXED + mlen != vlen ||
	    memchr(v + OFS_VALUE_FIXED, '\0', mlen) != NULL) {
		*why = "bad value";
		return -EINVAL;
	}
	for (size_t i = 0; i < o->nfences; i++)
		if (r->offset < o->fences[i].upto && o->fences[i].len == key.tlen &&
		    memcmp(o->fences[i].topic, key.topic, key.tlen) == 0)
			return 0; /* the topic was deleted after this commit */
	table_set(o, key.group, key.glen, key.topic, key.tlen, key.partition, offset, time_ms,
		  (const char *)v + OFS_VALUE_FIXED, mlen);
	return 0;
}

/* Validate one whole batch (CRC and structure) and apply its records with
 * offsets >= from, in order.  Sets *next to the offset after the batch.
 * Returns 0, or -errno with *why set (the records before the bad one are
 * applied: only start-up meets a bad batch, and it then fails). */
static int apply_batch(struct offsets *o, const uint8_t *buf, size_t len, int64_t from,
		       int64_t *next, const char **why)
{
	struct batch_iter it;
	struct batch_record r;
	int rc = batch_iter_init(&it, buf, len);

	if (rc < 0) {
		*why = rc == -EBADMSG ? "CRC mismatch" : "malformed record batch";
		return rc == -EBADMSG ? -EUCLEAN : rc;
	}
	while (batch_iter_next(&it, &r) == 1) {
		if (r.offset < from)
			continue;
		rc = apply_record(o, &r, why);
		if (rc < 0)
			return rc;
	}
	*next = batch_last_offset(&it.h) + 1;
	return 0;
}

/* --- appending ------------------------------------------------------------- */

/* Forget the fences every commit they guard has passed (applied or failed:
 * a failed append is never applied, and later ones are at higher offsets). */
static void fences_drop(struct offsets *o)
{
	size_t k = 0;
	int64_t end = LIST_EMPTY(&o->inflight) ? INT64_MAX : o->applied;

	for (size_t i = 0; i < o->nfences; i++) {
		if (o->fences[i].upto <= end) {
			free(o->fences[i].topic);
			continue;
		}
		o->fences[k++] = o->fences[i];
	}
	o->nfences = k;
}

/* A commit's batch is durable (res 0: apply it, inv. 1) or failed. */
static void on_append(struct log_append *a, int res)
{
	struct ofs_op *op = a->arg;
	struct offsets *o = op->o;

	LIST_REMOVE(op, inflight);
	if (res == 0) {
		const char *why = NULL;
		int64_t next = 0;
		fp_hit("ofs.commit.durable", NULL); /* durable, not applied or answered */
		int rc = apply_batch(o, op->buf, op->buflen, INT64_MIN, &next, &why);
		assert(rc == 0); /* we built it */
		(void)rc;
		assert(next > o->applied); /* callbacks come in offset order */
		o->applied = next;
	}
	fences_drop(o);
	free(op->buf);
	op->buf = NULL;
	op->buflen = 0;
	op->cb(op, res); /* may free op */
}

/* Append the batch `buf` (taken) for op.  Returns 0 (op->cb will run) or
 * -errno from log_append (buf freed, no callback). */
static int submit(struct offsets *o, struct ofs_op *op, uint8_t *buf, size_t len)
{
	int rc;

	op->o = o;
	op->buf = buf;
	op->buflen = len;
	op->app = (struct log_append){ .buf = buf, .len = len, .acks = LOG_ACKS_ALL,
				       .cb = on_append, .arg = op };
	fp_hit("ofs.commit.append", NULL); /* nothing written yet */
	LIST_INSERT_HEAD(&o->inflight, op, inflight);
	rc = log_append(o->log, &op->app);
	if (rc < 0) {
		LIST_REMOVE(op, inflight);
		free(buf);
		op->buf = NULL;
		op->buflen = 0;
	}
	return rc;
}

/* Completion of a batch nobody waits for (a chunk of a delete). */
static void on_internal_done(struct ofs_op *op, int res)
{
	if (res < 0 && res != -ECANCELED)
		log_msg_errno(LOGL_WARN, res, "consumer offsets: a delete was not recorded");
	free(op);
}

static int submit_internal(struct offsets *o, uint8_t *buf, size_t len)
{
	struct ofs_op *op = calloc(1, sizeof(*op));
	int rc;

	if (op == NULL) {
		free(buf);
		return -ENOMEM;
	}
	op->cb = on_internal_done;
	rc = submit(o, op, buf, len);
	if (rc < 0)
		free(op);
	return rc;
}

static bool group_valid(const char *group, size_t *len)
{
	if (group == NULL)
		return false;
	*len = strnlen(group, OFS_GROUP_MAX + 1);
	return *len >= 1 && *len <= OFS_GROUP_MAX;
}

static bool topic_valid(const char *topic, size_t *len)
{
	if (topic == NULL)
		return false;
	*len = strnlen(topic, (size_t)OFS_TOPIC_LEN_MAX + 1);
	return *len >= 1 && *len <= OFS_TOPIC_LEN_MAX;
}

int ofs_commit(struct offsets *o, const char *group, const struct ofs_entry *e, size_t n,
	       struct ofs_op *op)
{
	uint8_t value[OFS_VALUE_FIXED + OFS_METADATA_MAX];
	struct batch_builder b;
	size_t glen, tlen, maxt = 0, len;
	int64_t now = wall_ms();
	uint8_t *key, *buf;
	int rc = 0;

	if (!group_valid(group, &glen) || e == NULL || n == 0 || n > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!topic_valid(e[i].topic, &tlen) || e[i].offset < 0 ||
		    (e[i].metadata != NULL &&
		     strnlen(e[i].metadata, OFS_METADATA_MAX + 1) > OFS_METADATA_MAX))
			return -EINVAL;
		maxt = tlen > maxt ? tlen : maxt;
	}
	if (log_error(o->log) != 0)
		return -EROFS;
	key = malloc(OFS_KEY_FIXED + glen + maxt);
	if (key == NULL)
		return -ENOMEM;
	batch_builder_init(&b);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *meta = e[i].metadata != NULL ? e[i].metadata : "";
		size_t klen = key_encode(key, group, glen, e[i].topic, strlen(e[i].topic),
					 e[i].partition);
		size_t vlen = value_encode(value, e[i].offset, now, meta, strlen(meta));
		rc = batch_builder_add(&b, now, key, (int32_t)klen, value, (int32_t)vlen, NULL, 0);
	}
	free(key);
	if (rc == 0)
		rc = batch_builder_finish(&b, 0, &buf, &len);
	batch_builder_fini(&b);
	if (rc < 0)
		return rc;
	return submit(o, op, buf, len);
}

/* Tombstones for a delete, cut into batches of at most OFS_CHUNK_BYTES; all
 * but the last go out as internal appends as they fill. */
struct tombs {
	struct offsets *o;
	struct batch_builder b;
	uint8_t *key;
	size_t keycap;
	int64_t now;
	int rc;
	size_t count;
};

static void tombs_flush(struct tombs *t)
{
	uint8_t *buf;
	size_t len;

	if (t->rc < 0 || batch_builder_count(&t->b) == 0)
		return;
	t->rc = batch_builder_finish(&t->b, 0, &buf, &len);
	if (t->rc == 0)
		t->rc = submit_internal(t->o, buf, len);
}

static void tombs_key(struct tombs *t, const char *group, size_t glen, const char *topic,
		      size_t tlen, uint32_t partition)
{
	size_t klen = OFS_KEY_FIXED + glen + tlen;

	if (t->rc < 0)
		return;
	if (klen > t->keycap) {
		uint8_t *k = realloc(t->key, klen);
		if (k == NULL) {
			t->rc = -ENOMEM;
			return;
		}
		t->key = k;
		t->keycap = klen;
	}
	if (batch_builder_count(&t->b) > 0 &&
	    batch_builder_size(&t->b) + klen + 32 > OFS_CHUNK_BYTES)
		tombs_flush(t);
	if (t->rc < 0)
		return;
	key_encode(t->key, group, glen, topic, tlen, partition);
	t->rc = batch_builder_add(&t->b, t->now, t->key, (int32_t)klen, NULL, -1, NULL, 0);
	t->count++;
}

static void tombs_add(struct tombs *t, const struct group *g, const struct tp *tp)
{
	for (size_t i = 0; i < tp->n && t->rc == 0; i++)
		tombs_key(t, g->name, g->len, tp->name, tp->len, tp->parts[i].partition);
}

/* Tombstones for the records of `topic` in the commits still in flight:
 * they are written after those commits, so a replay ends without them.
 * Returns true if there was any. */
static bool tombs_inflight(struct tombs *t, const char *topic, size_t tlen)
{
	struct ofs_op *op;
	bool any = false;

	LIST_FOREACH(op, &t->o->inflight, inflight) {
		struct batch_iter it;
		struct batch_record r;

		if (batch_iter_init(&it, op->buf, op->buflen) < 0)
			continue; /* cannot happen: we built it */
		while (batch_iter_next(&it, &r) == 1 && t->rc == 0) {
			struct key key;
			if (r.value == NULL || key_decode(&r, &key) != NULL || key.tlen != tlen ||
			    memcmp(key.topic, topic, tlen) != 0)
				continue; /* a tombstone, or another topic */
			tombs_key(t, key.group, key.glen, topic, tlen, key.partition);
			any = true;
		}
	}
	return any;
}

static void tombs_fini(struct tombs *t)
{
	batch_builder_fini(&t->b);
	free(t->key);
}

/* Deletes are tombstones for what the table holds when they are issued: a
 * commit still in flight then is applied after them (log order) and
 * survives, so callers stop a group's or topic's commits first.  A delete
 * larger than one chunk is not atomic: after a crash or an error part of it
 * may be recorded (each tombstone stands on its own). */
int ofs_delete_group(struct offsets *o, const char *group, struct ofs_op *op)
{
	struct tombs t = { .o = o, .now = wall_ms() };
	const struct group *g;
	uint8_t *buf;
	size_t glen, len;

	if (!group_valid(group, &glen))
		return -EINVAL;
	g = gmap_find(&o->groups, group, glen);
	if (g == NULL)
		return -ENOENT;
	if (log_error(o->log) != 0)
		return -EROFS;
	batch_builder_init(&t.b);
	for (size_t i = 0; i < g->ntp && t.rc == 0; i++)
		tombs_add(&t, g, g->tps[i]);
	/* The last chunk is the caller's: callbacks come in log order, so it
	 * completes after the others (and fails if any of them failed). */
	if (t.rc == 0)
		t.rc = batch_builder_finish(&t.b, 0, &buf, &len);
	if (t.rc == 0)
		t.rc = submit(o, op, buf, len);
	tombs_fini(&t);
	return t.rc;
}

int ofs_delete_topic(struct offsets *o, const char *topic)
{
	struct tombs t = { .o = o, .now = wall_ms() };
	size_t tlen;
	bool fence;

	if (!topic_valid(topic, &tlen))
		return -EINVAL;
	if (log_error(o->log) != 0)
		return -EROFS;
	batch_builder_init(&t.b);
	for (size_t i = 0; i < o->groups.cap && t.rc == 0; i++) {
		const struct group *g = o->groups.slots[i];
		bool found;
		size_t k;
		if (g == NULL)
			continue;
		k = tp_index(g, topic, tlen, &found);
		if (found)
			tombs_add(&t, g, g->tps[k]);
	}
	fence = tombs_inflight(&t, topic, tlen);
	tombs_flush(&t);
	tombs_fini(&t);
	if (t.rc == 0 && fence) {
		/* Everything appended so far is below the log end. */
		o->fences = xrealloc(o->fences, (o->nfences + 1) * sizeof(*o->fences));
		o->fences[o->nfences++] = (struct fence){ xmemdup(topic, tlen), tlen,
							  log_end_offset(o->log) };
	}
	if (t.rc == 0)
		table_del_topic(o, topic, tlen);
	if (t.rc < 0)
		log_msg_errno(LOGL_WARN, t.rc, "consumer offsets: cannot delete the offsets of "
			      "topic %s", topic);
	else if (t.count > 0)
		log_msg(LOGL_INFO, "consumer offsets: deleting %zu offsets of topic %s", t.count,
			topic);
	return t.rc;
}

/* --- reading --------------------------------------------------------------- */

int ofs_get(const struct offsets *o, const char *group, const char *topic, uint32_t partition,
	    struct ofs_value *out)
{
	const struct part *p;

	if (group == NULL || topic == NULL)
		return -ENOENT;
	p = table_find(o, group, strlen(group), topic, strlen(topic), partition);
	if (p == NULL)
		return -ENOENT;
	out->offset = p->offset;
	out->commit_time_ms = p->time_ms;
	out->metadata = p->meta != NULL ? p->meta : "";
	return 0;
}

void ofs_each_group(const struct offsets *o,
		    void (*fn)(const char *group, size_t partitions, void *arg), void *arg)
{
	size_t n;
	struct group **v = groups_sorted(o, &n);

	for (size_t i = 0; i < n; i++)
		fn(v[i]->name, v[i]->nparts, arg);
	free(v);
}

int ofs_each(const struct offsets *o, const char *group,
	     void (*fn)(const char *topic, uint32_t partition, const struct ofs_value *v,
			void *arg),
	     void *arg)
{
	const struct group *g = group != NULL ? gmap_find(&o->groups, group, strlen(group)) : NULL;

	if (g == NULL)
		return -ENOENT;
	for (size_t i = 0; i < g->ntp; i++) {
		const struct tp *t = g->tps[i];
		for (size_t k = 0; k < t->n; k++) {
			const struct part *p = &t->parts[k];
			struct ofs_value v = { p->offset, p->time_ms, p->meta != NULL ? p->meta : "" };
			fn(t->name, p->partition, &v, arg);
		}
	}
	return 0;
}

/* --- snapshot -------------------------------------------------------------- */

/* Serialise the table, which covers `covered` (o->applied, inv. 1).
 * Returns the buffer owned. */
static uint8_t *snap_encode(const struct offsets *o, int64_t covered, size_t *len_out)
{
	size_t ng, len = SNAP_HEADER_SIZE + SNAP_CRC_SIZE, p;
	struct group **v = groups_sorted(o, &ng);
	uint8_t *buf;

	for (size_t i = 0; i < ng; i++) {
		len += SNAP_GROUP_FIXED + v[i]->len;
		for (size_t k = 0; k < v[i]->ntp; k++) {
			const struct tp *t = v[i]->tps[k];
			len += SNAP_TOPIC_FIXED + t->len + t->n * SNAP_PART_FIXED;
			for (size_t j = 0; j < t->n; j++)
				len += t->parts[j].meta_len;
		}
	}
	buf = xmalloc(len);
	memset(buf, 0, SNAP_HEADER_SIZE);
	put_le32(buf, SNAP_MAGIC);
	put_le16(buf + 4, SNAP_VERSION);
	put_le64(buf + 8, (uint64_t)covered);
	put_le32(buf + 16, (uint32_t)ng);
	put_le64(buf + 24, (uint64_t)o->nentries);
	p = SNAP_HEADER_SIZE;
	for (size_t i = 0; i < ng; i++) {
		const struct group *g = v[i];
		put_le16(buf + p, (uint16_t)g->len);
		memcpy(buf + p + 2, g->name, g->len);
		put_le32(buf + p + 2 + g->len, (uint32_t)g->ntp);
		p += SNAP_GROUP_FIXED + g->len;
		for (size_t k = 0; k < g->ntp; k++) {
			const struct tp *t = g->tps[k];
			put_le16(buf + p, (uint16_t)t->len);
			memcpy(buf + p + 2, t->name, t->len);
			put_le32(buf + p + 2 + t->len, (uint32_t)t->n);
			p += SNAP_TOPIC_FIXED + t->len;
			for (size_t j = 0; j < t->n; j++) {
				const struct part *pt = &t->parts[j];
				put_le32(buf + p, pt->partition);
				put_le64(buf + p + 4, (uint64_t)pt->offset);
				put_le64(buf + p + 12, (uint64_t)pt->time_ms);
				put_le16(buf + p + 20, pt->meta_len);
				if (pt->meta_len > 0)
					memcpy(buf + p + SNAP_PART_FIXED, pt->meta, pt->meta_len);
				p += SNAP_PART_FIXED + pt->meta_len;
			}
		}
	}
	assert(p + SNAP_CRC_SIZE == len);
	put_le32(buf + p, batch_crc32c(0, buf, p));
	free(v);
	*len_out = len;
	return buf;
}

/* A bounds-checked reader over the snapshot bytes. */
struct rd {
	const uint8_t *p, *end;
	const char *why;        /* first problem found */
};

static const uint8_t *rd_take(struct rd *r, size_t n, const char *what)
{
	const uint8_t *p = r->p;

	if (r->why != NULL)
		return NULL;
	if ((size_t)(r->end - r->p) < n) {
		r->why = what;
		return NULL;
	}
	r->p += n;
	return p;
}

/* A u16-length-prefixed name of 1..max bytes. */
static const char *rd_name(struct rd *r, size_t max, size_t *len, const char *what)
{
	const uint8_t *p = rd_take(r, 2, what);

	if (p == NULL)
		return NULL;
	*len = get_le16(p);
	p = rd_take(r, *len, what);
	if (p != NULL && !name_ok(p, *len, max)) {
		r->why = what;
		return NULL;
	}
	return (const char *)p;
}

static int snap_parse(struct offsets *o, const uint8_t *buf, size_t len, int64_t *covered,
		      const char **why)
{
	struct rd r = { buf + SNAP_HEADER_SIZE, buf + len - SNAP_CRC_SIZE, NULL };
	uint64_t ngroups, nentries, seen = 0;
	const char *prev_g = NULL;
	size_t prev_glen = 0;

	if (len < SNAP_HEADER_SIZE + SNAP_CRC_SIZE) {
		*why = "file too short";
		return -EUCLEAN;
	}
	if (get_le32(buf) != SNAP_MAGIC) {
		*why = "bad magic";
		return -EUCLEAN;
	}
	if (get_le32(buf + len - SNAP_CRC_SIZE) != batch_crc32c(0, buf, len - SNAP_CRC_SIZE)) {
		*why = "CRC mismatch";
		return -EUCLEAN;
	}
	if (get_le16(buf + 4) != SNAP_VERSION) {
		*why = "unsupported version";
		return -EPROTONOSUPPORT;
	}
	*covered = (int64_t)get_le64(buf + 8);
	ngroups = get_le32(buf + 16);
	nentries = get_le64(buf + 24);
	if (get_le16(buf + 6) != 0 || get_le32(buf + 20) != 0 || *covered < 0) {
		*why = "bad header field";
		return -EUCLEAN;
	}
	for (uint64_t gi = 0; gi < ngroups && r.why == NULL; gi++) {
		size_t glen, tlen, prev_tlen = 0;
		const char *g = rd_name(&r, OFS_GROUP_MAX, &glen, "bad group entry"), *prev_t = NULL;
		const uint8_t *c = rd_take(&r, 4, "bad group entry");
		if (c == NULL)
			break;
		uint32_t ntopics = get_le32(c);
		if (ntopics == 0 || (prev_g != NULL && name_cmp(prev_g, prev_glen, g, glen) >= 0)) {
			r.why = "groups out of order or empty";
			break;
		}
		prev_g = g;
		prev_glen = glen;
		for (uint32_t ti = 0; ti < ntopics && r.why == NULL; ti++) {
			const char *t = rd_name(&r, OFS_TOPIC_LEN_MAX, &tlen, "bad topic entry");
			c = rd_take(&r, 4, "bad topic entry");
			if (c == NULL)
				break;
			uint32_t nparts = get_le32(c);
			if (nparts == 0 || (prev_t != NULL && name_cmp(prev_t, prev_tlen, t, tlen) >= 0)) {
				r.why = "topics out of order or empty";
				break;
			}
			prev_t = t;
			prev_tlen = tlen;
			uint32_t prev_part = 0;
			for (uint32_t pi = 0; pi < nparts; pi++) {
				const uint8_t *p = rd_take(&r, SNAP_PART_FIXED, "bad partition entry");
				if (p == NULL)
					break;
				uint32_t partition = get_le32(p);
				int64_t offset = (int64_t)get_le64(p + 4), time_ms = (int64_t)get_le64(p + 12);
				size_t mlen = get_le16(p + 20);
				const uint8_t *m = rd_take(&r, mlen, "bad partition entry");
				if (m == NULL)
					break;
				if ((pi > 0 && partition <= prev_part) || offset < 0 || mlen > OFS_METADATA_MAX ||
				    memchr(m, '\0', mlen) != NULL) {
					r.why = "bad partition entry";
					break;
				}
				table_set(o, g, glen, t, tlen, partition, offset, time_ms,
					  (const char *)m, mlen);
				prev_part = partition;
				seen++;
			}
		}
	}
	if (r.why == NULL && r.p != r.end)
		r.why = "trailing bytes";
	if (r.why == NULL && seen != nentries)
		r.why = "entry count mismatch";
	if (r.why != NULL) {
		*why = r.why;
		return -EUCLEAN;
	}
	return 0;
}

/* Load the snapshot if there is one: sets o->snap_covered (-1 when there is
 * none).  Start-up only (blocking reads).  Returns 0 or -errno, logged
 * naming the file. */
static int snap_load(struct offsets *o)
{
	const char *why = NULL;
	int64_t covered = -1;
	uint8_t *buf = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc = 0;

	o->snap_covered = -1;
	fd = openat(o->dirfd, OFS_SNAP_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	fd = -1;
	rc = snap_parse(o, buf, len, &covered, &why);
	free(buf);
	if (rc < 0) {
		log_msg(LOGL_ERROR, "consumer offsets snapshot %s/%s is corrupt (%s); move it away "
			"only if the log still holds every commit", o->dir, OFS_SNAP_NAME, why);
		table_free(o);
		return rc;
	}
	o->snap_covered = covered;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	log_msg_errno(LOGL_ERROR, rc, "cannot read consumer offsets snapshot %s/%s", o->dir,
		      OFS_SNAP_NAME);
	return rc;
}

/* Write a snapshot of the table now (shutdown: blocking): temp file,
 * fdatasync, rename, fsync of the directory.  Returns 0 or -errno (logged). */
static int snap_write_sync(struct offsets *o)
{
	size_t len, done = 0;
	uint8_t *buf = snap_encode(o, o->applied, &len);
	int fd = openat(o->dirfd, OFS_SNAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 ? -errno : 0;

	while (rc == 0 && done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)done);
		if (n <= 0)
			rc = n < 0 ? -errno : -EIO;
		else
			done += (size_t)n;
	}
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	fp_hit("ofs.snapshot.sync.rename", NULL); /* shutdown: tmp durable */
	if (rc == 0 && renameat(o->dirfd, OFS_SNAP_TMP, o->dirfd, OFS_SNAP_NAME) < 0)
		rc = -errno;
	fp_hit("ofs.snapshot.sync.dirsync", NULL); /* renamed, dir not fsynced */
	if (rc == 0 && fsync(o->dirfd) < 0)
		rc = -errno;
	free(buf);
	if (rc < 0) {
		log_msg_errno(LOGL_ERROR, rc, "%s: cannot write the consumer offsets snapshot",
			      o->dir);
		return rc;
	}
	o->snap_covered = o->applied;
	return 0;
}

static void on_snap(struct uring_op *op, int res);

/* Queue step `step` of the snapshot being written.  Returns 0 or -EBUSY. */
static int snap_next(struct offsets *o, enum snap_step step)
{
	static const char *const what[] = {
		[SNAP_WRITE] = "ofs.snapshot.write", [SNAP_FSYNC] = "ofs.snapshot.fsync",
		[SNAP_RENAME] = "ofs.snapshot.rename", [SNAP_DIRSYNC] = "ofs.snapshot.dirsync",
	};
	struct snap_io *s = &o->snap;
	struct io_uring_sqe *sqe;

	s->op.cb = on_snap;
	s->op.what = what[step];
	s->step = step;
	sqe = uring_sqe(o->u, &s->op);
	if (sqe == NULL)
		return -EBUSY;
	switch (step) {
	case SNAP_WRITE: {
		size_t n = s->len - s->done;
		io_uring_prep_write(sqe, s->fd, s->buf + s->done,
				    (unsigned)(n > (1u << 30) ? (1u << 30) : n), s->done);
		break;
	}
	case SNAP_FSYNC:
		io_uring_prep_fsync(sqe, s->fd, IORING_FSYNC_DATASYNC);
		break;
	case SNAP_RENAME:
		io_uring_prep_renameat(sqe, o->dirfd, OFS_SNAP_TMP, o->dirfd, OFS_SNAP_NAME, 0);
		break;
	case SNAP_DIRSYNC:
		io_uring_prep_fsync(sqe, o->dirfd, 0);
		break;
	case SNAP_IDLE:
		assert(0);
	}
	return 0;
}

/* Stop the snapshot in flight (res < 0: it failed; the segments stay, and
 * a snapshot.tmp left behind is overwritten next time or removed at open). */
static void snap_end(struct offsets *o, int res)
{
	struct snap_io *s = &o->snap;

	if (res < 0)
		log_msg_errno(LOGL_WARN, res, "%s: consumer offsets snapshot failed at %s; no "
			      "segment deleted", o->dir, s->op.what);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
	s->step = SNAP_IDLE;
}

/* One step of the snapshot done: write (short writes resubmitted) ->
 * fdatasync -> rename -> directory fsync -> delete the covered segments. */
static void on_snap(struct uring_op *op, int res)
{
	struct snap_io *s = container_of(op, struct snap_io, op);
	struct offsets *o = s->o;
	enum snap_step next = SNAP_IDLE;

	if (res < 0 || (s->step == SNAP_WRITE && res == 0)) {
		snap_end(o, res < 0 ? res : -EIO);
		return;
	}
	switch (s->step) {
	case SNAP_WRITE:
		s->done += (size_t)res;
		next = s->done < s->len ? SNAP_WRITE : SNAP_FSYNC;
		break;
	case SNAP_FSYNC:
		next = SNAP_RENAME;
		break;
	case SNAP_RENAME:
		next = SNAP_DIRSYNC;
		break;
	case SNAP_DIRSYNC: {
		/* Durable: the segments it covers may go (inv. 2). */
		int n;
		o->snap_covered = s->covered;
		snap_end(o, 0);
		fp_hit("ofs.compact.delete", NULL); /* snapshot durable, log whole */
		n = log_delete_before(o->log, o->snap_covered);
		log_msg(LOGL_INFO, "%s: snapshot of %zu offsets covers offset %" PRId64
			"; %d segment(s) deleted", o->dir, s->entries, o->snap_covered, n);
		return;
	}
	case SNAP_IDLE:
		assert(0);
	}
	if (next == SNAP_RENAME) { /* the data is durable: the buffer is done */
		close(s->fd);
		s->fd = -1;
		free(s->buf);
		s->buf = NULL;
	}
	res = snap_next(o, next);
	if (res < 0)
		snap_end(o, res);
}

int ofs_compact(struct offsets *o)
{
	struct snap_io *s = &o->snap;
	int rc;

	if (s->step != SNAP_IDLE)
		return 0; /* one is on its way */
	/* What the last snapshot covers may already go (it did not go at the
	 * time, e.g. a seal was still in flight). */
	if (o->snap_covered >= 0)
		log_delete_before(o->log, o->snap_covered);
	if (log_segment_count(o->log) <= 1 || o->applied == o->snap_covered)
		return 0;
	s->fd = openat(o->dirfd, OFS_SNAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		rc = -errno;
		log_msg_errno(LOGL_WARN, rc, "%s: cannot create %s", o->dir, OFS_SNAP_TMP);
		return rc;
	}
	s->o = o;
	s->covered = o->applied;
	s->buf = snap_encode(o, s->covered, &s->len);
	s->done = 0;
	s->entries = o->nentries;
	rc = snap_next(o, SNAP_WRITE);
	if (rc < 0)
		snap_end(o, rc);
	return rc;
}

/* --- open and close -------------------------------------------------------- */

/* Apply the log from the snapshot's covered offset (or the log start when
 * there is no snapshot) to the high watermark.  Start-up only (blocking
 * reads).  Returns 0 or -errno (logged). */
static int replay(struct offsets *o)
{
	int64_t start = log_start_offset(o->log), hw = log_high_watermark(o->log);
	int64_t from = o->snap_covered >= 0 ? o->snap_covered : start, off, records = 0;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	if (o->snap_covered < 0 && start > 0) {
		log_msg(LOGL_ERROR, "%s: no snapshot, but the log starts at offset %" PRId64
			": the commits below it are lost", o->dir, start);
		return -EUCLEAN;
	}
	if (o->snap_covered >= 0 && (o->snap_covered < start || o->snap_covered > hw)) {
		log_msg(LOGL_ERROR, "%s: the snapshot covers offset %" PRId64 " but the log holds "
			"offsets %" PRId64 "..%" PRId64 ": commits are missing", o->dir,
			o->snap_covered, start, hw);
		return -EUCLEAN;
	}
	for (off = from; off < hw;) {
		struct log_slice sl;
		const char *why = NULL;
		size_t p = 0;

		rc = log_read(o->log, off, OFS_REPLAY_BYTES, &sl);
		if (rc == 0 && sl.len == 0)
			rc = -EIO; /* below the high watermark there is always a batch */
		if (rc < 0) {
			log_msg_errno(LOGL_ERROR, rc, "%s: cannot replay offset %" PRId64 "%s%s",
				      o->dir, off, rc == -EUCLEAN ? ": " : "",
				      rc == -EUCLEAN ? log_corruption(o->log) : "");
			log_slice_release(&sl);
			break;
		}
		if (sl.len > cap) {
			cap = (size_t)sl.len;
			buf = xrealloc(buf, cap);
		}
		for (size_t done = 0; rc == 0 && done < sl.len;) {
			ssize_t n = pread(sl.fd, buf + done, sl.len - done, (off_t)(sl.pos + done));
			if (n <= 0)
				rc = n < 0 ? -errno : -EIO;
			else
				done += (size_t)n;
		}
		log_slice_release(&sl);
		while (rc == 0 && p < sl.len) {
			struct batch_header h;
			int64_t next = 0;
			if (sl.len - p < BATCH_HEADER_SIZE ||
			    batch_header_decode(buf + p, sl.len - p, &h) < 0 ||
			    batch_size(&h) > sl.len - p) {
				why = "bad batch header";
				rc = -EUCLEAN;
				break;
			}
			rc = apply_batch(o, buf + p, batch_size(&h), from, &next, &why);
			records += next - (h.base_offset > from ? h.base_offset : from);
			p += batch_size(&h);
		}
		if (rc < 0) {
			log_msg_errno(LOGL_ERROR, rc, "%s: cannot replay the batch at offset %" PRId64
				      " (%s)", o->dir, off, why != NULL ? why : "read failed");
			break;
		}
		off = sl.next_offset;
	}
	free(buf);
	if (rc < 0)
		return rc;
	o->applied = hw;
	log_msg(LOGL_INFO, "%s: %zu consumer offsets loaded (snapshot at %" PRId64
		", %" PRId64 " records replayed up to %" PRId64 ")", o->dir, o->nentries,
		o->snap_covered, records, hw);
	return 0;
}

int ofs_open(const char *data_dir, struct log_ctx *ctx, struct offsets **out)
{
	struct offsets *o = calloc(1, sizeof(*o));
	struct log_config cfg;
	int rc;

	if (o == NULL)
		return -ENOMEM;
	o->dirfd = -1;
	o->snap.fd = -1;
	o->snap_covered = -1;
	LIST_INIT(&o->inflight);
	o->u = log_ctx_uring(ctx);
	if (asprintf(&o->dir, "%s/%s", data_dir, OFS_DIR_NAME) < 0) {
		o->dir = NULL;
		rc = -ENOMEM;
		log_msg_errno(LOGL_ERROR, rc, "cannot open the consumer offsets store");
		goto fail;
	}
	/* The store decides what is deleted (inv. 2): retention never runs. */
	log_config_defaults(&cfg);
	cfg.segment_bytes = OFS_SEGMENT_BYTES;
	cfg.retention_ms = -1;
	cfg.retention_bytes = -1;
	cfg.flush_mode = LOG_FLUSH_ALWAYS;
	rc = log_open(ctx, o->dir, &cfg, LOG_OPEN_CREATE, &o->log);
	if (rc < 0)
		goto fail; /* logged */
	o->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0) {
		rc = -errno;
		log_msg_errno(LOGL_ERROR, rc, "cannot open %s", o->dir);
		goto fail;
	}
	if (unlinkat(o->dirfd, OFS_SNAP_TMP, 0) == 0)
		log_msg(LOGL_INFO, "%s: removed an unfinished %s", o->dir, OFS_SNAP_TMP);
	rc = snap_load(o);
	if (rc == 0)
		rc = replay(o);
	if (rc < 0)
		goto fail;
	*out = o;
	return 0;
fail:
	if (o->log != NULL)
		log_close(o->log);
	table_free(o);
	if (o->dirfd >= 0)
		close(o->dirfd);
	free(o->dir);
	free(o);
	return rc;
}

int ofs_close(struct offsets *o)
{
	int rc, rc2;

	if (o == NULL)
		return 0;
	while (o->snap.step != SNAP_IDLE)
		if (uring_wait(o->u) < 0)
			break;
	if (o->snap.step != SNAP_IDLE) {
		/* The ring failed under a snapshot step: its buffers and this
		 * store must outlive it, so they are leaked, not freed. */
		log_msg(LOGL_ERROR, "%s: snapshot still in flight at close", o->dir);
		log_abandon(o->log);
		return -EBUSY;
	}
	/* Pending commits complete (and are applied) before the log closes. */
	rc = log_close(o->log);
	o->log = NULL;
	if (o->applied != o->snap_covered) {
		rc2 = snap_write_sync(o);
		if (rc == 0)
			rc = rc2;
	}
	table_free(o);
	for (size_t i = 0; i < o->nfences; i++)
		free(o->fences[i].topic);
	free(o->fences);
	close(o->dirfd);
	free(o->dir);
	free(o);
	return rc;
}

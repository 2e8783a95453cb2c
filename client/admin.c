/* admin — the typed admin calls of brokerd/client.h: one blocking request
 * per call on the handle's struct bk_conn, its answer turned into a
 * documented result struct.
 *
 * Invariants:
 *  1. a->conn is NULL or usable: a call that fails on the transport (or gets
 *     a refusal after which the broker closes) drops it, and the next call
 *     opens a new one.  Nothing is ever sent twice by the library.
 *  2. A result is one allocation: a hidden header holding the unpacked
 *     response, then the result struct and its arrays.  Strings in the
 *     result point into that response, so they live exactly as long as the
 *     result and bk_admin_free releases both.
 *  3. a->errmsg is "" after a success, the failure's text after an error.
 */
#include "brokerd/client.h"

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/addr.h"

#define ADMIN_ERRMSG_MAX 1024
#define ADMIN_DEFAULT_TIMEOUT_MS 10000

struct bk_admin {
	struct bk_conn *conn;   /* NULL: opened by the next call */
	char *bootstrap;
	char *client_id;
	int timeout_ms;
	char errmsg[ADMIN_ERRMSG_MAX];
};

/* The hidden header in front of every result (invariant 2). */
struct result_hdr {
	Brokerd__Response *resp;
	alignas(max_align_t) unsigned char data[];
};

static void set_err(struct bk_admin *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct bk_admin *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->errmsg, sizeof(a->errmsg), fmt, ap);
	va_end(ap);
}

/* Record a local argument error; returns -EINVAL. */
static int bad_arg(struct bk_admin *a, const char *what)
{
	set_err(a, "invalid argument: %s", what);
	return -EINVAL;
}

void bk_admin_conf_init(struct bk_admin_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->request_timeout_ms = ADMIN_DEFAULT_TIMEOUT_MS;
}

void bk_admin_close(struct bk_admin *a)
{
	if (a == NULL)
		return;
	bk_conn_close(a->conn);
	free(a->bootstrap);
	free(a->client_id);
	free(a);
}

int bk_admin_new(const struct bk_admin_conf *conf, struct bk_admin **out)
{
	struct bk_admin *a;
	char host[256];
	const char *port;
	int rc;

	if (conf == NULL || out == NULL || conf->bootstrap == NULL ||
	    addr_split(conf->bootstrap, host, sizeof(host), &port) < 0)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->timeout_ms = conf->request_timeout_ms > 0 ? conf->request_timeout_ms
						     : ADMIN_DEFAULT_TIMEOUT_MS;
	a->bootstrap = strdup(conf->bootstrap);
	a->client_id = strdup(conf->client_id != NULL && conf->client_id[0] != '\0'
				      ? conf->client_id : "libbrokerc");
	if (a->bootstrap == NULL || a->client_id == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = bk_conn_open(a->bootstrap, a->timeout_ms, &a->conn);
	if (rc < 0)
		goto fail;
	*out = a;
	return 0;
fail:
	bk_admin_close(a);
	return rc;
}

const char *bk_admin_errmsg(const struct bk_admin *a)
{
	return a->errmsg;
}

void bk_admin_free(void *result)
{
	struct result_hdr *h;

	if (result == NULL)
		return;
	h = (struct result_hdr *)((unsigned char *)result - offsetof(struct result_hdr, data));
	bk_response_free(h->resp);
	free(h);
}

/* Refusals after which brokerd closes the connection (docs/protocol.md):
 * INVALID_REQUEST only for an undecodable frame, but a reconnect is cheap
 * and a dead connection would fail the next call. */
static bool closes_connection(int code)
{
	return code == BROKERD__ERROR_CODE__INVALID_REQUEST ||
	       code == BROKERD__ERROR_CODE__FRAME_TOO_LARGE ||
	       code == BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS;
}

static void drop_conn(struct bk_admin *a)
{
	bk_conn_close(a->conn);
	a->conn = NULL;
}

/* Send req (op `op`, borrowed) and wait for its answer.  Returns 0 and
 * *resp (owned by the caller: bk_response_free), an answer with error OK
 * and the body of `op` (freed here when resp is NULL); else the error,
 * with a->errmsg set.  Opens the
 * connection first when the last call dropped it. */
static int call(struct bk_admin *a, Brokerd__Request *req, Brokerd__Request__OpCase op,
		Brokerd__Response **resp)
{
	Brokerd__Response *r = NULL;
	int rc;

	a->errmsg[0] = '\0';
	if (a->conn == NULL) {
		rc = bk_conn_open(a->bootstrap, a->timeout_ms, &a->conn);
		if (rc < 0) {
			set_err(a, "cannot connect to %s: %s", a->bootstrap, bk_strerror(rc));
			return rc;
		}
	}
	req->op_case = op;
	req->client_id = a->client_id;
	rc = bk_conn_call(a->conn, req, &r);
	if (rc < 0) {
		drop_conn(a);
		set_err(a, "request to %s failed: %s", a->bootstrap, bk_strerror(rc));
		return rc;
	}
	if (r->error != BROKERD__ERROR_CODE__OK) {
		int code = (int)r->error;

		if (r->error_message != NULL && r->error_message[0] != '\0')
			set_err(a, "%s", r->error_message);
		else
			set_err(a, "%s", bk_strerror(BK_ERR(code)));
		if (closes_connection(code))
			drop_conn(a);
		bk_response_free(r);
		return BK_ERR(code);
	}
	/* The op numbers of Request and Response are the same (broker.proto). */
	if ((int)r->op_case != (int)op) {
		bk_response_free(r);
		drop_conn(a);
		set_err(a, "the broker answered operation %d with operation %d", (int)op,
			(int)r->op_case);
		return -EPROTO;
	}
	if (resp != NULL)
		*resp = r;
	else
		bk_response_free(r);
	return 0;
}

static int malformed(struct bk_admin *a, Brokerd__Response *r, const char *what)
{
	bk_response_free(r);
	set_err(a, "malformed %s answer from %s", what, a->bootstrap);
	return -EPROTO;
}

static size_t align_up(size_t n)
{
	return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

/* Allocate a result of `size` bytes followed by arrays of n1 * s1 and
 * n2 * s2 bytes (each aligned), owning resp.  Returns the zeroed result and
 * sets *arr1 / *arr2 (NULL for an empty array), or NULL without memory (resp
 * is then still the caller's). */
static void *result_new(Brokerd__Response *resp, size_t size, size_t n1, size_t s1, void **arr1,
			size_t n2, size_t s2, void **arr2)
{
	size_t off1 = align_up(size), off2, total;
	struct result_hdr *h;

	if ((n1 != 0 && s1 > (SIZE_MAX / 4) / n1) || (n2 != 0 && s2 > (SIZE_MAX / 4) / n2))
		return NULL;
	off2 = off1 + align_up(n1 * s1);
	total = off2 + n2 * s2;
	h = calloc(1, sizeof(*h) + total);
	if (h == NULL)
		return NULL;
	h->resp = resp;
	if (arr1 != NULL)
		*arr1 = n1 ? h->data + off1 : NULL;
	if (arr2 != NULL)
		*arr2 = n2 ? h->data + off2 : NULL;
	return h->data;
}

static int no_memory(struct bk_admin *a, Brokerd__Response *r)
{
	bk_response_free(r);
	set_err(a, "out of memory");
	return -ENOMEM;
}

static void copy_configs(struct bk_config *dst, Brokerd__ConfigEntry *const *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dst[i].name = src[i]->name;
		dst[i].value = src[i]->value;
		dst[i].is_default = src[i]->is_default ? 1 : 0;
	}
}

/* Turn a TopicDescription inside r into a bk_topic_info owning r. */
static int topic_info(struct bk_admin *a, Brokerd__Response *r, const Brokerd__TopicDescription *d,
		      struct bk_topic_info **out)
{
	struct bk_topic_info *ti;
	void *configs, *parts;

	if (d == NULL || d->n_partitions != d->partition_count || d->partition_count > INT32_MAX)
		return malformed(a, r, "topic description");
	ti = result_new(r, sizeof(*ti), d->n_configs, sizeof(struct bk_config), &configs,
			d->n_partitions, sizeof(struct bk_partition_info), &parts);
	if (ti == NULL)
		return no_memory(a, r);
	ti->name = d->name;
	ti->topic_id = d->topic_id;
	ti->created_ms = d->created_ms;
	ti->partition_count = (int32_t)d->partition_count;
	ti->nconfigs = d->n_configs;
	ti->configs = configs;
	ti->partitions = parts;
	copy_configs(ti->configs, d->configs, d->n_configs);
	for (size_t i = 0; i < d->n_partitions; i++) {
		const Brokerd__PartitionInfo *p = d->partitions[i];
		struct bk_partition_info *o = &ti->partitions[i];

		o->partition = (int32_t)p->partition;
		o->log_start_offset = p->log_start_offset;
		o->high_watermark = p->high_watermark;
		o->log_end_offset = p->log_end_offset;
		o->size_bytes = p->size_bytes;
		o->segment_count = p->segment_count;
		o->error = p->error != BROKERD__ERROR_CODE__OK ? BK_ERR(p->error) : 0;
		o->error_message = p->error_message;
	}
	*out = ti;
	return 0;
}

/* --- topics ------------------------------------------------------------------ */

int bk_admin_create_topic(struct bk_admin *a, const char *topic, int32_t partitions,
			  const struct bk_config *configs, size_t nconfigs,
			  struct bk_topic_info **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CreateTopicRequest q = BROKERD__CREATE_TOPIC_REQUEST__INIT;
	Brokerd__CreateTopicRequest__ConfigsEntry *ents = NULL, **pents = NULL;
	Brokerd__Response *r;
	int rc;

	a->errmsg[0] = '\0';
	if (topic == NULL)
		return bad_arg(a, "no topic name");
	if (partitions < 0)
		return bad_arg(a, "partitions must be >= 0 (0: the broker's default)");
	if (nconfigs > 0 && configs == NULL)
		return bad_arg(a, "nconfigs > 0 without configs");
	for (size_t i = 0; i < nconfigs; i++)
		if (configs[i].name == NULL || configs[i].value == NULL)
			return bad_arg(a, "a config without a name or value");
	if (nconfigs > 0) {
		ents = calloc(nconfigs, sizeof(*ents));
		pents = calloc(nconfigs, sizeof(*pents));
		if (ents == NULL || pents == NULL) {
			rc = -ENOMEM;
			set_err(a, "out of memory");
			goto fail;
		}
	}
	for (size_t i = 0; i < nconfigs; i++) {
		brokerd__create_topic_request__configs_entry__init(&ents[i]);
		ents[i].key = (char *)configs[i].name;
		ents[i].value = (char *)configs[i].value;
		pents[i] = &ents[i];
	}
	q.topic = (char *)topic;
	q.partitions = (uint32_t)partitions;
	q.configs = pents;
	q.n_configs = nconfigs;
	req.create_topic = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_CREATE_TOPIC, &r);
	if (rc < 0)
		goto fail;
	if (out == NULL)
		bk_response_free(r);
	else if (r->create_topic == NULL)
		rc = malformed(a, r, "create_topic");
	else
		rc = topic_info(a, r, r->create_topic->topic, out);
fail:
	free(pents);
	free(ents);
	return rc;
}

int bk_admin_delete_topic(struct bk_admin *a, const char *topic)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DeleteTopicRequest q = BROKERD__DELETE_TOPIC_REQUEST__INIT;

	a->errmsg[0] = '\0';
	if (topic == NULL)
		return bad_arg(a, "no topic name");
	q.topic = (char *)topic;
	req.delete_topic = &q;
	return call(a, &req, BROKERD__REQUEST__OP_DELETE_TOPIC, NULL);
}

int bk_admin_list_topics(struct bk_admin *a, struct bk_topic_list **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListTopicsRequest q = BROKERD__LIST_TOPICS_REQUEST__INIT;
	Brokerd__Response *r;
	const Brokerd__ListTopicsResponse *l;
	struct bk_topic_list *tl;
	void *topics;
	int rc;

	a->errmsg[0] = '\0';
	if (out == NULL)
		return bad_arg(a, "no result pointer");
	req.list_topics = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_LIST_TOPICS, &r);
	if (rc < 0)
		return rc;
	l = r->list_topics;
	if (l == NULL)
		return malformed(a, r, "list_topics");
	tl = result_new(r, sizeof(*tl), l->n_topics, sizeof(struct bk_topic_summary), &topics, 0, 0,
			NULL);
	if (tl == NULL)
		return no_memory(a, r);
	tl->ntopics = l->n_topics;
	tl->topics = topics;
	for (size_t i = 0; i < l->n_topics; i++) {
		tl->topics[i].name = l->topics[i]->name;
		tl->topics[i].partition_count = (int32_t)l->topics[i]->partition_count;
		tl->topics[i].size_bytes = l->topics[i]->size_bytes;
	}
	*out = tl;
	return 0;
}

int bk_admin_describe_topic(struct bk_admin *a, const char *topic, struct bk_topic_info **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DescribeTopicRequest q = BROKERD__DESCRIBE_TOPIC_REQUEST__INIT;
	Brokerd__Response *r;
	int rc;

	a->errmsg[0] = '\0';
	if (topic == NULL || out == NULL)
		return bad_arg(a, topic == NULL ? "no topic name" : "no result pointer");
	q.topic = (char *)topic;
	req.describe_topic = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_DESCRIBE_TOPIC, &r);
	if (rc < 0)
		return rc;
	if (r->describe_topic == NULL)
		return malformed(a, r, "describe_topic");
	return topic_info(a, r, r->describe_topic->topic, out);
}

int bk_admin_alter_topic_configs(struct bk_admin *a, const char *topic,
				 const struct bk_config *set, size_t nset,
				 const char *const *reset, size_t nreset,
				 struct bk_config_list **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest q = BROKERD__ALTER_TOPIC_CONFIG_REQUEST__INIT;
	Brokerd__AlterTopicConfigRequest__SetEntry *ents = NULL, **pents = NULL;
	const Brokerd__AlterTopicConfigResponse *ar;
	struct bk_config_list *cl;
	Brokerd__Response *r;
	void *configs;
	int rc;

	a->errmsg[0] = '\0';
	if (topic == NULL)
		return bad_arg(a, "no topic name");
	if (nset == 0 && nreset == 0)
		return bad_arg(a, "nothing to set or reset");
	if ((nset > 0 && set == NULL) || (nreset > 0 && reset == NULL))
		return bad_arg(a, "a count > 0 without its array");
	for (size_t i = 0; i < nset; i++)
		if (set[i].name == NULL || set[i].value == NULL)
			return bad_arg(a, "a config without a name or value");
	for (size_t i = 0; i < nreset; i++)
		if (reset[i] == NULL)
			return bad_arg(a, "a NULL key to reset");
	if (nset > 0) {
		ents = calloc(nset, sizeof(*ents));
		pents = calloc(nset, sizeof(*pents));
		if (ents == NULL || pents == NULL) {
			rc = -ENOMEM;
			set_err(a, "out of memory");
			goto fail;
		}
	}
	for (size_t i = 0; i < nset; i++) {
		brokerd__alter_topic_config_request__set_entry__init(&ents[i]);
		ents[i].key = (char *)set[i].name;
		ents[i].value = (char *)set[i].value;
		pents[i] = &ents[i];
	}
	q.topic = (char *)topic;
	q.set = pents;
	q.n_set = nset;
	q.reset = (char **)reset; /* only read by the packer */
	q.n_reset = nreset;
	req.alter_topic_config = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_ALTER_TOPIC_CONFIG, &r);
	if (rc < 0)
		goto fail;
	ar = r->alter_topic_config;
	if (out == NULL) {
		bk_response_free(r);
	} else if (ar == NULL) {
		rc = malformed(a, r, "alter_topic_config");
	} else {
		cl = result_new(r, sizeof(*cl), ar->n_configs, sizeof(struct bk_config), &configs,
				0, 0, NULL);
		if (cl == NULL) {
			rc = no_memory(a, r);
			goto fail;
		}
		cl->nconfigs = ar->n_configs;
		cl->configs = configs;
		copy_configs(cl->configs, ar->configs, ar->n_configs);
		*out = cl;
	}
fail:
	free(pents);
	free(ents);
	return rc;
}

/* --- offsets --------------------------------------------------------------------- */

int bk_admin_list_offset(struct bk_admin *a, const char *topic, int32_t partition, int64_t when,
			 struct bk_listed_offset *out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListOffsetsRequest q = BROKERD__LIST_OFFSETS_REQUEST__INIT;
	Brokerd__Response *r;
	int rc;

	a->errmsg[0] = '\0';
	if (topic == NULL || out == NULL)
		return bad_arg(a, topic == NULL ? "no topic name" : "no result pointer");
	if (partition < 0)
		return bad_arg(a, "partition must be >= 0");
	q.topic = (char *)topic;
	q.partition = (uint32_t)partition;
	q.timestamp = when; /* the wire's -2 / -1 are BK_OFFSET_EARLIEST / LATEST */
	req.list_offsets = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_LIST_OFFSETS, &r);
	if (rc < 0)
		return rc;
	if (r->list_offsets == NULL)
		return malformed(a, r, "list_offsets");
	out->offset = r->list_offsets->offset;
	out->log_start_offset = r->list_offsets->log_start_offset;
	out->high_watermark = r->list_offsets->high_watermark;
	bk_response_free(r);
	return 0;
}

int bk_admin_commit_offsets(struct bk_admin *a, const char *group,
			    const struct bk_offset_commit *offsets, size_t n)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__CommitOffsetsRequest q = BROKERD__COMMIT_OFFSETS_REQUEST__INIT;
	Brokerd__OffsetCommit *ents, **pents;
	int rc;

	a->errmsg[0] = '\0';
	if (group == NULL)
		return bad_arg(a, "no group");
	if (n == 0 || offsets == NULL)
		return bad_arg(a, "no offsets to commit");
	for (size_t i = 0; i < n; i++) {
		if (offsets[i].topic == NULL)
			return bad_arg(a, "an offset without a topic");
		if (offsets[i].partition < 0)
			return bad_arg(a, "partition must be >= 0");
	}
	ents = calloc(n, sizeof(*ents));
	pents = calloc(n, sizeof(*pents));
	if (ents == NULL || pents == NULL) {
		rc = -ENOMEM;
		set_err(a, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		brokerd__offset_commit__init(&ents[i]);
		ents[i].topic = (char *)offsets[i].topic;
		ents[i].partition = (uint32_t)offsets[i].partition;
		ents[i].offset = offsets[i].offset;
		if (offsets[i].metadata != NULL)
			ents[i].metadata = (char *)offsets[i].metadata;
		pents[i] = &ents[i];
	}
	q.group = (char *)group;
	q.offsets = pents;
	q.n_offsets = n;
	req.commit_offsets = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_COMMIT_OFFSETS, NULL);
fail:
	free(pents);
	free(ents);
	return rc;
}

/* Turn the FetchOffsetsResponse inside r into a bk_group_offsets owning r;
 * group (the request's, borrowed) is copied into it. */
static int group_offsets(struct bk_admin *a, Brokerd__Response *r, const char *group,
			 struct bk_group_offsets **out)
{
	const Brokerd__FetchOffsetsResponse *f = r->fetch_offsets;
	struct bk_group_offsets *go;
	void *offs, *name;
	size_t glen = strlen(group);

	if (f == NULL)
		return malformed(a, r, "fetch_offsets");
	go = result_new(r, sizeof(*go), f->n_offsets, sizeof(struct bk_committed_offset), &offs,
			glen + 1, 1, &name);
	if (go == NULL)
		return no_memory(a, r);
	memcpy(name, group, glen + 1);
	go->group = name;
	go->noffsets = f->n_offsets;
	go->offsets = offs;
	for (size_t i = 0; i < f->n_offsets; i++) {
		const Brokerd__CommittedOffset *c = f->offsets[i];
		struct bk_committed_offset *o = &go->offsets[i];

		o->topic = c->topic;
		o->partition = (int32_t)c->partition;
		o->offset = c->offset;
		o->metadata = c->metadata;
		o->commit_time_ms = c->commit_time_ms;
		o->high_watermark = c->high_watermark;
		o->lag = c->lag;
		if (c->lag > 0)
			go->lag += c->lag;
	}
	*out = go;
	return 0;
}

int bk_admin_fetch_offsets(struct bk_admin *a, const char *group,
			   const struct bk_topic_partition *parts, size_t n,
			   struct bk_group_offsets **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__FetchOffsetsRequest q = BROKERD__FETCH_OFFSETS_REQUEST__INIT;
	Brokerd__TopicPartition *ents = NULL, **pents = NULL;
	Brokerd__Response *r;
	int rc;

	a->errmsg[0] = '\0';
	if (group == NULL || out == NULL)
		return bad_arg(a, group == NULL ? "no group" : "no result pointer");
	if (n > 0 && parts == NULL)
		return bad_arg(a, "n > 0 without parts");
	for (size_t i = 0; i < n; i++) {
		if (parts[i].topic == NULL)
			return bad_arg(a, "a partition without a topic");
		if (parts[i].partition < 0)
			return bad_arg(a, "partition must be >= 0");
	}
	if (n > 0) {
		ents = calloc(n, sizeof(*ents));
		pents = calloc(n, sizeof(*pents));
		if (ents == NULL || pents == NULL) {
			rc = -ENOMEM;
			set_err(a, "out of memory");
			goto fail;
		}
	}
	for (size_t i = 0; i < n; i++) {
		brokerd__topic_partition__init(&ents[i]);
		ents[i].topic = (char *)parts[i].topic;
		ents[i].partition = (uint32_t)parts[i].partition;
		pents[i] = &ents[i];
	}
	q.group = (char *)group;
	q.partitions = pents;
	q.n_partitions = n;
	req.fetch_offsets = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_FETCH_OFFSETS, &r);
	if (rc == 0)
		rc = group_offsets(a, r, group, out);
fail:
	free(pents);
	free(ents);
	return rc;
}

int bk_admin_describe_group(struct bk_admin *a, const char *group, struct bk_group_offsets **out)
{
	return bk_admin_fetch_offsets(a, group, NULL, 0, out);
}

/* --- groups -------------------------------------------------------------------------- */

int bk_admin_list_groups(struct bk_admin *a, struct bk_group_list **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ListGroupsRequest q = BROKERD__LIST_GROUPS_REQUEST__INIT;
	const Brokerd__ListGroupsResponse *l;
	struct bk_group_list *gl;
	Brokerd__Response *r;
	void *groups;
	int rc;

	a->errmsg[0] = '\0';
	if (out == NULL)
		return bad_arg(a, "no result pointer");
	req.list_groups = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_LIST_GROUPS, &r);
	if (rc < 0)
		return rc;
	l = r->list_groups;
	if (l == NULL)
		return malformed(a, r, "list_groups");
	gl = result_new(r, sizeof(*gl), l->n_groups, sizeof(struct bk_group_summary), &groups, 0, 0,
			NULL);
	if (gl == NULL)
		return no_memory(a, r);
	gl->ngroups = l->n_groups;
	gl->groups = groups;
	for (size_t i = 0; i < l->n_groups; i++) {
		gl->groups[i].group = l->groups[i]->group;
		gl->groups[i].partitions = l->groups[i]->partitions;
		gl->groups[i].lag = l->groups[i]->lag;
	}
	*out = gl;
	return 0;
}

int bk_admin_delete_group(struct bk_admin *a, const char *group)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__DeleteGroupRequest q = BROKERD__DELETE_GROUP_REQUEST__INIT;

	a->errmsg[0] = '\0';
	if (group == NULL)
		return bad_arg(a, "no group");
	q.group = (char *)group;
	req.delete_group = &q;
	return call(a, &req, BROKERD__REQUEST__OP_DELETE_GROUP, NULL);
}

/* --- broker ------------------------------------------------------------------------------ */

int bk_admin_broker_status(struct bk_admin *a, struct bk_broker_status **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__BrokerStatusRequest q = BROKERD__BROKER_STATUS_REQUEST__INIT;
	const Brokerd__BrokerStatusResponse *s;
	struct bk_broker_status *st;
	Brokerd__Response *r;
	int rc;

	a->errmsg[0] = '\0';
	if (out == NULL)
		return bad_arg(a, "no result pointer");
	req.broker_status = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_BROKER_STATUS, &r);
	if (rc < 0)
		return rc;
	s = r->broker_status;
	if (s == NULL)
		return malformed(a, r, "broker_status");
	st = result_new(r, sizeof(*st), 0, 0, NULL, 0, 0, NULL);
	if (st == NULL)
		return no_memory(a, r);
	st->broker_version = s->broker_version;
	st->uptime_ms = s->uptime_ms;
	st->topic_count = s->topic_count;
	st->partition_count = s->partition_count;
	st->data_bytes = s->data_bytes;
	st->disk_free_bytes = s->disk_free_bytes;
	st->disk_total_bytes = s->disk_total_bytes;
	st->connections = s->connections;
	st->data_dir = s->data_dir;
	*out = st;
	return 0;
}

int bk_admin_api_versions(struct bk_admin *a, struct bk_api_versions **out)
{
	Brokerd__Request req = BROKERD__REQUEST__INIT;
	Brokerd__ApiVersionsRequest q = BROKERD__API_VERSIONS_REQUEST__INIT;
	const Brokerd__ApiVersionsResponse *v;
	struct bk_api_versions *av;
	Brokerd__Response *r;
	void *apis;
	int rc;

	a->errmsg[0] = '\0';
	if (out == NULL)
		return bad_arg(a, "no result pointer");
	req.api_versions = &q;
	rc = call(a, &req, BROKERD__REQUEST__OP_API_VERSIONS, &r);
	if (rc < 0)
		return rc;
	v = r->api_versions;
	if (v == NULL)
		return malformed(a, r, "api_versions");
	av = result_new(r, sizeof(*av), v->n_apis, sizeof(struct bk_api_version), &apis, 0, 0, NULL);
	if (av == NULL)
		return no_memory(a, r);
	av->broker_version = v->broker_version;
	av->max_request_bytes = v->max_request_bytes;
	av->max_batch_bytes = v->max_batch_bytes;
	av->napis = v->n_apis;
	av->apis = apis;
	for (size_t i = 0; i < v->n_apis; i++) {
		av->apis[i].key = v->apis[i]->key;
		av->apis[i].name = v->apis[i]->name;
		av->apis[i].min_version = v->apis[i]->min_version;
		av->apis[i].max_version = v->apis[i]->max_version;
	}
	*out = av;
	return 0;
}

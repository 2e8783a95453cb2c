/* check_admin_client — libbrokerc's typed admin calls (bk_admin_*) against a
 * real brokerd: every call's answer checked field by field against what the
 * test did, and the error paths with their code and the broker's message. */
#include <brokerd/client.h>
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/harness.h"

Suite *admin_client_suite(void); /* called by the runner */

static struct tb b;
static struct bk_admin *a;

static struct bk_admin *admin_open(int timeout_ms)
{
	struct bk_admin_conf conf;
	struct bk_admin *ad = NULL;
	char addr[64];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
	bk_admin_conf_init(&conf);
	conf.bootstrap = addr; /* copied by bk_admin_new */
	conf.client_id = "check_admin_client";
	conf.request_timeout_ms = timeout_ms;
	ck_assert_int_eq(bk_admin_new(&conf, &ad), 0);
	return ad;
}

static void setup(void)
{
	memset(&b, 0, sizeof(b));
	tb_start(&b);
	a = admin_open(5000);
}

static void teardown(void)
{
	bk_admin_close(a);
	a = NULL;
	tb_cleanup(&b);
}

/* The call succeeded and left no message behind. */
#define OK(call)                                                                        \
	do {                                                                            \
		int rc_ = (call);                                                       \
		ck_assert_msg(rc_ == 0, "%s: %d %s", #call, rc_, bk_admin_errmsg(a));  \
		ck_assert_str_eq(bk_admin_errmsg(a), "");                               \
	} while (0)
/* The broker refused with `code`, and its message contains `needle`. */
#define REFUSED(call, code, needle)                                                      \
	do {                                                                             \
		int rc_ = (call);                                                        \
		ck_assert_msg(rc_ == BK_ERR(code), "%s: expected %s, got %d (%s): %s",  \
			      #call, bk_error_name(code), rc_, bk_strerror(rc_),         \
			      bk_admin_errmsg(a));                                       \
		ck_assert_int_eq(bk_err_code(rc_), (code));                              \
		ck_assert_msg(strstr(bk_admin_errmsg(a), (needle)) != NULL,             \
			      "%s: \"%s\" not in \"%s\"", #call, (needle),             \
			      bk_admin_errmsg(a));                                       \
	} while (0)

static const struct bk_config *config(const struct bk_config *c, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].name, name) == 0)
			return &c[i];
	ck_abort_msg("no config %s", name);
	return NULL;
}

/* Produce n records with timestamps ts0, ts0 + 1, ... to one partition. */
static void produce(const char *topic, uint32_t partition, int n, int64_t ts0)
{
	int fd = tc_connect(b.port);
	size_t len;
	uint8_t *batch = tc_batch_ts("v", 0, n, ts0, &len);
	Brokerd__Response *r = tc_produce(fd, topic, partition, BROKERD__ACKS__ACKS_ALL, batch, len);

	TC_OK(r);
	tc_free(r);
	free(batch);
	close(fd);
}

START_TEST(topic_calls)
{
	struct bk_config cfg[] = { { "retention.ms", "3600000", 0 } };
	struct bk_config set[] = { { "segment.bytes", "1048576", 0 } };
	const char *reset[] = { "retention.ms" };
	struct bk_topic_info *ti = NULL;
	struct bk_topic_list *tl = NULL;
	struct bk_config_list *cl = NULL;
	const struct bk_config *c;
	uint64_t orders_bytes = 0;
	int seen = 0;

	OK(bk_admin_create_topic(a, "orders", 3, cfg, 1, &ti));
	ck_assert_str_eq(ti->name, "orders");
	ck_assert_int_eq(ti->partition_count, 3);
	ck_assert_uint_ne(ti->topic_id, 0);
	ck_assert_int_gt(ti->created_ms, 0);
	for (int p = 0; p < 3; p++) {
		ck_assert_int_eq(ti->partitions[p].partition, p);
		ck_assert_int_eq(ti->partitions[p].high_watermark, 0);
		ck_assert_int_eq(ti->partitions[p].error, 0);
		ck_assert_str_eq(ti->partitions[p].error_message, "");
	}
	c = config(ti->configs, ti->nconfigs, "retention.ms");
	ck_assert_str_eq(c->value, "3600000");
	ck_assert_int_eq(c->is_default, 0);
	ck_assert_int_eq(config(ti->configs, ti->nconfigs, "segment.bytes")->is_default, 1);
	bk_admin_free(ti);
	/* partitions 0: the broker's default (1); out may be NULL */
	OK(bk_admin_create_topic(a, "plain", 0, NULL, 0, NULL));

	produce("orders", 1, 10, 1000);
	OK(bk_admin_describe_topic(a, "orders", &ti));
	ck_assert_int_eq(ti->partition_count, 3);
	ck_assert_int_eq(ti->partitions[1].log_start_offset, 0);
	ck_assert_int_eq(ti->partitions[1].high_watermark, 10);
	ck_assert_int_eq(ti->partitions[1].log_end_offset, 10);
	ck_assert_uint_gt(ti->partitions[1].size_bytes, 10);
	ck_assert_uint_eq(ti->partitions[1].segment_count, 1);
	ck_assert_uint_lt(ti->partitions[0].size_bytes, ti->partitions[1].size_bytes);
	ck_assert_int_eq(ti->partitions[2].high_watermark, 0);
	for (int p = 0; p < 3; p++)
		orders_bytes += ti->partitions[p].size_bytes;
	bk_admin_free(ti);

	OK(bk_admin_list_topics(a, &tl));
	ck_assert_uint_eq(tl->ntopics, 2);
	for (size_t i = 0; i < tl->ntopics; i++) {
		if (strcmp(tl->topics[i].name, "orders") == 0) {
			ck_assert_int_eq(tl->topics[i].partition_count, 3);
			ck_assert_uint_eq(tl->topics[i].size_bytes, orders_bytes);
			seen |= 1;
		} else if (strcmp(tl->topics[i].name, "plain") == 0) {
			ck_assert_int_eq(tl->topics[i].partition_count, 1);
			ck_assert_uint_lt(tl->topics[i].size_bytes, orders_bytes);
			seen |= 2;
		}
	}
	ck_assert_int_eq(seen, 3);
	bk_admin_free(tl);

	/* alter: set one key, reset another, in one call */
	OK(bk_admin_alter_topic_configs(a, "orders", set, 1, reset, 1, &cl));
	c = config(cl->configs, cl->nconfigs, "segment.bytes");
	ck_assert_str_eq(c->value, "1048576");
	ck_assert_int_eq(c->is_default, 0);
	ck_assert_int_eq(config(cl->configs, cl->nconfigs, "retention.ms")->is_default, 1);
	bk_admin_free(cl);
	OK(bk_admin_describe_topic(a, "orders", &ti));
	ck_assert_str_eq(config(ti->configs, ti->nconfigs, "segment.bytes")->value, "1048576");
	ck_assert_int_eq(config(ti->configs, ti->nconfigs, "retention.ms")->is_default, 1);
	bk_admin_free(ti);
	OK(bk_admin_alter_topic_configs(a, "orders", NULL, 0, reset, 1, NULL));

	OK(bk_admin_delete_topic(a, "orders"));
	ti = NULL;
	REFUSED(bk_admin_describe_topic(a, "orders", &ti), BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
		"topic 'orders' does not exist");
	ck_assert_ptr_null(ti);
	OK(bk_admin_list_topics(a, &tl));
	ck_assert_uint_eq(tl->ntopics, 1);
	ck_assert_str_eq(tl->topics[0].name, "plain");
	bk_admin_free(tl);
	bk_admin_free(NULL);
}
END_TEST

START_TEST(topic_errors)
{
	struct bk_config bad_key[] = { { "nope", "1", 0 } };
	struct bk_config bad_value[] = { { "retention.ms", "soon", 0 } };
	struct bk_topic_info *ti = NULL;

	OK(bk_admin_create_topic(a, "orders", 2, NULL, 0, NULL));
	REFUSED(bk_admin_create_topic(a, "orders", 1, NULL, 0, &ti),
		BROKERD__ERROR_CODE__TOPIC_ALREADY_EXISTS, "\"orders\" already exists");
	ck_assert_ptr_null(ti);
	REFUSED(bk_admin_create_topic(a, "fresh", 1, bad_key, 1, NULL),
		BROKERD__ERROR_CODE__INVALID_CONFIG, "unknown key \"nope\"");
	REFUSED(bk_admin_create_topic(a, "bad/name", 1, NULL, 0, NULL),
		BROKERD__ERROR_CODE__INVALID_TOPIC_NAME, "invalid character '/'");
	REFUSED(bk_admin_create_topic(a, "huge", 100000, NULL, 0, NULL),
		BROKERD__ERROR_CODE__INVALID_PARTITIONS, "100000 partitions requested");
	REFUSED(bk_admin_alter_topic_configs(a, "orders", bad_value, 1, NULL, 0, NULL),
		BROKERD__ERROR_CODE__INVALID_CONFIG, "retention.ms");
	REFUSED(bk_admin_alter_topic_configs(a, "missing", bad_value, 1, NULL, 0, NULL),
		BROKERD__ERROR_CODE__UNKNOWN_TOPIC, "topic 'missing' does not exist");
	REFUSED(bk_admin_delete_topic(a, "missing"), BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
		"topic 'missing' does not exist");
	/* nothing of the refused creates exists, and the refusals left the
	 * connection working */
	REFUSED(bk_admin_describe_topic(a, "fresh", &ti), BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
		"'fresh'");
	OK(bk_admin_describe_topic(a, "orders", &ti));
	ck_assert_int_eq(ti->partition_count, 2);
	ck_assert_int_eq(config(ti->configs, ti->nconfigs, "retention.ms")->is_default, 1);
	bk_admin_free(ti);
	/* local argument checks: nothing sent, a message all the same */
	ck_assert_int_eq(bk_admin_create_topic(a, "x", -1, NULL, 0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(a), "partitions"));
	ck_assert_int_eq(bk_admin_alter_topic_configs(a, "orders", NULL, 0, NULL, 0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(a), "nothing to set"));
	ck_assert_int_eq(bk_admin_describe_topic(a, NULL, &ti), -EINVAL);
}
END_TEST

START_TEST(offsets_and_groups)
{
	struct bk_listed_offset lo;
	struct bk_offset_commit commits[] = {
		{ "t", 0, 4, "note" },
		{ "t", 1, 0, NULL },
	};
	struct bk_offset_commit half_bad[] = {
		{ "t", 0, 7, NULL },
		{ "nope", 0, 1, NULL },
	};
	struct bk_topic_partition parts[] = { { "t", 1 }, { "t", 0 }, { "t", 5 } };
	struct bk_group_offsets *go = NULL;
	struct bk_group_list *gl = NULL;

	OK(bk_admin_create_topic(a, "t", 2, NULL, 0, NULL));
	produce("t", 0, 10, 5000); /* timestamps 5000..5009 */
	produce("t", 1, 3, 5000);

	OK(bk_admin_list_offset(a, "t", 0, BK_OFFSET_EARLIEST, &lo));
	ck_assert_int_eq(lo.offset, 0);
	ck_assert_int_eq(lo.log_start_offset, 0);
	ck_assert_int_eq(lo.high_watermark, 10);
	OK(bk_admin_list_offset(a, "t", 0, BK_OFFSET_LATEST, &lo));
	ck_assert_int_eq(lo.offset, 10);
	OK(bk_admin_list_offset(a, "t", 0, 5004, &lo));
	ck_assert_int_eq(lo.offset, 4);
	OK(bk_admin_list_offset(a, "t", 0, 999999, &lo)); /* after every record */
	ck_assert_int_eq(lo.offset, 10);
	OK(bk_admin_list_offset(a, "t", 1, BK_OFFSET_LATEST, &lo));
	ck_assert_int_eq(lo.offset, 3);
	REFUSED(bk_admin_list_offset(a, "t", 2, BK_OFFSET_LATEST, &lo),
		BROKERD__ERROR_CODE__UNKNOWN_PARTITION, "partition 2");
	REFUSED(bk_admin_list_offset(a, "nope", 0, BK_OFFSET_LATEST, &lo),
		BROKERD__ERROR_CODE__UNKNOWN_TOPIC, "topic 'nope' does not exist");
	REFUSED(bk_admin_list_offset(a, "t", 0, -3, &lo), BROKERD__ERROR_CODE__INVALID_REQUEST,
		"timestamp -3");
	ck_assert_int_eq(bk_admin_list_offset(a, "t", -1, 0, &lo), -EINVAL);

	OK(bk_admin_commit_offsets(a, "g", commits, 2));
	OK(bk_admin_fetch_offsets(a, "g", parts, 3, &go));
	ck_assert_str_eq(go->group, "g");
	ck_assert_uint_eq(go->noffsets, 3);
	/* in the order asked */
	ck_assert_str_eq(go->offsets[0].topic, "t");
	ck_assert_int_eq(go->offsets[0].partition, 1);
	ck_assert_int_eq(go->offsets[0].offset, 0);
	ck_assert_str_eq(go->offsets[0].metadata, "");
	ck_assert_int_eq(go->offsets[0].high_watermark, 3);
	ck_assert_int_eq(go->offsets[0].lag, 3);
	ck_assert_int_eq(go->offsets[1].partition, 0);
	ck_assert_int_eq(go->offsets[1].offset, 4);
	ck_assert_str_eq(go->offsets[1].metadata, "note");
	ck_assert_int_gt(go->offsets[1].commit_time_ms, 0);
	ck_assert_int_eq(go->offsets[1].high_watermark, 10);
	ck_assert_int_eq(go->offsets[1].lag, 6);
	ck_assert_int_eq(go->offsets[2].partition, 5); /* no such partition */
	ck_assert_int_eq(go->offsets[2].offset, -1);
	ck_assert_int_eq(go->offsets[2].high_watermark, -1);
	ck_assert_int_eq(go->offsets[2].lag, -1);
	ck_assert_int_eq(go->lag, 9);
	bk_admin_free(go);

	/* all or nothing: the unknown topic fails the whole commit */
	REFUSED(bk_admin_commit_offsets(a, "g", half_bad, 2), BROKERD__ERROR_CODE__UNKNOWN_TOPIC,
		"topic 'nope' does not exist");
	OK(bk_admin_describe_group(a, "g", &go));
	ck_assert_str_eq(go->group, "g");
	ck_assert_uint_eq(go->noffsets, 2);
	ck_assert_int_eq(go->lag, 9);
	for (size_t i = 0; i < go->noffsets; i++) {
		const struct bk_committed_offset *o = &go->offsets[i];
		ck_assert_str_eq(o->topic, "t");
		ck_assert_int_eq(o->offset, o->partition == 0 ? 4 : 0);
		ck_assert_int_eq(o->high_watermark, o->partition == 0 ? 10 : 3);
		ck_assert_int_eq(o->lag, o->high_watermark - o->offset);
	}
	bk_admin_free(go);

	OK(bk_admin_commit_offsets(a, "other", &commits[0], 1));
	OK(bk_admin_list_groups(a, &gl));
	ck_assert_uint_eq(gl->ngroups, 2);
	for (size_t i = 0; i < gl->ngroups; i++) {
		int is_g = strcmp(gl->groups[i].group, "g") == 0;
		ck_assert(is_g || strcmp(gl->groups[i].group, "other") == 0);
		ck_assert_uint_eq(gl->groups[i].partitions, is_g ? 2 : 1);
		ck_assert_int_eq(gl->groups[i].lag, is_g ? 9 : 6);
	}
	bk_admin_free(gl);

	OK(bk_admin_delete_group(a, "g"));
	OK(bk_admin_describe_group(a, "g", &go));
	ck_assert_uint_eq(go->noffsets, 0);
	ck_assert_int_eq(go->lag, 0);
	bk_admin_free(go);
	REFUSED(bk_admin_delete_group(a, "g"), BROKERD__ERROR_CODE__UNKNOWN_GROUP,
		"group 'g' has no committed offsets");
	REFUSED(bk_admin_describe_group(a, "", &go), BROKERD__ERROR_CODE__INVALID_GROUP,
		"group id must be 1 to");
	REFUSED(bk_admin_commit_offsets(a, "g", (struct bk_offset_commit[]){ { "t", 0, -5, NULL } },
					1),
		BROKERD__ERROR_CODE__INVALID_REQUEST, "negative");
	/* the handle drops its connection after INVALID_REQUEST (the broker
	 * closes after an undecodable frame): the next call reconnects */
	OK(bk_admin_list_groups(a, &gl));
	ck_assert_uint_eq(gl->ngroups, 1);
	ck_assert_str_eq(gl->groups[0].group, "other");
	bk_admin_free(gl);
	ck_assert_int_eq(bk_admin_commit_offsets(a, "g", commits, 0), -EINVAL);
	ck_assert_int_eq(bk_admin_fetch_offsets(a, NULL, NULL, 0, &go), -EINVAL);
}
END_TEST

START_TEST(status_and_versions)
{
	struct bk_broker_status *st = NULL;
	struct bk_api_versions *av = NULL;
	char data_dir[4200];
	int found = 0;

	OK(bk_admin_create_topic(a, "s1", 3, NULL, 0, NULL));
	OK(bk_admin_create_topic(a, "s2", 2, NULL, 0, NULL));
	produce("s1", 0, 5, 1);
	OK(bk_admin_broker_status(a, &st));
	ck_assert_str_eq(st->broker_version, BK_VERSION);
	ck_assert_int_ge(st->uptime_ms, 0);
	ck_assert_uint_eq(st->topic_count, 2);
	ck_assert_uint_eq(st->partition_count, 5);
	ck_assert_uint_gt(st->data_bytes, 0);
	ck_assert_uint_gt(st->disk_total_bytes, 0);
	ck_assert_uint_le(st->disk_free_bytes, st->disk_total_bytes);
	ck_assert_uint_ge(st->connections, 1);
	snprintf(data_dir, sizeof(data_dir), "%s/data", b.dir);
	ck_assert_str_eq(st->data_dir, data_dir);
	bk_admin_free(st);

	OK(bk_admin_api_versions(a, &av));
	ck_assert_str_eq(av->broker_version, BK_VERSION);
	ck_assert_uint_eq(av->max_request_bytes, 16u << 20); /* the defaults */
	ck_assert_uint_eq(av->max_batch_bytes, 8u << 20);
	ck_assert_uint_eq(av->napis, 14);
	for (size_t i = 0; i < av->napis; i++) {
		ck_assert_uint_ge(av->apis[i].max_version, av->apis[i].min_version);
		if (strcmp(av->apis[i].name, "create_topic") == 0) {
			ck_assert_uint_eq(av->apis[i].key, BROKERD__REQUEST__OP_CREATE_TOPIC);
			ck_assert_uint_eq(av->apis[i].min_version, 1);
			found++;
		}
		if (strcmp(av->apis[i].name, "broker_status") == 0) {
			ck_assert_uint_eq(av->apis[i].key, BROKERD__REQUEST__OP_BROKER_STATUS);
			found++;
		}
	}
	ck_assert_int_eq(found, 2);
	bk_admin_free(av);
}
END_TEST

START_TEST(unreachable_and_reconnect)
{
	struct bk_admin_conf conf;
	struct bk_admin *other = NULL, *slow;
	struct bk_topic_list *tl = NULL;
	struct bk_group_list *gl = NULL;
	int64_t deadline;
	char addr[64];
	int rc;

	/* A stopped broker accepts (the kernel does) but never answers: the
	 * call ends at request_timeout_ms. */
	slow = admin_open(300);
	ck_assert_int_eq(kill(b.pid, SIGSTOP), 0);
	rc = bk_admin_list_topics(slow, &tl);
	ck_assert_int_eq(kill(b.pid, SIGCONT), 0);
	ck_assert_int_eq(rc, -ETIMEDOUT);
	ck_assert_ptr_null(tl);
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(slow), "timed out"));
	/* the timed-out connection was dropped: the next call uses a new one */
	ck_assert_int_eq(bk_admin_list_topics(slow, &tl), 0);
	bk_admin_free(tl);
	bk_admin_close(slow);

	/* The broker goes away under an open handle: a transport error, then
	 * the reconnect is refused. */
	OK(bk_admin_list_groups(a, &gl));
	bk_admin_free(gl);
	tb_kill9(&b);
	rc = bk_admin_list_groups(a, &gl);
	ck_assert_msg(rc < 0 && bk_err_code(rc) == 0, "rc %d", rc);
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(a), "failed"));
	rc = bk_admin_list_groups(a, &gl);
	ck_assert_int_eq(rc, -ECONNREFUSED);
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(a), "cannot connect to 127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(bk_admin_errmsg(a), "connection refused"));
	/* and a new handle cannot connect at all */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", b.port);
	bk_admin_conf_init(&conf);
	conf.bootstrap = addr;
	ck_assert_int_eq(bk_admin_new(&conf, &other), -ECONNREFUSED);
	ck_assert_ptr_null(other);
	conf.bootstrap = "no-port";
	ck_assert_int_eq(bk_admin_new(&conf, &other), -EINVAL);
	conf.bootstrap = NULL;
	ck_assert_int_eq(bk_admin_new(&conf, &other), -EINVAL);

	/* A refusal that closes the connection (TOO_MANY_CONNECTIONS): the
	 * handle reconnects on its next call once there is room. */
	bk_admin_close(a);
	a = NULL;
	tb_set(&b, "max.connections=1");
	tb_start(&b);
	a = admin_open(5000);
	OK(bk_admin_list_topics(a, &tl)); /* a holds the only connection */
	bk_admin_free(tl);
	other = admin_open(5000);         /* accepted, then refused */
	REFUSED(bk_admin_list_topics(other, &tl), BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS,
		"");
	ck_assert_str_ne(bk_admin_errmsg(other), "");
	bk_admin_close(a);
	a = NULL;
	/* the broker notices the close asynchronously: retry, bounded */
	deadline = tb_now_ms() + 5000;
	do {
		rc = bk_admin_list_topics(other, &tl);
		if (rc == 0)
			break;
		ck_assert_int_eq(rc, BK_ERR(BROKERD__ERROR_CODE__TOO_MANY_CONNECTIONS));
		usleep(20000);
	} while (tb_now_ms() < deadline);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(tl->ntopics, 0);
	bk_admin_free(tl);
	bk_admin_close(other);
}
END_TEST

Suite *admin_client_suite(void)
{
	Suite *s = suite_create("admin_client");
	TCase *tc = tcase_create("admin");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, topic_calls);
	tcase_add_test(tc, topic_errors);
	tcase_add_test(tc, offsets_and_groups);
	tcase_add_test(tc, status_and_versions);
	tcase_add_test(tc, unreachable_and_reconnect);
	suite_add_tcase(s, tc);
	return s;
}

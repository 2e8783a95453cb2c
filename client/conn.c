/* conn — a blocking connection to brokerd: framing (4-byte big-endian
 * length + protobuf) and request/response matching (see brokerd/client.h).
 * Every wait is bounded by the connection's timeout through poll(2). */
#include "brokerd/client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/addr.h"

#define CONN_MAX_RESPONSE (1u << 30)
#define CONN_DEFAULT_TIMEOUT_MS 10000

struct bk_conn {
	int fd;
	int timeout_ms;
	uint64_t next_corr;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	int rc, err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	rc = wait_fd(fd, POLLOUT, deadline);
	if (rc < 0)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		rc = err ? -err : -errno;
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return rc;
}

int bk_conn_open(const char *addr, int timeout_ms, struct bk_conn **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char host[256];
	const char *port;
	struct bk_conn *c;
	int64_t deadline;
	int rc, fd = -ECONNREFUSED;

	if (addr == NULL || addr_split(addr, host, sizeof(host), &port) < 0)
		return -EINVAL;
	if (timeout_ms <= 0)
		timeout_ms = CONN_DEFAULT_TIMEOUT_MS;
	deadline = now_ms() + timeout_ms;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, deadline);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	c->next_corr = 1;
	*out = c;
	return 0;
}

void bk_conn_close(struct bk_conn *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c);
}

static int send_all(struct bk_conn *c, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		int rc = wait_fd(c->fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int recv_all(struct bk_conn *c, uint8_t *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = recv(c->fd, p, len, 0);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		int rc = wait_fd(c->fd, POLLIN, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int bk_conn_call(struct bk_conn *c, Brokerd__Request *req, Brokerd__Response **resp)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	uint8_t pfx[4], *buf;
	size_t n;
	uint32_t rlen;
	int rc;

	req->correlation_id = c->next_corr++;
	if (req->client_id == NULL || req->client_id[0] == '\0')
		req->client_id = (char *)"libbrokerc";
	n = brokerd__request__get_packed_size(req);
	if (n > UINT32_MAX)
		return -EMSGSIZE;
	buf = malloc(n + 4);
	if (buf == NULL)
		return -ENOMEM;
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	brokerd__request__pack(req, buf + 4);
	rc = send_all(c, buf, n + 4, deadline);
	free(buf);
	if (rc < 0)
		return rc;
	rc = recv_all(c, pfx, 4, deadline);
	if (rc < 0)
		return rc;
	rlen = (uint32_t)pfx[0] << 24 | (uint32_t)pfx[1] << 16 | (uint32_t)pfx[2] << 8 | pfx[3];
	if (rlen > CONN_MAX_RESPONSE)
		return -EMSGSIZE;
	buf = malloc(rlen ? rlen : 1);
	if (buf == NULL)
		return -ENOMEM;
	rc = recv_all(c, buf, rlen, deadline);
	if (rc == 0) {
		*resp = brokerd__response__unpack(NULL, rlen, buf);
		if (*resp == NULL) {
			rc = -EPROTO;
		} else if ((*resp)->correlation_id != req->correlation_id &&
			   (*resp)->correlation_id != 0) {
			bk_response_free(*resp);
			rc = -EPROTO;
		}
	}
	free(buf);
	return rc;
}

void bk_response_free(Brokerd__Response *resp)
{
	if (resp != NULL)
		brokerd__response__free_unpacked(resp, NULL);
}

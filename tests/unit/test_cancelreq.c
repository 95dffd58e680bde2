/* Unit tests of cancelreq_send and cancelreq_start: the 16 bytes a postmaster reads (TCP
 * and unix sockets), the wait for its close, and the failures they report (refused, a
 * server that never closes, one that trickles bytes and never closes: one deadline for
 * all). A thread plays the postmaster. */
#include <check.h>
#include <event2/event.h>
#include <time.h>

#include "unit.h"
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cancelreq.h"

struct postmaster {
	int lfd;
	bool close_after; /* close the connection once the request is read */
	bool trickle;     /* then send a byte every 50 ms until the client closes */
	uint8_t got[32];
	ssize_t n;
	pthread_t th;
};

static void *postmaster_run(void *arg)
{
	struct postmaster *pm = arg;
	int fd = accept(pm->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	pm->n = 0;
	while (pm->n < 16) {
		ssize_t r = read(fd, pm->got + pm->n, sizeof(pm->got) - (size_t)pm->n);
		if (r <= 0)
			break;
		pm->n += r;
	}
	if (pm->trickle) {
		while (send(fd, "x", 1, MSG_NOSIGNAL) == 1)
			usleep(50000);
	} else if (!pm->close_after) {
		uint8_t b;
		(void)!read(fd, &b, 1); /* until the client gives up */
	}
	close(fd);
	return NULL;
}

static void postmaster_start(struct postmaster *pm, int lfd, bool close_after, bool trickle)
{
	memset(pm, 0, sizeof(*pm));
	pm->lfd = lfd;
	pm->close_after = close_after;
	pm->trickle = trickle;
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&pm->th, NULL, postmaster_run, pm), 0);
}

/* A TCP socket bound to 127.0.0.1 on a free port; *SA gets its address. */
static int tcp_socket(struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	socklen_t len = sizeof(*sa);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)sa, &len), 0);
	return fd;
}

static const uint8_t want[16] = {0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, /* 80877102 */
				 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};

START_TEST(test_tcp)
{
	struct sockaddr_in sa;
	int lfd = tcp_socket(&sa);
	struct postmaster pm;
	postmaster_start(&pm, lfd, true, false);
	char err[128] = "";
	ck_assert_msg(cancelreq_send((struct sockaddr *)&sa, sizeof(sa), 0x12345678, 0x9abcdef0,
				     5000, err, sizeof(err)),
		      "%s", err);
	pthread_join(pm.th, NULL);
	ck_assert_int_eq(pm.n, 16);
	ck_assert_int_eq(memcmp(pm.got, want, 16), 0);
	close(lfd);
}
END_TEST

START_TEST(test_unix)
{
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	snprintf(su.sun_path, sizeof(su.sun_path), "/tmp/pgcoro-cancelreq-%d", (int)getpid());
	unlink(su.sun_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&su, sizeof(su)), 0);
	struct postmaster pm;
	postmaster_start(&pm, lfd, true, false);
	char err[128] = "";
	ck_assert_msg(cancelreq_send((struct sockaddr *)&su, sizeof(su), 0x12345678, 0x9abcdef0, 0,
				     err, sizeof(err)),
		      "%s", err);
	pthread_join(pm.th, NULL);
	ck_assert_int_eq(pm.n, 16);
	ck_assert_int_eq(memcmp(pm.got, want, 16), 0);
	close(lfd);
	unlink(su.sun_path);
}
END_TEST

START_TEST(test_failures)
{
	/* nobody listens there */
	struct sockaddr_in sa;
	int fd = tcp_socket(&sa);
	close(fd);
	char err[128] = "";
	ck_assert(!cancelreq_send((struct sockaddr *)&sa, sizeof(sa), 1, 2, 2000, err, sizeof(err)));
	ck_assert_msg(strstr(err, "connect: Connection refused"), "%s", err);
	/* a server that reads the request and never closes: the wait is bounded */
	int lfd = tcp_socket(&sa);
	struct postmaster pm;
	postmaster_start(&pm, lfd, false, false);
	ck_assert(!cancelreq_send((struct sockaddr *)&sa, sizeof(sa), 1, 2, 300, err, sizeof(err)));
	ck_assert_msg(strstr(err, "wait for the close: Connection timed out"), "%s", err);
	pthread_join(pm.th, NULL);
	ck_assert_int_eq(pm.n, 16);
	close(lfd);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_trickle_one_deadline)
{
	/* a byte every 50 ms: the wait still ends at the one deadline (300 ms) */
	struct sockaddr_in sa;
	int lfd = tcp_socket(&sa);
	struct postmaster pm;
	postmaster_start(&pm, lfd, false, true);
	char err[128] = "";
	double t0 = now_s();
	ck_assert(!cancelreq_send((struct sockaddr *)&sa, sizeof(sa), 1, 2, 300, err, sizeof(err)));
	ck_assert_msg(strstr(err, "wait for the close: Connection timed out"), "%s", err);
	ck_assert_msg(now_s() - t0 < 5, "took %.1f s", now_s() - t0);
	pthread_join(pm.th, NULL);
	close(lfd);
}
END_TEST

/* ---- cancelreq_start, on a loop ---- */

struct loop_result {
	int calls;
	bool ok;
	char err[160];
	struct event_base *base;
};

static struct loop_result loop_res;

static void loop_done(struct cancelreq *cr, bool ok)
{
	loop_res.calls++;
	loop_res.ok = ok;
	snprintf(loop_res.err, sizeof(loop_res.err), "%s", cr->err);
	event_base_loopbreak(loop_res.base);
}

/* Runs a cancelreq_start to ADDRS on a new loop until its done; false when done did not
 * come within 10 s. */
static bool loop_send(const struct cancelreq_addr *addrs, int naddrs, int timeout_ms)
{
	struct event_base *base = event_base_new();
	ck_assert_ptr_nonnull(base);
	memset(&loop_res, 0, sizeof(loop_res));
	loop_res.base = base;
	struct cancelreq cr = {.done = loop_done};
	cancelreq_start(&cr, base, addrs, naddrs, 0x12345678, 0x9abcdef0, timeout_ms);
	ck_assert_int_eq(loop_res.calls, 0); /* never from within the start */
	struct timeval ten = {.tv_sec = 10};
	event_base_loopexit(base, &ten);
	event_base_dispatch(base);
	bool done = loop_res.calls == 1;
	if (!done)
		cancelreq_abort(&cr);
	event_base_free(base);
	return done;
}

static struct cancelreq_addr addr_of_in(const struct sockaddr_in *sa)
{
	struct cancelreq_addr a = {.len = sizeof(*sa)};
	memcpy(&a.sa, sa, sizeof(*sa));
	return a;
}

START_TEST(test_loop_tcp_after_a_refused_address)
{
	struct sockaddr_in dead;
	close(tcp_socket(&dead)); /* nobody listens there */
	struct sockaddr_in sa;
	int lfd = tcp_socket(&sa);
	struct postmaster pm;
	postmaster_start(&pm, lfd, true, false);
	struct cancelreq_addr addrs[2] = {addr_of_in(&dead), addr_of_in(&sa)};
	ck_assert(loop_send(addrs, 2, 5000));
	ck_assert_msg(loop_res.ok, "%s", loop_res.err);
	pthread_join(pm.th, NULL);
	ck_assert_int_eq(pm.n, 16);
	ck_assert_int_eq(memcmp(pm.got, want, 16), 0);
	close(lfd);
}
END_TEST

START_TEST(test_loop_failures)
{
	struct sockaddr_in sa;
	close(tcp_socket(&sa));
	struct cancelreq_addr a = addr_of_in(&sa);
	ck_assert(loop_send(&a, 1, 2000));
	ck_assert(!loop_res.ok);
	ck_assert_msg(strstr(loop_res.err, "connect: Connection refused"), "%s", loop_res.err);
	ck_assert(loop_send(NULL, 0, 2000));
	ck_assert(!loop_res.ok);
	/* a trickling server: one deadline */
	int lfd = tcp_socket(&sa);
	struct postmaster pm;
	postmaster_start(&pm, lfd, false, true);
	a = addr_of_in(&sa);
	ck_assert(loop_send(&a, 1, 300));
	ck_assert(!loop_res.ok);
	ck_assert_msg(strstr(loop_res.err, "wait for the close: Connection timed out"), "%s",
		      loop_res.err);
	pthread_join(pm.th, NULL);
	ck_assert_int_eq(pm.n, 16);
	close(lfd);
}
END_TEST

static Suite *cancelreq_suite(void)
{
	Suite *s = suite_create("cancelreq");
	TCase *tc = tcase_create("send");
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_failures);
	tcase_add_test(tc, test_trickle_one_deadline);
	tcase_add_test(tc, test_loop_tcp_after_a_refused_address);
	tcase_add_test(tc, test_loop_failures);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(cancelreq_suite()); }

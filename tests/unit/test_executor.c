/* Unit tests for executor.c: fn runs on a worker, done on the loop thread, every job
 * completes exactly once (also when submitted from done, and when exec_free finds jobs
 * still queued), completion order with one thread, real concurrency with several, and the
 * two classes: service jobs taken before bulk ones, never waiting behind them, bulk jobs
 * on all threads but one at most. */
#include <check.h>

#include "unit.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "executor.h"

#define LOOP_CAP 100000

struct tjob {
	struct exec_job job; /* first: a struct exec_job * is a struct tjob * */
	int id;
	atomic_int fn_runs;
	int done_runs;
	pthread_t fn_thread;
	pthread_t done_thread;
	int resubmits; /* done resubmits the job this many more times */
};

static pthread_t test_thread;
static struct executor *cur_ex;
static atomic_int total_fn;
static int total_done;
static int done_order[1000];
static int ndone_order;

static void tjob_fn(struct exec_job *j)
{
	struct tjob *t = (struct tjob *)j;
	t->fn_thread = pthread_self();
	atomic_fetch_add(&t->fn_runs, 1);
	atomic_fetch_add(&total_fn, 1);
}

static void tjob_done(struct exec_job *j)
{
	struct tjob *t = (struct tjob *)j;
	t->done_thread = pthread_self();
	t->done_runs++;
	total_done++;
	if (ndone_order < (int)(sizeof(done_order) / sizeof(done_order[0])))
		done_order[ndone_order++] = t->id;
	if (t->resubmits > 0) {
		t->resubmits--;
		exec_submit(cur_ex, &t->job);
	}
}

static void tjob_init(struct tjob *t, int id)
{
	t->job.fn = tjob_fn;
	t->job.done = tjob_done;
	t->job.arg = t;
	t->job.next = NULL;
	t->id = id;
	atomic_init(&t->fn_runs, 0);
	t->done_runs = 0;
	t->resubmits = 0;
}

static void reset_globals(void)
{
	test_thread = pthread_self();
	cur_ex = NULL;
	atomic_store(&total_fn, 0);
	total_done = 0;
	ndone_order = 0;
}

/* Runs the loop until nothing is pending; returns the iterations used. */
static int run_until_idle(struct event_base *base, struct executor *ex)
{
	int it = 0;
	while (exec_pending(ex) > 0 && it < LOOP_CAP) {
		ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
		it++;
	}
	ck_assert_int_eq(exec_pending(ex), 0);
	return it;
}

START_TEST(test_threads)
{
	reset_globals();
	struct event_base *base = event_base_new();
	ck_assert_ptr_nonnull(base);
	struct executor *ex = exec_new(base, 2);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;

	struct tjob t;
	tjob_init(&t, 0);
	ck_assert_int_eq(exec_pending(ex), 0);
	exec_submit(ex, &t.job);
	ck_assert_int_eq(exec_pending(ex), 1);
	run_until_idle(base, ex);
	ck_assert_int_eq(atomic_load(&t.fn_runs), 1);
	ck_assert_int_eq(t.done_runs, 1);
	ck_assert(!pthread_equal(t.fn_thread, test_thread));
	ck_assert(pthread_equal(t.done_thread, test_thread));

	exec_free(ex);
	event_base_free(base);
}
END_TEST

START_TEST(test_many_jobs)
{
	enum { N = 1000 };
	reset_globals();
	struct event_base *base = event_base_new();
	struct executor *ex = exec_new(base, 4);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;

	struct tjob *jobs = calloc(N, sizeof(*jobs));
	ck_assert_ptr_nonnull(jobs);
	for (int i = 0; i < N; i++) {
		tjob_init(&jobs[i], i);
		exec_submit(ex, &jobs[i].job);
	}
	ck_assert_int_eq(exec_pending(ex), N);
	run_until_idle(base, ex);
	ck_assert_int_eq(atomic_load(&total_fn), N);
	ck_assert_int_eq(total_done, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&jobs[i].fn_runs), 1);
		ck_assert_int_eq(jobs[i].done_runs, 1);
		ck_assert(!pthread_equal(jobs[i].fn_thread, test_thread));
		ck_assert(pthread_equal(jobs[i].done_thread, test_thread));
	}
	/* nothing left: one more loop pass runs no done */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	ck_assert_int_eq(total_done, N);

	exec_free(ex);
	event_base_free(base);
	free(jobs);
}
END_TEST

START_TEST(test_fifo_order_one_thread)
{
	enum { N = 200 };
	reset_globals();
	struct event_base *base = event_base_new();
	struct executor *ex = exec_new(base, 1);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;
	struct tjob jobs[N];
	for (int i = 0; i < N; i++) {
		tjob_init(&jobs[i], i);
		exec_submit(ex, &jobs[i].job);
	}
	run_until_idle(base, ex);
	ck_assert_int_eq(ndone_order, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(done_order[i], i);
	exec_free(ex);
	event_base_free(base);
}
END_TEST

START_TEST(test_submit_from_done)
{
	enum { N = 50, AGAIN = 4 };
	reset_globals();
	struct event_base *base = event_base_new();
	struct executor *ex = exec_new(base, 3);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;
	struct tjob jobs[N];
	for (int i = 0; i < N; i++) {
		tjob_init(&jobs[i], i);
		jobs[i].resubmits = AGAIN;
		exec_submit(ex, &jobs[i].job);
	}
	run_until_idle(base, ex);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&jobs[i].fn_runs), AGAIN + 1);
		ck_assert_int_eq(jobs[i].done_runs, AGAIN + 1);
		ck_assert_int_eq(jobs[i].resubmits, 0);
	}
	ck_assert_int_eq(total_done, N * (AGAIN + 1));
	exec_free(ex);
	event_base_free(base);
}
END_TEST

/* Four jobs that each wait for all four at a barrier: completes only if four workers
 * really run at once (a deadlock here is caught by Check's timeout). */
static pthread_barrier_t barrier;

static void barrier_fn(struct exec_job *j)
{
	pthread_barrier_wait(&barrier);
	tjob_fn(j);
}

START_TEST(test_concurrency)
{
	reset_globals();
	struct event_base *base = event_base_new();
	struct executor *ex = exec_new(base, 4);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;
	pthread_barrier_init(&barrier, NULL, 4);
	struct tjob jobs[4];
	for (int i = 0; i < 4; i++) {
		tjob_init(&jobs[i], i);
		jobs[i].job.fn = barrier_fn;
		exec_submit(ex, &jobs[i].job);
	}
	run_until_idle(base, ex);
	ck_assert_int_eq(total_done, 4);
	for (int i = 0; i < 4; i++)
		for (int k = i + 1; k < 4; k++)
			ck_assert(!pthread_equal(jobs[i].fn_thread, jobs[k].fn_thread));
	exec_free(ex);
	event_base_free(base);
	pthread_barrier_destroy(&barrier);
}
END_TEST

/* exec_free while jobs are still queued: the first job holds the only worker at a gate
 * that a helper thread opens a little later, so exec_free starts with the queue full. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_bool gate_reached;

static void gate_fn(struct exec_job *j)
{
	atomic_store(&gate_reached, true);
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	tjob_fn(j);
}

static void *gate_opener(void *arg)
{
	usleep(50 * 1000);
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_mu);
	return NULL;
}

START_TEST(test_free_with_queued)
{
	enum { N = 100 };
	reset_globals();
	gate_open = false;
	atomic_store(&gate_reached, false);
	struct event_base *base = event_base_new();
	struct executor *ex = exec_new(base, 1);
	ck_assert_ptr_nonnull(ex);
	cur_ex = ex;
	struct tjob *jobs = calloc(N, sizeof(*jobs));
	ck_assert_ptr_nonnull(jobs);
	for (int i = 0; i < N; i++) {
		tjob_init(&jobs[i], i);
		if (i == 0)
			jobs[i].job.fn = gate_fn;
		exec_submit(ex, &jobs[i].job);
	}
	/* the last job resubmits itself from its done, which runs inside exec_free */
	jobs[N - 1].resubmits = 2;
	while (!atomic_load(&gate_reached))
		usleep(1000);
	pthread_t opener;
	ck_assert_int_eq(pthread_create(&opener, NULL, gate_opener, NULL), 0);

	exec_free(ex); /* no loop iteration ran: every done runs here */
	pthread_join(opener, NULL);

	ck_assert_int_eq(total_done, N + 2);
	ck_assert_int_eq(atomic_load(&total_fn), N + 2);
	for (int i = 0; i < N; i++) {
		int want = i == N - 1 ? 3 : 1;
		ck_assert_int_eq(atomic_load(&jobs[i].fn_runs), want);
		ck_assert_int_eq(jobs[i].done_runs, want);
		ck_assert(pthread_equal(jobs[i].done_thread, test_thread));
	}
	ck_assert(!pthread_equal(jobs[0].fn_thread, test_thread));
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(done_order[i], i);
	event_base_free(base);
	free(jobs);
}
END_TEST

START_TEST(test_free_idle_and_bad_args)
{
	reset_globals();
	struct event_base *base = event_base_new();
	ck_assert_ptr_null(exec_new(base, 0));
	ck_assert_ptr_null(exec_new(base, -3));
	struct executor *ex = exec_new(base, 8);
	ck_assert_ptr_nonnull(ex);
	exec_free(ex);
	exec_free(NULL);
	/* the eventfd event is gone from the base: the loop has nothing to wait for */
	ck_assert_int_eq(event_base_loop(base, 0), 1);
	event_base_free(base);
}
END_TEST

/* Gates a job's fn can wait at, opened by the test; the order fns start in. */
enum { NGATES = 4 };
static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gates_cond = PTHREAD_COND_INITIALIZER;
static bool gates[NGATES];
static int started[16], nstarted;
static int bulk_now, bulk_most; /* bulk fns running now, the most at once */

struct cjob {
	struct tjob t; /* first */
	int gate;      /* -1: none */
	bool bulk;
};

static void cjob_fn(struct exec_job *j)
{
	struct cjob *c = (struct cjob *)j;
	pthread_mutex_lock(&gates_mu);
	started[nstarted++] = c->t.id;
	if (c->bulk && ++bulk_now > bulk_most)
		bulk_most = bulk_now;
	pthread_cond_broadcast(&gates_cond);
	while (c->gate >= 0 && !gates[c->gate])
		pthread_cond_wait(&gates_cond, &gates_mu);
	if (c->bulk)
		bulk_now--;
	pthread_mutex_unlock(&gates_mu);
	tjob_fn(j);
}

static void cjob_submit(struct executor *ex, struct cjob *c, int id, bool bulk, int gate)
{
	tjob_init(&c->t, id);
	c->t.job.fn = cjob_fn;
	c->bulk = bulk;
	c->gate = gate;
	if (bulk)
		exec_submit_bulk(ex, &c->t.job);
	else
		exec_submit(ex, &c->t.job);
}

static void gate_set(int g, bool open)
{
	pthread_mutex_lock(&gates_mu);
	gates[g] = open;
	pthread_cond_broadcast(&gates_cond);
	pthread_mutex_unlock(&gates_mu);
}

/* Waits until N fns have started. */
static void wait_started(int n)
{
	pthread_mutex_lock(&gates_mu);
	while (nstarted < n)
		pthread_cond_wait(&gates_cond, &gates_mu);
	pthread_mutex_unlock(&gates_mu);
}

/* A new executor of NTHREADS on a new *BASE, every gate closed, nothing started. */
static struct executor *classes_start(struct event_base **base, int nthreads)
{
	reset_globals();
	memset(gates, 0, sizeof gates);
	nstarted = bulk_now = bulk_most = 0;
	*base = event_base_new();
	struct executor *ex = exec_new(*base, nthreads);
	ck_assert_ptr_nonnull(ex);
	return ex;
}

/* Bulk jobs that never end (until their gate opens) hold all threads but one: service jobs
 * submitted after them run and complete meanwhile, on the thread left. */
START_TEST(test_service_never_behind_bulk)
{
	for (int nthreads = 2; nthreads <= 3; nthreads++) {
		struct event_base *base;
		struct executor *ex = classes_start(&base, nthreads);
		ck_assert_int_eq(exec_bulk_threads(ex), nthreads - 1);
		struct cjob bulk[6], svc[5];
		for (int i = 0; i < 6; i++)
			cjob_submit(ex, &bulk[i], i, true, 0);
		wait_started(nthreads - 1);
		for (int i = 0; i < 5; i++)
			cjob_submit(ex, &svc[i], 100 + i, false, -1);
		while (total_done < 5)
			ck_assert_int_eq(event_base_loop(base, EVLOOP_ONCE), 0);
		for (int i = 0; i < 5; i++)
			ck_assert_int_eq(svc[i].t.done_runs, 1);
		for (int i = 0; i < 6; i++)
			ck_assert_int_eq(bulk[i].t.done_runs, 0);
		gate_set(0, true);
		run_until_idle(base, ex);
		ck_assert_int_eq(total_done, 11);
		ck_assert_int_eq(bulk_most, nthreads - 1);
		exec_free(ex);
		event_base_free(base);
	}
}
END_TEST

/* A free thread takes the oldest service job before any bulk job, whatever came first. */
START_TEST(test_service_taken_before_bulk)
{
	struct event_base *base;
	struct executor *ex = classes_start(&base, 2);
	struct cjob hold, b1, b2, s2;
	cjob_submit(ex, &hold, 0, false, 0); /* one thread held by a service job */
	cjob_submit(ex, &b1, 1, true, 1);    /* the other by a bulk one */
	wait_started(2);
	cjob_submit(ex, &b2, 2, true, -1);
	cjob_submit(ex, &s2, 3, false, -1);
	gate_set(1, true); /* b1 ends: its thread takes s2, then b2 */
	wait_started(4);
	ck_assert_int_eq(started[2], 3);
	ck_assert_int_eq(started[3], 2);
	gate_set(0, true);
	run_until_idle(base, ex);
	ck_assert_int_eq(total_done, 4);
	exec_free(ex);
	event_base_free(base);
}
END_TEST

/* exec_free runs queued bulk jobs too. */
START_TEST(test_free_with_bulk_queued)
{
	struct event_base *base;
	struct executor *ex = classes_start(&base, 2);
	struct cjob b[3];
	cjob_submit(ex, &b[0], 0, true, 0);
	wait_started(1);
	cjob_submit(ex, &b[1], 1, true, -1);
	cjob_submit(ex, &b[2], 2, true, -1);
	gate_set(0, true);
	exec_free(ex);
	ck_assert_int_eq(total_done, 3);
	event_base_free(base);
}
END_TEST

static Suite *executor_suite(void)
{
	Suite *s = suite_create("executor");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_many_jobs);
	tcase_add_test(tc, test_fifo_order_one_thread);
	tcase_add_test(tc, test_submit_from_done);
	tcase_add_test(tc, test_concurrency);
	tcase_add_test(tc, test_free_with_queued);
	tcase_add_test(tc, test_free_idle_and_bad_args);
	tcase_add_test(tc, test_service_never_behind_bulk);
	tcase_add_test(tc, test_service_taken_before_bulk);
	tcase_add_test(tc, test_free_with_bulk_queued);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(executor_suite()); }

/* Unit tests for executor.c: fn runs on a worker, done on the loop thread, every job
 * completes exactly once (also when submitted from done, and when exec_free finds jobs
 * still queued), completion order with one thread, and real concurrency with several. */
#include <check.h>

#include "unit.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(executor_suite()); }

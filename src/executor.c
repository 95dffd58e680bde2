/* The executor: a fixed pool of worker threads fed by two mutex/condvar FIFOs of
 * caller-owned jobs, service and bulk (executor.h). A worker takes the head of the service
 * FIFO, else the head of the bulk one while fewer than bulk_max workers run bulk jobs, runs
 * fn, appends the job to a completion list and, when that list was empty, wakes the loop
 * through an eventfd watched by a persistent event; the loop swaps the list out and runs
 * each done in completion order. No allocation per job. */
#include "executor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "log.h"

struct job_fifo {
	struct exec_job *head, *tail;
};

struct executor {
	struct event_base *base;
	struct event wake_ev; /* EV_READ|EV_PERSIST on efd */
	int efd;
	int pending; /* submitted, done not run yet; loop thread only */

	pthread_mutex_t mu;  /* guards everything below */
	pthread_cond_t cond; /* signalled when a job becomes takeable or stop is set */
	struct job_fifo queue; /* service jobs */
	struct job_fifo bulk;  /* bulk jobs */
	struct job_fifo completed;
	int bulk_running; /* bulk jobs a worker runs now */
	int bulk_max;     /* nthreads - 1: one worker at least is free of bulk jobs */
	bool stop;

	int nthreads; /* started */
	pthread_t threads[];
};

static void fifo_push(struct job_fifo *f, struct exec_job *job)
{
	job->next = NULL;
	if (f->tail)
		f->tail->next = job;
	else
		f->head = job;
	f->tail = job;
}

static struct exec_job *fifo_pop(struct job_fifo *f)
{
	struct exec_job *job = f->head;
	if (job) {
		f->head = job->next;
		if (!f->head)
			f->tail = NULL;
		job->next = NULL;
	}
	return job;
}

static void exec_wake_loop(struct executor *ex)
{
	uint64_t one = 1;
	while (write(ex->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* The job a free worker takes now, or NULL (*BULK: it is a bulk job). Under mu. */
static struct exec_job *exec_take(struct executor *ex, bool *bulk)
{
	*bulk = false;
	if (ex->queue.head)
		return fifo_pop(&ex->queue);
	if (!ex->bulk.head || ex->bulk_running >= ex->bulk_max)
		return NULL;
	*bulk = true;
	ex->bulk_running++;
	return fifo_pop(&ex->bulk);
}

static void *exec_worker(void *arg)
{
	struct executor *ex = arg;

	pthread_mutex_lock(&ex->mu);
	for (;;) {
		bool bulk;
		struct exec_job *job = exec_take(ex, &bulk);
		if (!job) {
			if (ex->stop && !ex->queue.head && !ex->bulk.head)
				break; /* stopping and nothing left */
			pthread_cond_wait(&ex->cond, &ex->mu);
			continue;
		}
		pthread_mutex_unlock(&ex->mu);

		job->fn(job);

		pthread_mutex_lock(&ex->mu);
		if (bulk && --ex->bulk_running < ex->bulk_max && ex->bulk.head)
			pthread_cond_signal(&ex->cond); /* a waiting bulk job is takeable now */
		bool was_empty = ex->completed.head == NULL;
		fifo_push(&ex->completed, job);
		if (was_empty)
			exec_wake_loop(ex);
	}
	pthread_mutex_unlock(&ex->mu);
	return NULL;
}

/* Runs the done callbacks of every completed job, in completion order. Loop thread. */
static void exec_run_completed(struct executor *ex)
{
	pthread_mutex_lock(&ex->mu);
	struct exec_job *job = ex->completed.head;
	ex->completed.head = ex->completed.tail = NULL;
	pthread_mutex_unlock(&ex->mu);

	while (job) {
		/* done may resubmit or free the job: read next first */
		struct exec_job *next = job->next;
		job->next = NULL;
		ex->pending--;
		if (job->done)
			job->done(job);
		job = next;
	}
}

static void exec_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct executor *ex = arg;
	uint64_t n;

	/* Reset the counter before taking the list, so a completion pushed after the swap
	 * always leaves a fresh wake-up behind. */
	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	exec_run_completed(ex);
}

/* Stops the threads started so far and waits for them. */
static void exec_stop_join(struct executor *ex)
{
	pthread_mutex_lock(&ex->mu);
	ex->stop = true;
	pthread_cond_broadcast(&ex->cond);
	pthread_mutex_unlock(&ex->mu);
	for (int i = 0; i < ex->nthreads; i++)
		pthread_join(ex->threads[i], NULL);
	ex->nthreads = 0;
}

struct executor *exec_new(struct event_base *base, int nthreads)
{
	if (nthreads <= 0) {
		log_error("executor: invalid thread count %d", nthreads);
		return NULL;
	}
	struct executor *ex = calloc(1, sizeof(*ex) + (size_t)nthreads * sizeof(pthread_t));
	if (!ex) {
		log_error("executor: out of memory");
		return NULL;
	}
	ex->base = base;
	ex->bulk_max = nthreads - 1;
	ex->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ex->efd < 0) {
		log_error("executor: eventfd: %s", strerror(errno));
		free(ex);
		return NULL;
	}
	pthread_mutex_init(&ex->mu, NULL);
	pthread_cond_init(&ex->cond, NULL);
	if (event_assign(&ex->wake_ev, base, ex->efd, EV_READ | EV_PERSIST, exec_on_wake, ex) < 0 ||
	    event_add(&ex->wake_ev, NULL) < 0) {
		log_error("executor: cannot register the eventfd with the event loop");
		goto fail;
	}

	/* Workers block every signal: signals belong to the loop thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = 0;
	for (int i = 0; i < nthreads; i++) {
		err = pthread_create(&ex->threads[i], NULL, exec_worker, ex);
		if (err)
			break;
		pthread_setname_np(ex->threads[i], "pgcoro-exec");
		ex->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error("executor: pthread_create: %s", strerror(err));
		exec_stop_join(ex);
		event_del(&ex->wake_ev);
		goto fail;
	}
	log_debug("executor: %d threads, password checks on %d at most", nthreads, ex->bulk_max);
	return ex;

fail:
	pthread_cond_destroy(&ex->cond);
	pthread_mutex_destroy(&ex->mu);
	close(ex->efd);
	free(ex);
	return NULL;
}

static void exec_queue(struct executor *ex, struct job_fifo *f, struct exec_job *job)
{
	ex->pending++;
	pthread_mutex_lock(&ex->mu);
	fifo_push(f, job);
	pthread_cond_signal(&ex->cond);
	pthread_mutex_unlock(&ex->mu);
}

void exec_submit(struct executor *ex, struct exec_job *job) { exec_queue(ex, &ex->queue, job); }

void exec_submit_bulk(struct executor *ex, struct exec_job *job)
{
	if (ex->bulk_max < 1)
		fatal("executor: a bulk job submitted to an executor of one thread");
	exec_queue(ex, &ex->bulk, job);
}

int exec_pending(const struct executor *ex)
{
	return ex->pending;
}

int exec_bulk_threads(const struct executor *ex)
{
	return ex->bulk_max;
}

/* After the workers are joined, jobs that done callbacks submit during exec_free run
 * their fn here, on the calling thread, so every submitted job still completes once. */
void exec_free(struct executor *ex)
{
	if (!ex)
		return;
	exec_stop_join(ex);
	for (;;) {
		exec_run_completed(ex);
		struct exec_job *job = fifo_pop(&ex->queue);
		if (!job)
			job = fifo_pop(&ex->bulk);
		if (!job)
			break;
		job->fn(job);
		fifo_push(&ex->completed, job);
	}
	event_del(&ex->wake_ev);
	close(ex->efd);
	pthread_cond_destroy(&ex->cond);
	pthread_mutex_destroy(&ex->mu);
	free(ex);
}

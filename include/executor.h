/* A fixed pool of threads that runs jobs which would block the loop (libpq connect steps,
 * PQcancel, file reads). A job's fn runs on a worker thread; its done runs later on the
 * loop thread (the thread running the event_base). Workers never touch session state. */
#ifndef PGCORO_EXECUTOR_H
#define PGCORO_EXECUTOR_H

#include <stdbool.h>

#include "types.h"

struct event_base;

struct exec_job {
	void (*fn)(struct exec_job *job);   /* runs on a worker thread */
	void (*done)(struct exec_job *job); /* runs on the loop thread after fn returned */
	void *arg;                          /* the submitter's */
	struct exec_job *next;              /* internal */
};

/* Starts NTHREADS workers delivering completions on BASE. NULL on failure. */
struct executor *exec_new(struct event_base *base, int nthreads) __attribute__((warn_unused_result));

/* Queues JOB (owned by the caller, which must keep it alive until done has run). Loop thread only. */
void exec_submit(struct executor *ex, struct exec_job *job);

/* Jobs submitted and whose done has not run yet. */
int exec_pending(const struct executor *ex);

/* The worker threads EX runs. */
int exec_threads(const struct executor *ex);

/* Stops the workers after the jobs already queued have run, joins them, runs the remaining
 * done callbacks on the calling (loop) thread, and frees EX. */
void exec_free(struct executor *ex);

#endif

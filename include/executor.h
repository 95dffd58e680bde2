/* A fixed pool of threads that runs jobs which would block the loop (libpq connect steps,
 * PQcancel, file reads, clients' password checks). A job's fn runs on a worker thread; its
 * done runs later on the loop thread (the thread running the event_base). Workers never
 * touch session state.
 *
 * Two classes of jobs, so that work an anonymous peer can cause never delays the pooler's
 * own: service jobs (exec_submit: connect steps, cancels, reloads) and bulk jobs
 * (exec_submit_bulk: cleartext password checks, PBKDF2 that takes as long as a verifier's
 * iterations say). A free thread takes the oldest service job first; it takes a bulk job
 * only when no service job waits and fewer than exec_bulk_threads() (all threads but one)
 * run bulk jobs. So one thread at least is always free of bulk work, and a service job
 * waits for service jobs only, never behind a bulk one. */
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

/* Starts NTHREADS workers delivering completions on BASE. NULL on failure. Bulk jobs need
 * two at least (one runs them, one stays free of them). */
struct executor *exec_new(struct event_base *base, int nthreads) __attribute__((warn_unused_result));

/* Queues JOB as a service job (owned by the caller, which must keep it alive until done
 * has run): it runs after the service jobs queued before it, ahead of every bulk job. Loop
 * thread only. */
void exec_submit(struct executor *ex, struct exec_job *job);

/* Queues JOB as a bulk job (as exec_submit otherwise): it runs in order with the other bulk
 * jobs, when no service job waits, on at most exec_bulk_threads() threads at once. Loop
 * thread only; EX has two threads at least (fatal otherwise: the job would never run). */
void exec_submit_bulk(struct executor *ex, struct exec_job *job);

/* Jobs submitted and whose done has not run yet. */
int exec_pending(const struct executor *ex);

/* The most bulk jobs EX runs at once: its threads but one (0 with one thread). */
int exec_bulk_threads(const struct executor *ex);

/* Stops the workers after the jobs already queued have run, joins them, runs the remaining
 * done callbacks on the calling (loop) thread, and frees EX. */
void exec_free(struct executor *ex);

#endif

/* Random bytes for cancel keys and md5 salts (rand.c). */
#ifndef PGCORO_RAND_H
#define PGCORO_RAND_H

#include <stdbool.h>
#include <stddef.h>

/* Fills BUF with N (at most 4096) bytes from the kernel's generator, drawn from a pool
 * refilled 4 KiB at a time. False if N is too large or getrandom failed. */
bool rand_bytes(void *buf, size_t n) __attribute__((warn_unused_result));

#endif

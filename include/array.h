/* Growable arrays, header-only: the one way an array of things kept per client or per
 * channel (LISTEN) makes room. */
#ifndef PGCORO_ARRAY_H
#define PGCORO_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Makes room for NEED elements of ELEM bytes in *ARR (*CAP of them now, doubling, at
 * least 4). False: no memory, *ARR and *CAP unchanged. */
static inline __attribute__((warn_unused_result)) bool array_grow(void **arr, int *cap, int need,
								   size_t elem)
{
	if (need <= *cap)
		return true;
	int n = *cap ? *cap * 2 : 4;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, (size_t)n * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = n;
	return true;
}

#endif

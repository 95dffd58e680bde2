/* String hashing, header-only: the one hash function for tables keyed by names (the
 * pools by database and user). FNV-1a: fast on short keys, no state, good enough spread
 * for chained tables with a power-of-two bucket count. */
#ifndef PGCORO_HASH_H
#define PGCORO_HASH_H

#include <stdint.h>

/* The 32-bit FNV-1a hash of the NUL-terminated string S. */
static inline uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* One hash of two: A and B combined so that (a, b) and (b, a) differ. */
static inline uint32_t hash_pair(uint32_t a, uint32_t b)
{
	return (a ^ (b + 0x9e3779b9u + (a << 6) + (a >> 2)));
}

#endif

/* Owns the pool of random bytes the loop hands out (cancel keys, md5 salts): one
 * getrandom() serves hundreds of logins, and bytes handed out are not kept. */
#include "rand.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

bool rand_bytes(void *buf, size_t n)
{
	static uint8_t pool_bytes[4096];
	static size_t left;
	if (n > sizeof(pool_bytes))
		return false;
	if (left < n) {
		if (getrandom(pool_bytes, sizeof(pool_bytes), 0) != (ssize_t)sizeof(pool_bytes))
			return false;
		left = sizeof(pool_bytes);
	}
	memcpy(buf, pool_bytes + sizeof(pool_bytes) - left, n);
	memset(pool_bytes + sizeof(pool_bytes) - left, 0, n); /* not kept once handed out */
	left -= n;
	return true;
}

/* Fuzzes the reading of auth_query's answer (authquery.h: authquery_answer_row, what the
 * look-up's DataRow handler calls for each row a server sends) and of SHOW
 * password_encryption's row (authquery_pwenc_md5).
 *   byte 0   the length (% 32) of the user name looked up, whose bytes follow (cut at a
 *            NUL, as a C string)
 *   then rows: a 2-byte length, then that many bytes of a DataRow's body (fewer at the
 *            end), each in a buffer of exactly its size
 * Oracles: nothing read outside a row (ASan); the verdict of every row what a separate
 * reading of PgBouncer's checks gives (the first row: a secret, no secret, or refused;
 * any later row: refused), the secret exactly the second column's bytes, allocated only
 * for a first row accepted, the reason terminated; nothing left once the answer is freed
 * (LeakSanitizer); the md5 check true exactly for a one-column row "md5". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authquery.h"
#include "loop.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_authquery: %s\n", what);
		abort();
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum verdict { V_SECRET, V_NONE, V_BAD };

/* PgBouncer's checks of a first row B (N bytes) for USER, read separately: the secret's
 * bytes into *S, *SLEN. */
static enum verdict ref_row(const uint8_t *b, size_t n, const char *user, const uint8_t **s,
			    size_t *slen)
{
	if (n < 2 || b[0] != 0 || b[1] != 2)
		return V_BAD;
	size_t pos = 2;
	if (n - pos < 4 || be32(b + pos) == 0xffffffffu)
		return V_BAD;
	size_t ulen = be32(b + pos);
	pos += 4;
	if (n - pos < 4 || n - pos - 4 < ulen) /* the name and the secret's length */
		return V_BAD;
	if (ulen != strlen(user) || memcmp(b + pos, user, ulen) != 0)
		return V_BAD;
	pos += ulen;
	uint32_t len = be32(b + pos);
	pos += 4;
	if (len == 0xffffffffu)
		return V_NONE;
	if (n - pos < len || memchr(b + pos, 0, len))
		return V_BAD;
	*s = b + pos;
	*slen = len;
	return V_SECRET;
}

static bool ref_md5(const uint8_t *b, size_t n)
{
	return n >= 9 && b[0] == 0 && b[1] == 1 && be32(b + 2) == 3 && b[6] == 'm' &&
	       b[7] == 'd' && b[8] == '5';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	char user[33];
	size_t got;
	const uint8_t *u = fz_bytes(&in, fz_u8(&in) % 32, &got);
	memcpy(user, u, got);
	user[got] = 0;
	struct authquery_answer a = {0};
	const char *kept = NULL; /* the first row's secret */
	for (int row = 1; in.n > 0; row++) {
		size_t len = (size_t)fz_u8(&in) << 8;
		len |= fz_u8(&in);
		const uint8_t *src = fz_bytes(&in, len, &got);
		uint8_t *body = malloc(got ? got : 1); /* exactly its size */
		check(body != NULL, "out of memory");
		memcpy(body, src, got);
		check(authquery_pwenc_md5(body, (uint32_t)got) == ref_md5(body, got),
		      "password_encryption misread");
		const uint8_t *s = NULL;
		size_t slen = 0;
		enum verdict want = ref_row(body, got, user, &s, &slen);
		authquery_answer_row(&a, user, body, (uint32_t)got);
		check(a.rows == row, "rows not counted");
		check(memchr(a.bad_why, 0, sizeof(a.bad_why)) != NULL, "a reason not terminated");
		if (row == 1) {
			check(a.bad == (want == V_BAD), want == V_BAD ? "a bad row taken"
								      : "a good row refused");
			check((a.secret != NULL) == (want == V_SECRET),
			      "a secret without a row that has one (or none with one)");
			if (a.secret)
				check(strlen(a.secret) == slen && memcmp(a.secret, s, slen) == 0,
				      "the secret is not the row's");
			kept = a.secret;
		} else {
			check(a.bad, "a second row taken");
			check(a.secret == kept, "the secret changed");
		}
		if (a.bad)
			check(a.bad_why[0] != 0, "refused without a reason");
		free(body);
	}
	authquery_answer_free(&a);
	check(a.secret == NULL, "a secret left after the free");
	return 0;
}

/* Fuzzes the server side of SCRAM-SHA-256 (scram.h) and the checks of stored secrets
 * (auth.h). The input: a flags byte, then up to three parts separated by NUL bytes
 * (which no SCRAM message may contain): a client-first-message, a client-final-message
 * and a stored secret. With flag 1 the client-final is instead computed from the server's
 * answer with the right password, so the whole exchange must succeed: a proof that
 * verifies must be accepted. The secret goes through the verifier parser and the plain
 * and md5 checks (PBKDF2 only when its iteration count is small). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "loop.h"
#include "scram.h"

/* scram.c: scram_server_first with a given server nonce (as test_scram.c uses it). */
bool scram_server_first_nonce(struct scram_server *st, const char *msg, size_t len,
			      const char *server_nonce, char *out, size_t outlen);

#define PASSWORD "pencil"
#define MAX_ITERATIONS 64 /* PBKDF2 on a fuzzed secret only below this: speed */

static struct scram_keys keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t salt[] = "pgcoro-fuzz-salt";
	if (!scram_derive_keys(PASSWORD, salt, (int)sizeof(salt) - 1, 2, &keys))
		abort();
	return 0;
}

/* The part of IN up to the next NUL (or its end); *LEN its length. */
static const char *part(struct fz_in *in, size_t *len)
{
	const uint8_t *nul = in->n ? memchr(in->p, 0, in->n) : NULL;
	size_t n = nul ? (size_t)(nul - in->p) : in->n, got;
	const char *p = (const char *)fz_bytes(in, n, &got);
	*len = got;
	if (nul)
		fz_u8(in);
	return p;
}

/* A copy of exactly LEN bytes (no NUL added), so a read past the message is caught. */
static char *exact(const char *p, size_t len)
{
	char *c = malloc(len ? len : 1);
	if (!c)
		abort();
	memcpy(c, p, len);
	return c;
}

static void exchange(const char *first, size_t flen, const char *final, size_t finlen, bool honest,
		     bool mock)
{
	struct scram_server st;
	memset(&st, 0, sizeof(st));
	st.keys = keys;
	st.mock = mock;
	char out[512];
	char *m = exact(first, flen);
	bool ok = scram_server_first_nonce(&st, m, flen, "3rfcNHYJY1ZVvWVs7j", out, sizeof(out));
	free(m);
	if (!ok)
		return;
	if (strlen(out) >= sizeof(out))
		abort();
	char fin[1100];
	if (honest) {
		if (!scram_client_final(PASSWORD, st.client_first_bare, out, st.gs2_header, fin,
					sizeof(fin))) {
			fprintf(stderr, "fuzz_scram: no client-final for server-first \"%s\"\n", out);
			abort();
		}
		final = fin;
		finlen = strlen(fin);
	}
	char v[512];
	m = exact(final, finlen);
	ok = scram_server_final(&st, m, finlen, v, sizeof(v));
	free(m);
	if (honest && ok == mock) {
		fprintf(stderr, "fuzz_scram: a correct proof was %s (mock %d): bare \"%s\"\n",
			ok ? "accepted" : "refused", mock, st.client_first_bare);
		abort();
	}
	/* one attempt per exchange: the same message again must fail */
	char v2[512];
	if (scram_server_final(&st, final, finlen, v2, sizeof(v2)))
		abort();
}

static void secret_checks(const char *secret, const char *response)
{
	static const uint8_t salt[4] = {1, 2, 3, 4};
	struct scram_keys k;
	bool verifier = scram_parse_verifier(secret, &k);
	enum auth_secret_kind kind = auth_secret_kind(secret);
	if (verifier && kind != SECRET_SCRAM) {
		fprintf(stderr, "fuzz_scram: verifier parsed but not seen as SCRAM: %s\n", secret);
		abort();
	}
	(void)auth_md5_check(secret, "alice", salt, response);
	if (kind != SECRET_SCRAM || (verifier && k.iterations <= MAX_ITERATIONS))
		(void)auth_plain_check(secret, "alice", response);
	char md5[36];
	auth_md5_secret(response, "alice", md5);
	if (strlen(md5) != 35 || auth_secret_kind(md5) != SECRET_MD5)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	uint8_t flags = fz_u8(&in);
	size_t flen, finlen, slen;
	const char *first = part(&in, &flen);
	const char *final = part(&in, &finlen);
	const char *secret = part(&in, &slen);
	exchange(first, flen, final, finlen, flags & 1, flags & 2);
	char *s = strndup(secret, slen), *r = strndup(final, finlen);
	if (!s || !r)
		abort();
	secret_checks(s, r);
	free(s);
	free(r);
	return 0;
}

/* SCRAM-SHA-256 (RFC 5802 / RFC 7677): verifier parsing, key derivation, the salts pgcoro
 * makes (and the per-process secret behind them), the server side of one exchange and the
 * client side (srvlogin.c's, with a password or with keys; tests'). Pure code over bounded
 * strings, with OpenSSL.
 * Every message is parsed from (msg, len) against the sizes of struct scram_server; anything
 * that would not fit is rejected. The server side offers no SCRAM-SHA-256-PLUS, so channel
 * binding ("p=" in the gs2 header) is refused and "y" is accepted; the client side binds
 * to the data it is given (tls-server-end-point, srvlogin.c's) as libpq does. */
#include "scram.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"
#define SCRAM_MAX_FINAL 1024 /* longest client-final-message accepted */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

/* Test hook, deliberately not in scram.h: scram_server_first with a given server nonce part
 * (printable ASCII without ','), so tests can replay the RFC 7677 vector. */
bool scram_server_first_nonce(struct scram_server *st, const char *msg, size_t len,
                              const char *server_nonce, char *out, size_t outlen);

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of IN[0..LEN) into OUT, NUL-terminated. Returns false if OUTLEN is too small. */
static bool b64_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	if (B64_LEN(len) + 1 > outlen)
		return false;
	char *o = out;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			w |= in[i + 2];
		*o++ = b64_alphabet[(w >> 18) & 63];
		*o++ = b64_alphabet[(w >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(w >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64_alphabet[w & 63] : '=';
	}
	*o = '\0';
	return true;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict base64 (padded, canonical, no whitespace) of IN[0..LEN) into OUT. Returns the
 * number of bytes decoded, or -1 if malformed or longer than OUTMAX. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t outmax)
{
	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT_MAX)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t w = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = in[i + k];
			if (c == '=') {
				if (i + 4 != len || k < 2)
					return -1;
				pad++;
				w <<= 6;
				continue;
			}
			int v = b64_value(c);
			if (v < 0 || pad)
				return -1;
			w = (w << 6) | (uint32_t)v;
		}
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1; /* non-canonical trailing bits */
		size_t take = 3 - (size_t)pad;
		if (n + take > outmax)
			return -1;
		out[n++] = (uint8_t)(w >> 16);
		if (take > 1)
			out[n++] = (uint8_t)(w >> 8);
		if (take > 2)
			out[n++] = (uint8_t)w;
	}
	return (int)n;
}

/* Parses a positive decimal int from S[0..LEN) (no sign, no leading zero). */
static bool parse_iterations(const char *s, size_t len, int *out)
{
	if (len == 0 || s[0] < '1' || s[0] > '9')
		return false;
	long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > INT_MAX)
			return false;
	}
	*out = (int)v;
	return true;
}

static bool hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;
	return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) &&
	       outlen == SCRAM_KEY_LEN;
}

static bool sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;
	return EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) == 1 &&
	       outlen == SCRAM_KEY_LEN;
}

/* Derives the keys, and also ClientKey when CLIENT_KEY is not NULL. */
static bool derive(const char *password, const uint8_t *salt, int salt_len, int iterations,
                   struct scram_keys *out, uint8_t *client_key)
{
	if (salt_len < 1 || salt_len > SCRAM_MAX_SALT || iterations < 1 ||
	    strlen(password) > INT_MAX)
		return false;
	uint8_t salted[SCRAM_KEY_LEN], ck[SCRAM_KEY_LEN];
	struct scram_keys k = {.iterations = iterations, .salt_len = salt_len};
	memcpy(k.salt, salt, (size_t)salt_len);
	bool ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len, iterations,
	                            EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
	          hmac_sha256(salted, sizeof salted, "Client Key", 10, ck) &&
	          sha256(ck, sizeof ck, k.stored_key) &&
	          hmac_sha256(salted, sizeof salted, "Server Key", 10, k.server_key);
	if (ok) {
		*out = k;
		if (client_key)
			memcpy(client_key, ck, sizeof ck);
	}
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(ck, sizeof ck);
	OPENSSL_cleanse(&k, sizeof k);
	return ok;
}

bool scram_format_verifier(const struct scram_keys *k, char *out, size_t len)
{
	char salt[SCRAM_MAX_SALT * 2], stored[SCRAM_KEY_LEN * 2], server[SCRAM_KEY_LEN * 2];
	if (!b64_encode(k->salt, (size_t)k->salt_len, salt, sizeof(salt)) ||
	    !b64_encode(k->stored_key, SCRAM_KEY_LEN, stored, sizeof(stored)) ||
	    !b64_encode(k->server_key, SCRAM_KEY_LEN, server, sizeof(server)))
		return false;
	int n = snprintf(out, len, "SCRAM-SHA-256$%d:%s$%s:%s", k->iterations, salt, stored, server);
	return n > 0 && (size_t)n < len;
}

bool scram_parse_verifier(const char *verifier, struct scram_keys *out)
{
	size_t plen = strlen(SCRAM_PREFIX);
	if (strncmp(verifier, SCRAM_PREFIX, plen) != 0)
		return false;
	const char *p = verifier + plen;
	const char *colon = strchr(p, ':');
	const char *dollar = colon ? strchr(colon + 1, '$') : NULL;
	const char *colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
	if (!colon2)
		return false;
	struct scram_keys k = {0};
	bool ok = parse_iterations(p, (size_t)(colon - p), &k.iterations) &&
	          (k.salt_len = b64_decode(colon + 1, (size_t)(dollar - colon - 1), k.salt,
	                                   sizeof k.salt)) > 0 &&
	          b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), k.stored_key,
	                     SCRAM_KEY_LEN) == SCRAM_KEY_LEN &&
	          b64_decode(colon2 + 1, strlen(colon2 + 1), k.server_key, SCRAM_KEY_LEN) ==
	              SCRAM_KEY_LEN;
	if (ok)
		*out = k;
	OPENSSL_cleanse(&k, sizeof k);
	return ok;
}

bool scram_derive_keys(const char *password, const uint8_t *salt, int salt_len, int iterations,
                       struct scram_keys *out)
{
	return derive(password, salt, salt_len, iterations, out, NULL);
}

/* The secret behind the salts pgcoro makes (scram_user_salt), as PostgreSQL's
 * mock_auth_nonce is behind scram_mock_salt(). PostgreSQL keeps its nonce in pg_control, so
 * its salts survive restarts; ours is drawn once, at the first login that needs it, and
 * lives as long as the process. That is enough: what must hold is that within the process
 * the same name always gets the same salt (as a listed user's stays the same) and that
 * nobody outside can compute it. A restart changes the salts of unknown users and of
 * plain auth_file secrets together, and pgcoro has nowhere to keep a secret across one. */
static uint8_t salt_secret[32];
static bool salt_secret_ok;
static pthread_once_t salt_secret_once = PTHREAD_ONCE_INIT;

static void salt_secret_draw(void)
{
	salt_secret_ok = RAND_bytes(salt_secret, sizeof salt_secret) == 1;
}

bool scram_user_salt(const char *user, uint8_t salt[SCRAM_DEFAULT_SALT_LEN])
{
	uint8_t mac[SCRAM_KEY_LEN];
	_Static_assert(SCRAM_DEFAULT_SALT_LEN <= SCRAM_KEY_LEN, "the salt is cut from one MAC");
	pthread_once(&salt_secret_once, salt_secret_draw);
	if (!salt_secret_ok ||
	    !hmac_sha256(salt_secret, sizeof salt_secret, user, strlen(user), mac))
		return false;
	memcpy(salt, mac, SCRAM_DEFAULT_SALT_LEN);
	OPENSSL_cleanse(mac, sizeof mac);
	return true;
}

void scram_mock_keys(const char *user, int iterations, struct scram_keys *out)
{
	memset(out, 0, sizeof *out);
	out->iterations = iterations;
	out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	/* Without a secret the salt is random (and the server nonce will fail too). If RAND_bytes
	 * fails the keys stay zero: no ClientKey hashes to zero, so it still fails. */
	if (!scram_user_salt(user, out->salt))
		(void)RAND_bytes(out->salt, SCRAM_DEFAULT_SALT_LEN);
	if (RAND_bytes(out->stored_key, SCRAM_KEY_LEN) != 1 ||
	    RAND_bytes(out->server_key, SCRAM_KEY_LEN) != 1)
		memset(out->stored_key, 0, SCRAM_KEY_LEN);
}

/* A bounded cursor over one message. */
struct cursor {
	const char *p, *end;
};

/* Reads "X=" then the value up to ',' or the end; VAL/VLEN point into the message. */
static bool read_attr(struct cursor *c, char name, const char **val, size_t *vlen)
{
	if (c->end - c->p < 2 || c->p[0] != name || c->p[1] != '=')
		return false;
	c->p += 2;
	const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));
	const char *stop = comma ? comma : c->end;
	*val = c->p;
	*vlen = (size_t)(stop - c->p);
	c->p = stop;
	return true;
}

static bool read_comma(struct cursor *c)
{
	if (c->p == c->end || *c->p != ',')
		return false;
	c->p++;
	return true;
}

/* Skips ",attr=value" extensions up to the end (RFC 5802: ignored unless mandatory). */
static bool skip_extensions(struct cursor *c)
{
	while (c->p < c->end) {
		const char *v;
		size_t vlen;
		if (!read_comma(c) || c->p == c->end)
			return false;
		char name = *c->p;
		if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z')))
			return false;
		if (!read_attr(c, name, &v, &vlen))
			return false;
	}
	return true;
}

/* printable = %x21-2B / %x2D-7E (RFC 5802, the nonce alphabet). */
static bool is_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

bool scram_server_first(struct scram_server *st, const char *msg, size_t len, char *out,
                        size_t outlen)
{
	uint8_t raw[SCRAM_NONCE_LEN];
	char nonce[B64_LEN(SCRAM_NONCE_LEN) + 1];
	if (RAND_bytes(raw, sizeof raw) != 1 || !b64_encode(raw, sizeof raw, nonce, sizeof nonce))
		return false;
	return scram_server_first_nonce(st, msg, len, nonce, out, outlen);
}

bool scram_server_first_nonce(struct scram_server *st, const char *msg, size_t len,
                              const char *server_nonce, char *out, size_t outlen)
{
	if (st->server_first[0] || len == 0 || memchr(msg, '\0', len))
		return false;
	const struct scram_keys *k = &st->keys;
	if (k->iterations < 1 || k->salt_len < 1 || k->salt_len > SCRAM_MAX_SALT)
		return false;
	struct cursor c = {msg, msg + len};
	const char *v;
	size_t vlen;

	/* gs2-header = ("n" / "y" / "p=" cb-name) "," [ "a=" saslname ] "," */
	if (*c.p != 'n' && *c.p != 'y')
		return false; /* "p=": channel binding, which we do not offer */
	c.p++;
	if (!read_comma(&c))
		return false;
	if (c.p < c.end && *c.p == 'a' && !read_attr(&c, 'a', &v, &vlen))
		return false; /* the authzid is ignored */
	if (!read_comma(&c))
		return false;
	size_t gs2_len = (size_t)(c.p - msg);
	const char *bare = c.p;
	size_t bare_len = (size_t)(c.end - c.p);
	if (gs2_len >= sizeof st->gs2_header || bare_len >= sizeof st->client_first_bare)
		return false;

	/* client-first-message-bare = [ "m=" ... "," ] "n=" user "," "r=" nonce [ "," ext ] */
	const char *cnonce;
	size_t cnonce_len;
	if (!read_attr(&c, 'n', &v, &vlen) || !read_comma(&c) ||
	    !read_attr(&c, 'r', &cnonce, &cnonce_len) || !skip_extensions(&c))
		return false; /* also refuses "m=", the reserved mandatory extension */
	size_t snonce_len = strlen(server_nonce);
	if (cnonce_len == 0 || !is_printable(cnonce, cnonce_len) || snonce_len == 0 ||
	    !is_printable(server_nonce, snonce_len) || cnonce_len + snonce_len >= sizeof st->nonce)
		return false;

	char salt[B64_LEN(SCRAM_MAX_SALT) + 1];
	char first[sizeof st->server_first];
	if (!b64_encode(k->salt, (size_t)k->salt_len, salt, sizeof salt))
		return false;
	int n = snprintf(first, sizeof first, "r=%.*s%s,s=%s,i=%d", (int)cnonce_len, cnonce,
	                 server_nonce, salt, k->iterations);
	if (n < 0 || (size_t)n >= sizeof first || (size_t)n >= outlen)
		return false;

	memcpy(st->gs2_header, msg, gs2_len);
	st->gs2_header[gs2_len] = '\0';
	memcpy(st->client_first_bare, bare, bare_len);
	st->client_first_bare[bare_len] = '\0';
	memcpy(st->nonce, cnonce, cnonce_len);
	memcpy(st->nonce + cnonce_len, server_nonce, snonce_len + 1);
	memcpy(st->server_first, first, (size_t)n + 1);
	memcpy(out, first, (size_t)n + 1);
	return true;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof, into BUF. */
static bool auth_message(const char *bare, const char *first, const char *final, size_t flen,
                         char *buf, size_t buflen, size_t *outlen)
{
	int n = snprintf(buf, buflen, "%s,%s,%.*s", bare, first, (int)flen, final);
	if (n < 0 || (size_t)n >= buflen)
		return false;
	*outlen = (size_t)n;
	return true;
}

bool scram_server_final(struct scram_server *st, const char *msg, size_t len, char *out,
                        size_t outlen)
{
	if (!st->server_first[0] || !st->nonce[0] || len == 0 || len > SCRAM_MAX_FINAL ||
	    memchr(msg, '\0', len))
		return false;
	size_t nonce_len = strlen(st->nonce);
	/* One attempt per exchange: whatever happens below, the nonce is spent. */
	char nonce[sizeof st->nonce];
	memcpy(nonce, st->nonce, nonce_len + 1);
	st->nonce[0] = '\0';

	/* The proof is the last attribute; base64 has no ',' so the last ',' starts it. */
	const char *last = memrchr(msg, ',', len);
	if (!last)
		return false;
	struct cursor pc = {last + 1, msg + len};
	const char *v;
	size_t vlen;
	uint8_t proof[SCRAM_KEY_LEN];
	if (!read_attr(&pc, 'p', &v, &vlen) ||
	    b64_decode(v, vlen, proof, sizeof proof) != SCRAM_KEY_LEN)
		return false;
	size_t wlen = (size_t)(last - msg); /* client-final-message-without-proof */

	/* c= must be base64 of the gs2 header exactly as the client sent it, r= the full nonce. */
	char cbind[B64_LEN(sizeof st->gs2_header) + 1];
	struct cursor c = {msg, last};
	if (!b64_encode((const uint8_t *)st->gs2_header, strlen(st->gs2_header), cbind,
	                sizeof cbind) ||
	    !read_attr(&c, 'c', &v, &vlen) || vlen != strlen(cbind) || memcmp(v, cbind, vlen) ||
	    !read_comma(&c) || !read_attr(&c, 'r', &v, &vlen) || vlen != nonce_len ||
	    memcmp(v, nonce, vlen) || !skip_extensions(&c))
		return false;

	char am[sizeof st->client_first_bare + sizeof st->server_first + SCRAM_MAX_FINAL + 2];
	size_t am_len;
	uint8_t sig[SCRAM_KEY_LEN], ck[SCRAM_KEY_LEN], h[SCRAM_KEY_LEN];
	const struct scram_keys *k = &st->keys;
	if (!auth_message(st->client_first_bare, st->server_first, msg, wlen, am, sizeof am,
	                  &am_len) ||
	    !hmac_sha256(k->stored_key, SCRAM_KEY_LEN, am, am_len, sig))
		return false;
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		ck[i] = proof[i] ^ sig[i];
	bool ok = sha256(ck, sizeof ck, h) && CRYPTO_memcmp(h, k->stored_key, SCRAM_KEY_LEN) == 0;
	if (ok && !st->mock && st->keep_client_key) {
		memcpy(st->client_key, ck, sizeof ck);
		st->have_client_key = true;
	}
	OPENSSL_cleanse(ck, sizeof ck);
	if (!ok || st->mock)
		return false;

	char sig64[B64_LEN(SCRAM_KEY_LEN) + 1];
	if (!hmac_sha256(k->server_key, SCRAM_KEY_LEN, am, am_len, sig) ||
	    !b64_encode(sig, sizeof sig, sig64, sizeof sig64))
		return false;
	int n = snprintf(out, outlen, "v=%s", sig64);
	return n > 0 && (size_t)n < outlen;
}

/* ---- the client side ------------------------------------------------------------------- */

bool scram_derive_client_key(const char *password, const uint8_t *salt, int salt_len,
                             int iterations, struct scram_keys *out,
                             uint8_t client_key[SCRAM_KEY_LEN])
{
	return derive(password, salt, salt_len, iterations, out, client_key);
}

/* Parses server-first-message MSG (LEN bytes) = "r=" nonce "," "s=" salt "," "i=" count
 * [ "," ext ]: the nonce must extend CNONCE (CNONCE_LEN bytes) and be printable; the
 * nonce is pointed to (into MSG), salt and iterations decoded. */
static bool parse_server_first(const char *msg, size_t len, const char *cnonce,
                               size_t cnonce_len, const char **nonce, size_t *nonce_len,
                               uint8_t salt[SCRAM_MAX_SALT], int *salt_len, int *iterations)
{
	struct cursor c = {msg, msg + len};
	const char *salt64, *iter;
	size_t salt64_len, iter_len;
	if (len == 0 || memchr(msg, '\0', len) || !read_attr(&c, 'r', nonce, nonce_len) ||
	    !read_comma(&c) || !read_attr(&c, 's', &salt64, &salt64_len) || !read_comma(&c) ||
	    !read_attr(&c, 'i', &iter, &iter_len) || !skip_extensions(&c))
		return false; /* also refuses "m=", the reserved mandatory extension */
	if (cnonce_len == 0 || *nonce_len <= cnonce_len || !is_printable(*nonce, *nonce_len) ||
	    memcmp(*nonce, cnonce, cnonce_len) != 0)
		return false; /* the server's nonce must extend ours */
	*salt_len = b64_decode(salt64, salt64_len, salt, SCRAM_MAX_SALT);
	return *salt_len >= 1 && parse_iterations(iter, iter_len, iterations);
}

/* Builds client-final-message "c=<b64 GS2 || CB_DATA>,r=<NONCE>,p=<proof>" into OUT from
 * CK (the ClientKey); with SERVER_KEY, also the server signature to expect into SIG. */
static bool build_final(const char *gs2, const uint8_t *cb_data, size_t cb_len,
                        const char *bare, const char *server_first, const char *nonce,
                        size_t nonce_len, const uint8_t ck[SCRAM_KEY_LEN],
                        const uint8_t *server_key, char *out, size_t outlen, uint8_t *sig)
{
	uint8_t input[256 + SCRAM_MAX_CBIND_DATA];
	char cbind[B64_LEN(sizeof input) + 1], without[1024], am[2048];
	char proof64[B64_LEN(SCRAM_KEY_LEN) + 1];
	uint8_t stored[SCRAM_KEY_LEN], csig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	size_t am_len, gs2_len = strlen(gs2);
	bool ok = false;
	if (gs2_len > 256 || cb_len > SCRAM_MAX_CBIND_DATA)
		return false;
	memcpy(input, gs2, gs2_len);
	if (cb_len)
		memcpy(input + gs2_len, cb_data, cb_len);
	if (!b64_encode(input, gs2_len + cb_len, cbind, sizeof cbind))
		return false;
	int n = snprintf(without, sizeof without, "c=%s,r=%.*s", cbind, (int)nonce_len, nonce);
	if (n < 0 || (size_t)n >= sizeof without ||
	    !auth_message(bare, server_first, without, (size_t)n, am, sizeof am, &am_len) ||
	    !sha256(ck, SCRAM_KEY_LEN, stored) ||
	    !hmac_sha256(stored, SCRAM_KEY_LEN, am, am_len, csig))
		goto done;
	for (int i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = ck[i] ^ csig[i];
	if (!b64_encode(proof, sizeof proof, proof64, sizeof proof64) ||
	    (server_key && !hmac_sha256(server_key, SCRAM_KEY_LEN, am, am_len, sig)))
		goto done;
	n = snprintf(out, outlen, "%s,p=%s", without, proof64);
	ok = n > 0 && (size_t)n < outlen;
done:
	OPENSSL_cleanse(proof, sizeof proof);
	OPENSSL_cleanse(csig, sizeof csig);
	OPENSSL_cleanse(stored, sizeof stored);
	return ok;
}

bool scram_client_channel_binding(struct scram_client *cl, enum scram_cbind kind,
                                  const uint8_t *data, size_t len)
{
	if (kind == SCRAM_CB_SERVER_END_POINT) {
		if (!data || len < 1 || len > SCRAM_MAX_CBIND_DATA)
			return false;
		memcpy(cl->cbind_data, data, len);
		cl->cbind_len = len;
	} else {
		cl->cbind_len = 0;
	}
	cl->cbind = kind;
	return true;
}

const char *scram_client_mechanism(const struct scram_client *cl)
{
	return cl->cbind == SCRAM_CB_SERVER_END_POINT ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
}

/* The gs2 header of CL's channel binding (libpq's: no authzid). */
static const char *client_gs2(const struct scram_client *cl)
{
	switch (cl->cbind) {
	case SCRAM_CB_NOT_OFFERED: return "y,,";
	case SCRAM_CB_SERVER_END_POINT: return "p=tls-server-end-point,,";
	case SCRAM_CB_NONE: break;
	}
	return "n,,";
}

bool scram_client_first(struct scram_client *cl, char *out, size_t outlen)
{
	uint8_t raw[SCRAM_NONCE_LEN];
	char nonce[B64_LEN(SCRAM_NONCE_LEN) + 1];
	if (RAND_bytes(raw, sizeof raw) != 1 || !b64_encode(raw, sizeof raw, nonce, sizeof nonce))
		return false;
	int n = snprintf(cl->client_first_bare, sizeof cl->client_first_bare, "n=,r=%s", nonce);
	int m = snprintf(out, outlen, "%s%s", client_gs2(cl), cl->client_first_bare);
	return n > 0 && (size_t)n < sizeof cl->client_first_bare && m > 0 && (size_t)m < outlen;
}

bool scram_client_server_first(struct scram_client *cl, const char *msg, size_t len)
{
	const char *bare_nonce = cl->client_first_bare + 5; /* after "n=,r=" */
	const char *nonce;
	size_t nonce_len;
	if (strncmp(cl->client_first_bare, "n=,r=", 5) != 0 || cl->server_first[0] ||
	    len >= sizeof cl->server_first ||
	    !parse_server_first(msg, len, bare_nonce, strlen(bare_nonce), &nonce, &nonce_len,
	                        cl->salt, &cl->salt_len, &cl->iterations) ||
	    nonce_len >= sizeof cl->nonce)
		return false;
	memcpy(cl->server_first, msg, len);
	cl->server_first[len] = '\0';
	memcpy(cl->nonce, nonce, nonce_len);
	cl->nonce[nonce_len] = '\0';
	return true;
}

bool scram_client_final_keys(struct scram_client *cl, const uint8_t client_key[SCRAM_KEY_LEN],
                             const uint8_t server_key[SCRAM_KEY_LEN], char *out, size_t outlen)
{
	if (!cl->server_first[0] || cl->final_built)
		return false;
	cl->final_built = build_final(client_gs2(cl), cl->cbind_data, cl->cbind_len,
	                              cl->client_first_bare, cl->server_first, cl->nonce,
	                              strlen(cl->nonce), client_key, server_key, out, outlen,
	                              cl->server_signature);
	return cl->final_built;
}

bool scram_client_verify(struct scram_client *cl, const char *msg, size_t len)
{
	struct cursor c = {msg, msg + len};
	const char *v;
	size_t vlen;
	uint8_t sig[SCRAM_KEY_LEN];
	bool ok = cl->final_built && !memchr(msg, '\0', len) && read_attr(&c, 'v', &v, &vlen) &&
	          skip_extensions(&c) && b64_decode(v, vlen, sig, sizeof sig) == SCRAM_KEY_LEN &&
	          CRYPTO_memcmp(sig, cl->server_signature, SCRAM_KEY_LEN) == 0;
	cl->final_built = false; /* one answer per exchange */
	return ok;
}

bool scram_client_final(const char *password, const char *client_first_bare,
                        const char *server_first, const char *gs2_header, char *out, size_t outlen)
{
	const char *r = strstr(client_first_bare, ",r=");
	if (!r)
		return false;
	r += 3;
	const char *nonce;
	size_t nonce_len;
	uint8_t salt[SCRAM_MAX_SALT], ck[SCRAM_KEY_LEN];
	int salt_len, iterations;
	struct scram_keys k;
	if (!parse_server_first(server_first, strlen(server_first), r, strcspn(r, ","), &nonce,
	                        &nonce_len, salt, &salt_len, &iterations) ||
	    !derive(password, salt, salt_len, iterations, &k, ck))
		return false;
	bool ok = build_final(gs2_header, NULL, 0, client_first_bare, server_first, nonce,
	                      nonce_len, ck, NULL, out, outlen, NULL);
	OPENSSL_cleanse(ck, sizeof ck);
	OPENSSL_cleanse(&k, sizeof k);
	return ok;
}

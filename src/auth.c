/* The auth_file: PgBouncer userlist.txt parsed into an open-addressing hash table of
 * (user, secret, SCRAM keys), and the plain / md5 / SCRAM password checks.
 * A user listed twice takes the secret of the later line. An empty secret never
 * authenticates (no check passes and auth_scram_keys returns NULL). A cleartext check
 * costs one PBKDF2 whoever the user is (auth_plain_prepare / auth_plain_verify); the SCRAM
 * keys are made with the file (auth_make_scram_keys, off the loop), so no login derives
 * any. Secrets and what is derived from them are cleansed before their memory goes. */
#include "auth.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "scram.h"

#define MD5_PREFIX "md5"
#define MD5_SECRET_LEN 35 /* "md5" + 32 hex */

struct auth_entry {
	char *user;
	char *secret;
	bool keys_ready; /* keys holds this secret's SCRAM keys (auth_make_scram_keys) */
	struct scram_keys keys;
	bool md5_ready;  /* md5 holds "md5" + hex(md5(password || user)) (or is "" for a
	                  * SCRAM secret or an empty password: no md5 login) */
	char md5[36];
};

struct auth_file {
	struct auth_entry *entries;
	int count, cap;
	int nscram;           /* entries whose secret is a SCRAM verifier */
	uint32_t *slots; /* index + 1 into entries, 0 = empty; nslots is a power of two */
	uint32_t nslots;
};

static uint32_t hash_user(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* The slot holding USER, or the empty slot where it would go. */
static uint32_t find_slot(const struct auth_file *af, const char *user)
{
	uint32_t mask = af->nslots - 1;
	uint32_t i = hash_user(user) & mask;
	while (af->slots[i] && strcmp(af->entries[af->slots[i] - 1].user, user) != 0)
		i = (i + 1) & mask;
	return i;
}

static struct auth_entry *find_entry(const struct auth_file *af, const char *user)
{
	if (!af || af->nslots == 0)
		return NULL;
	uint32_t slot = af->slots[find_slot(af, user)];
	return slot ? &af->entries[slot - 1] : NULL;
}

static bool grow_slots(struct auth_file *af)
{
	uint32_t n = af->nslots ? af->nslots * 2 : 16;
	uint32_t *slots = calloc(n, sizeof *slots);
	if (!slots)
		return false;
	free(af->slots);
	af->slots = slots;
	af->nslots = n;
	for (int i = 0; i < af->count; i++)
		af->slots[find_slot(af, af->entries[i].user)] = (uint32_t)i + 1;
	return true;
}

static void free_secret(char *secret)
{
	if (secret) {
		OPENSSL_cleanse(secret, strlen(secret));
		free(secret);
	}
}

/* Adds USER -> SECRET, taking ownership of both (freed on failure too). A user already
 * present gets the new secret. */
static bool add_entry(struct auth_file *af, char *user, char *secret)
{
	struct auth_entry *e = find_entry(af, user);
	if (e) {
		free(user);
		free_secret(e->secret);
		e->secret = secret;
		e->keys_ready = false;
		OPENSSL_cleanse(&e->keys, sizeof e->keys);
		e->md5_ready = false;
		OPENSSL_cleanse(e->md5, sizeof e->md5);
		return true;
	}
	if ((uint64_t)(af->count + 1) * 2 > af->nslots && !grow_slots(af))
		goto fail;
	if (af->count == af->cap) {
		int cap = af->cap ? af->cap * 2 : 16;
		struct auth_entry *entries = realloc(af->entries, (size_t)cap * sizeof *entries);
		if (!entries)
			goto fail;
		af->entries = entries;
		af->cap = cap;
	}
	af->entries[af->count] = (struct auth_entry){.user = user, .secret = secret};
	af->slots[find_slot(af, user)] = (uint32_t)af->count + 1;
	af->count++;
	return true;
fail:
	free(user);
	free_secret(secret);
	return false;
}

/* Parses the quoted string starting at *PP (on its opening quote); "" stands for one quote.
 * Returns a malloc'd copy and moves *PP past the closing quote, or NULL with *WHY. */
static char *parse_quoted(const char **pp, const char **why)
{
	const char *start = *pp + 1, *p = start;
	size_t n = 0;
	for (;; p++, n++) {
		if (*p == '\0') {
			*why = "unterminated quoted string";
			return NULL;
		}
		if (*p == '"') {
			if (p[1] != '"')
				break;
			p++;
		}
	}
	char *s = malloc(n + 1);
	if (!s) {
		*why = "out of memory";
		return NULL;
	}
	char *o = s;
	for (const char *q = start; q < p; q++) {
		*o++ = *q;
		if (*q == '"')
			q++;
	}
	*o = '\0';
	*pp = p + 1;
	return s;
}

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == '\f' || *p == '\v')
		p++;
	return p;
}

/* Parses one line into AF. Returns NULL, or the reason the line is refused. */
static const char *parse_line(struct auth_file *af, const char *line)
{
	const char *p = skip_space(line), *why = NULL;
	if (*p == '\0' || *p == ';' || *p == '#')
		return NULL;
	if (*p != '"')
		return "expected a quoted user name";
	char *user = parse_quoted(&p, &why);
	if (!user)
		return why;
	if (*user == '\0') {
		free(user);
		return "empty user name";
	}
	p = skip_space(p);
	if (*p != '"') {
		free(user);
		return *p ? "expected a quoted secret" : "missing secret";
	}
	char *secret = parse_quoted(&p, &why);
	if (!secret) {
		free(user);
		return why;
	}
	return add_entry(af, user, secret) ? NULL : "out of memory";
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The longest auth_file line: a user and a secret, each up to PgBouncer's 64 KiB password
 * limit with every character a doubled quote. */
#define AUTH_MAX_LINE (4 * 65536 + 16)

/* Reads one line of F ('\n' included) into LINE (AUTH_MAX_LINE + 1 bytes): its length, 0 at
 * the end of F, -1 on a read error (errno set), -2 when it is longer (the rest is not
 * read: a file without newlines cannot make the load grow without bound). */
static ssize_t auth_getline(char *line, FILE *f)
{
	size_t n = 0;
	int ch;
	errno = 0;
	while ((ch = getc_unlocked(f)) != EOF) {
		if (n == AUTH_MAX_LINE)
			return -2;
		line[n++] = (char)ch;
		if (ch == '\n')
			break;
	}
	if (ch == EOF && ferror(f))
		return -1;
	line[n] = '\0';
	return (ssize_t)n;
}

struct auth_file *auth_load(const char *path, char *err, size_t errlen)
{
	/* a device (SET auth_file = '/dev/zero') has no end; a file or a FIFO (which a
	 * process fills, then closes) is read, each line bounded */
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		return NULL;
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	struct auth_file *af = calloc(1, sizeof *af);
	char *line = malloc(AUTH_MAX_LINE + 1);
	ssize_t len;
	int lineno = 0;
	if (!af || !line) {
		set_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while ((len = auth_getline(line, f)) > 0) {
		lineno++;
		const char *why =
		    memchr(line, '\0', (size_t)len) ? "NUL byte in line" : parse_line(af, line);
		if (why) {
			set_err(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	if (len == -2) {
		set_err(err, errlen, "%s:%d: line longer than %d bytes", path, lineno + 1,
			AUTH_MAX_LINE);
		goto fail;
	}
	if (len < 0) {
		set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	for (int i = 0; i < af->count; i++)
		af->nscram += auth_secret_kind(af->entries[i].secret) == SECRET_SCRAM;
	if (line)
		OPENSSL_cleanse(line, AUTH_MAX_LINE + 1);
	free(line);
	fclose(f);
	return af;
fail:
	if (line)
		OPENSSL_cleanse(line, AUTH_MAX_LINE + 1);
	free(line);
	fclose(f);
	auth_free(af);
	return NULL;
}

void auth_free(struct auth_file *af)
{
	if (!af)
		return;
	for (int i = 0; i < af->count; i++) {
		free(af->entries[i].user);
		free_secret(af->entries[i].secret);
	}
	if (af->entries)
		OPENSSL_cleanse(af->entries, (size_t)af->cap * sizeof *af->entries);
	free(af->entries);
	free(af->slots);
	free(af);
}

struct auth_file *auth_of_one(const char *user, const char *secret)
{
	struct auth_file *af = calloc(1, sizeof *af);
	char *u = strdup(user), *s = strdup(secret);
	if (!af || !u || !s) {
		free(af);
		free(u);
		free_secret(s);
		return NULL;
	}
	if (!add_entry(af, u, s)) { /* it freed U and S */
		auth_free(af);
		return NULL;
	}
	af->nscram = auth_secret_kind(secret) == SECRET_SCRAM;
	/* a verifier is parsed, no key derived: cheap, on the loop (a malformed verifier
	 * leaves that user without keys, as in a loaded file) */
	bool parsed = auth_make_scram_keys(af, SCRAM_DEFAULT_ITERATIONS, false, false);
	(void)parsed;
	return af;
}

int auth_count(const struct auth_file *af)
{
	return af ? af->count : 0;
}

const char *auth_user_at(const struct auth_file *af, int i) { return af->entries[i].user; }

const char *auth_lookup(const struct auth_file *af, const char *user)
{
	const struct auth_entry *e = find_entry(af, user);
	return e ? e->secret : NULL;
}

static bool is_md5_secret(const char *s)
{
	if (strlen(s) != MD5_SECRET_LEN || strncmp(s, MD5_PREFIX, 3) != 0)
		return false;
	for (const char *p = s + 3; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

enum auth_secret_kind auth_secret_kind(const char *secret)
{
	struct scram_keys k;
	if (is_md5_secret(secret))
		return SECRET_MD5;
	bool scram = strncmp(secret, "SCRAM-SHA-256$", 14) == 0 && scram_parse_verifier(secret, &k);
	OPENSSL_cleanse(&k, sizeof k);
	return scram ? SECRET_SCRAM : SECRET_PLAIN;
}

static EVP_MD *md5_impl;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

/* One digest context per thread, made once and reset by each EVP_DigestInit_ex. */
static pthread_key_t md5_ctx_key;

static void md5_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }

static void md5_fetch(void)
{
	md5_impl = EVP_MD_fetch(NULL, "MD5", NULL);
	if (pthread_key_create(&md5_ctx_key, md5_ctx_free) != 0) {
		EVP_MD_free(md5_impl);
		md5_impl = NULL;
	}
}

static EVP_MD_CTX *md5_ctx(void)
{
	EVP_MD_CTX *ctx = pthread_getspecific(md5_ctx_key);
	if (!ctx) {
		ctx = EVP_MD_CTX_new();
		if (ctx && pthread_setspecific(md5_ctx_key, ctx) != 0) {
			EVP_MD_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

/* OUT = hex(md5(A || B)), NUL-terminated; false if the digest is unavailable (FIPS).
 * MD5 is fetched once, and each thread reuses one context: OpenSSL 3 would otherwise
 * look the digest up, and allocate and free a context, on every call — most of the cost
 * of an md5 login. */
static bool md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	pthread_once(&md5_once, md5_fetch);
	EVP_MD_CTX *ctx = md5_impl ? md5_ctx() : NULL;
	bool ok = ctx && EVP_DigestInit_ex(ctx, md5_impl, NULL) == 1 &&
	          EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
	          EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	if (!ok) {
		out[0] = '\0';
		return false;
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
	return true;
}

void auth_md5_secret(const char *password, const char *user, char out[36])
{
	memcpy(out, MD5_PREFIX, 3);
	if (!md5_hex(password, strlen(password), user, strlen(user), out + 3))
		out[0] = '\0'; /* matches no 35-character response or secret */
}

bool auth_md5_response(const char *secret, const uint8_t salt[4], char out[36])
{
	memcpy(out, MD5_PREFIX, 3);
	if (is_md5_secret(secret) && md5_hex(secret + 3, 32, salt, 4, out + 3))
		return true;
	out[0] = '\0';
	return false;
}

/* Equal strings, in time independent of their contents (both are hashed first). */
static bool secret_equal(const char *a, const char *b)
{
	uint8_t ha[SHA256_DIGEST_LENGTH], hb[SHA256_DIGEST_LENGTH];
	bool same = EVP_Digest(a, strlen(a), ha, NULL, EVP_sha256(), NULL) == 1 &&
	            EVP_Digest(b, strlen(b), hb, NULL, EVP_sha256(), NULL) == 1 &&
	            CRYPTO_memcmp(ha, hb, sizeof ha) == 0;
	OPENSSL_cleanse(ha, sizeof ha);
	OPENSSL_cleanse(hb, sizeof hb);
	return same;
}

/* STORED = "md5" + hex(md5(password || user)) for SECRET, or "" when no md5 login can
 * pass (a SCRAM verifier, an empty password). */
static void md5_stored(const char *secret, const char *user, char stored[36])
{
	stored[0] = '\0';
	switch (auth_secret_kind(secret)) {
	case SECRET_PLAIN:
		if (*secret)
			auth_md5_secret(secret, user, stored);
		break;
	case SECRET_MD5:
		memcpy(stored, secret, 36);
		break;
	case SECRET_SCRAM:
		break;
	}
}

/* The md5 RESPONSE to SALT matches STORED (constant-time compare). A STORED that no login
 * passes ("": an unknown user, a SCRAM secret, an empty password) is refused after the
 * digest of a dummy, so that every failure costs the same digest and compare. */
static bool md5_response_ok(const char *stored, const uint8_t salt[4], const char *response)
{
	static const char dummy[] = MD5_PREFIX "00000000000000000000000000000000";
	bool usable = strlen(stored) == MD5_SECRET_LEN;
	char expected[36];
	bool ok = auth_md5_response(usable ? stored : dummy, salt, expected) &&
	          strlen(response) == MD5_SECRET_LEN &&
	          CRYPTO_memcmp(expected, response, MD5_SECRET_LEN) == 0 && usable;
	OPENSSL_cleanse(expected, sizeof expected);
	return ok;
}

bool auth_md5_check(const char *secret, const char *user, const uint8_t salt[4],
                    const char *response)
{
	char stored[36];
	md5_stored(secret, user, stored);
	bool ok = md5_response_ok(stored, salt, response);
	OPENSSL_cleanse(stored, sizeof stored);
	return ok;
}

bool auth_md5_check_user(struct auth_file *af, const char *user, const uint8_t salt[4],
			 const char *response)
{
	struct auth_entry *e = find_entry(af, user);
	if (!e)
		return md5_response_ok("", salt, response);
	if (!e->md5_ready) {
		md5_stored(e->secret, e->user, e->md5);
		e->md5_ready = true;
	}
	return md5_response_ok(e->md5, salt, response);
}

/* Fills CHK for PASSWORD against SECRET (NULL: an unknown user): see auth_plain_prepare. */
static void plain_prepare(const char *secret, const char *user, const char *password,
                          int mock_iterations, struct auth_plain *chk)
{
	char md5[36];
	memset(chk, 0, sizeof *chk);
	enum auth_secret_kind kind = secret && *secret ? auth_secret_kind(secret) : SECRET_PLAIN;
	if (kind == SECRET_SCRAM && scram_parse_verifier(secret, &chk->keys)) {
		chk->by_keys = true;
		return;
	}
	scram_mock_keys(user, mock_iterations, &chk->keys);
	if (!secret || !*secret)
		return;
	if (kind == SECRET_PLAIN) {
		chk->matched = secret_equal(secret, password);
	} else {
		auth_md5_secret(password, user, md5);
		chk->matched = strlen(md5) == MD5_SECRET_LEN &&
		               CRYPTO_memcmp(md5, secret, MD5_SECRET_LEN) == 0;
		OPENSSL_cleanse(md5, sizeof md5);
	}
}

void auth_plain_prepare(const struct auth_file *af, const char *user, const char *password,
                        int mock_iterations, struct auth_plain *chk)
{
	const struct auth_entry *e = find_entry(af, user);
	plain_prepare(e ? e->secret : NULL, user, password, mock_iterations, chk);
}

bool auth_plain_verify(const struct auth_plain *chk, const char *password)
{
	struct scram_keys got;
	const struct scram_keys *want = &chk->keys;
	bool same =
	    scram_derive_keys(password, want->salt, want->salt_len, want->iterations, &got) &&
	    CRYPTO_memcmp(want->stored_key, got.stored_key, SCRAM_KEY_LEN) == 0 &&
	    CRYPTO_memcmp(want->server_key, got.server_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(&got, sizeof got);
	return chk->by_keys ? same : chk->matched;
}

bool auth_plain_check(const char *secret, const char *user, const char *password)
{
	struct auth_plain chk;
	plain_prepare(secret, user, password, SCRAM_DEFAULT_ITERATIONS, &chk);
	bool ok = auth_plain_verify(&chk, password);
	OPENSSL_cleanse(&chk, sizeof chk);
	return ok;
}

bool auth_md5_offers_scram(const struct auth_file *af, const char *user)
{
	if (!af || af->nscram == 0)
		return false;
	const struct auth_entry *e = find_entry(af, user);
	return !e || auth_secret_kind(e->secret) != SECRET_MD5;
}

/* E's SCRAM keys into e->keys: parsed from a verifier, or derived from a plain secret
 * when PLAIN (with the salt an unknown user of that name would get: a reload, or the
 * user's removal, changes nothing a client can see). False if a derivation failed. */
static bool make_keys(struct auth_entry *e, int iterations, bool plain)
{
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];
	if (!*e->secret)
		return true;
	switch (auth_secret_kind(e->secret)) {
	case SECRET_PLAIN:
		if (!plain)
			return true;
		if (!scram_user_salt(e->user, salt) ||
		    !scram_derive_keys(e->secret, salt, sizeof salt, iterations, &e->keys)) {
			OPENSSL_cleanse(&e->keys, sizeof e->keys);
			return false;
		}
		break;
	case SECRET_SCRAM:
		if (!scram_parse_verifier(e->secret, &e->keys))
			return true; /* cannot happen: its kind says it parses */
		break;
	case SECRET_MD5:
		return true;
	}
	e->keys_ready = true;
	return true;
}

bool auth_make_scram_keys(struct auth_file *af, int iterations, bool scram, bool md5)
{
	bool plain = scram || (md5 && af->nscram > 0); /* auth_md5_offers_scram */
	bool ok = true;
	for (int i = 0; i < af->count; i++)
		ok = make_keys(&af->entries[i], iterations, plain) && ok;
	return ok;
}

const struct scram_keys *auth_scram_keys(const struct auth_file *af, const char *user)
{
	const struct auth_entry *e = find_entry(af, user);
	return e && e->keys_ready ? &e->keys : NULL;
}

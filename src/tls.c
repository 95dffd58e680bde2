/* Owns the client-side TLS context (see tls.h): building an SSL_CTX from client_tls_*
 * (key, certificate, CA, protocol range, ciphers, key exchange, client-certificate
 * policy, ALPN), PgBouncer's protocol and cipher lists (for servers too), the digest of
 * the server_tls_* files a reload compares, and the questions a session asks of an
 * established TLS connection. The handshake and the record I/O live in stream.c. */
#include "tls.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "config.h"

static const unsigned char alpn_pg[] = "postgresql";

/* ALPN: "postgresql" is chosen when offered; a client offering only other protocols is
 * refused with an alert (as PostgreSQL 17 does); one offering none goes on (the
 * SSLRequest path does not need ALPN; direct TLS checks tls_alpn_ok after). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	for (unsigned i = 0; i < inlen;) {
		unsigned n = in[i];
		if (i + 1 + n > inlen)
			break;
		if (n == sizeof(alpn_pg) - 1 && memcmp(in + i + 1, alpn_pg, n) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool tls_protocols_parse(const char *key, const char *spec, int *min, int *max, char *err,
			 size_t errlen)
{
	static const struct {
		const char *name;
		int lo, hi;
	} names[] = {
	    {"tlsv1.0", TLS1_VERSION, TLS1_VERSION},     {"tlsv1.1", TLS1_1_VERSION, TLS1_1_VERSION},
	    {"tlsv1.2", TLS1_2_VERSION, TLS1_2_VERSION}, {"tlsv1.3", TLS1_3_VERSION, TLS1_3_VERSION},
	    {"all", TLS1_VERSION, TLS1_3_VERSION},       {"legacy", TLS1_VERSION, TLS1_3_VERSION},
	    {"secure", TLS1_2_VERSION, TLS1_3_VERSION},
	};
	int lo = 0, hi = 0;
	const char *p = spec;
	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n > 0) {
			size_t i;
			for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				if (strlen(names[i].name) == n && strncasecmp(p, names[i].name, n) == 0)
					break;
			if (i == sizeof(names) / sizeof(names[0])) {
				snprintf(err, errlen,
					 "%s: unknown protocol \"%.*s\" (tlsv1.0, tlsv1.1, tlsv1.2, "
					 "tlsv1.3, all, secure, legacy)",
					 key, (int)n, p);
				return false;
			}
			if (!lo || names[i].lo < lo)
				lo = names[i].lo;
			if (names[i].hi > hi)
				hi = names[i].hi;
		}
		p += n;
		if (*p)
			p++;
	}
	if (!lo) {
		snprintf(err, errlen, "%s: no protocol named", key);
		return false;
	}
	if (min)
		*min = lo;
	if (max)
		*max = hi;
	return true;
}

/* NAME and the contents of the file it names (or that it could not be read) into MD. */
static bool digest_file(EVP_MD_CTX *md, const char *name)
{
	if (!EVP_DigestUpdate(md, name, strlen(name) + 1))
		return false;
	FILE *f = name[0] ? fopen(name, "rb") : NULL;
	if (!f)
		return EVP_DigestUpdate(md, "\1", 1);
	char buf[16384];
	size_t n;
	bool ok = EVP_DigestUpdate(md, "\2", 1);
	while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = EVP_DigestUpdate(md, buf, n);
	if (ferror(f))
		ok = ok && EVP_DigestUpdate(md, "\1", 1);
	fclose(f);
	return ok;
}

void tls_server_files_digest(const struct config *cfg, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned len = 0;
	bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		  digest_file(md, cfg->server_tls_ca_file) &&
		  digest_file(md, cfg->server_tls_cert_file) &&
		  digest_file(md, cfg->server_tls_key_file) && EVP_DigestFinal_ex(md, out, &len);
	if (!ok || len != 32)
		memset(out, 0, 32); /* out of memory: the next reload replaces the servers */
	EVP_MD_CTX_free(md);
}

const char *tls_version_libpq(int version)
{
	switch (version) {
	case TLS1_VERSION:
		return "TLSv1";
	case TLS1_1_VERSION:
		return "TLSv1.1";
	case TLS1_2_VERSION:
		return "TLSv1.2";
	default:
		return "TLSv1.3";
	}
}

int tls_version_of_libpq(const char *name)
{
	static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION};
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (strcasecmp(name, tls_version_libpq(versions[i])) == 0)
			return versions[i];
	return 0;
}

/* OpenSSL's errors of this thread, the first (often the system's: "No such file or
 * directory") to the last, "; "-separated, into BUF; the queue is emptied. */
static void ssl_reason(char *buf, size_t len)
{
	size_t off = 0;
	unsigned long e;
	buf[0] = 0;
	while ((e = ERR_get_error()) && off + 3 < len) {
		if (off) {
			memcpy(buf + off, "; ", 3);
			off += 2;
		}
		ERR_error_string_n(e, buf + off, len - off);
		off += strlen(buf + off);
	}
	ERR_clear_error();
	if (!buf[0])
		snprintf(buf, len, "unknown error");
}

bool tls_default_cipher_list(const char *list)
{
	/* PgBouncer's names for OpenSSL's own list (which may be the system's policy) */
	return strcasecmp(list, "default") == 0 || strcasecmp(list, "secure") == 0 ||
	       strcasecmp(list, "fast") == 0 || strcasecmp(list, "normal") == 0;
}

bool tls_set_cipher_list(SSL_CTX *ctx, const char *list, char *err, size_t errlen)
{
	if (tls_default_cipher_list(list))
		return true;
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, strcasecmp(list, "all") == 0 ? "ALL" : list) == 1)
		return true;
	ssl_reason(err, errlen);
	return false;
}

bool tls_set_ciphersuites(SSL_CTX *ctx, const char *suites, char *err, size_t errlen)
{
	char why[256];
	ERR_clear_error();
	if (!suites[0] || SSL_CTX_set_ciphersuites(ctx, suites) == 1)
		return true;
	ssl_reason(why, sizeof(why));
	/* PgBouncer's words, which tools seek */
	snprintf(err, errlen, "failed to set the TLSv1.3 cipher suites: %s", why);
	return false;
}

/* Whether APPLY (tls_set_cipher_list or tls_set_ciphersuites) takes VALUE, tried on a
 * context of its own; the reason in WHY when not. */
static bool ciphers_check(bool (*apply)(SSL_CTX *, const char *, char *, size_t),
			  const char *value, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		ssl_reason(why, whylen);
		return false;
	}
	bool ok = apply(ctx, value, why, whylen);
	SSL_CTX_free(ctx);
	return ok;
}

bool tls_check_cipher_list(const char *list, char *why, size_t whylen)
{
	return tls_default_cipher_list(list) || ciphers_check(tls_set_cipher_list, list, why, whylen);
}

bool tls_check_ciphersuites(const char *suites, char *why, size_t whylen)
{
	return !suites[0] || ciphers_check(tls_set_ciphersuites, suites, why, whylen);
}

bool tls_ctx_build(const struct config *cfg, SSL_CTX **out, char *err, size_t errlen)
{
	char why[384];
	int min, max;
	*out = NULL;
	if (cfg->client_tls_sslmode == TLS_DISABLE)
		return true;
	if (!tls_protocols_parse("client_tls_protocols", cfg->client_tls_protocols, &min, &max, err,
				 errlen))
		return false;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot create a TLS context: %s", why);
		return false;
	}
	const char *what = "client_tls_protocols";
	if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, max))
		goto fail;
	what = "client_tls_ciphers";
	if (!tls_set_cipher_list(ctx, cfg->client_tls_ciphers, why, sizeof(why)))
		goto fail_why;
	what = "client_tls13_ciphers";
	if (!tls_set_ciphersuites(ctx, cfg->client_tls13_ciphers, why, sizeof(why)))
		goto fail_why;
	what = "client_tls_ecdhcurve";
	if (strcasecmp(cfg->client_tls_ecdhcurve, "auto") != 0 &&
	    strcasecmp(cfg->client_tls_ecdhcurve, "none") != 0 &&
	    !SSL_CTX_set1_groups_list(ctx, cfg->client_tls_ecdhcurve))
		goto fail;
	if (strcasecmp(cfg->client_tls_dheparams, "auto") == 0)
		SSL_CTX_set_dh_auto(ctx, 1);
	what = "client_tls_cert_file";
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_tls_cert_file) != 1)
		goto fail;
	what = "client_tls_key_file";
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->client_tls_key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (cfg->client_tls_ca_file[0]) {
		what = "client_tls_ca_file";
		if (SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1)
			goto fail;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_tls_ca_file);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		/* a certificate is asked for whenever a CA is set (auth cert needs one);
		 * verify-ca / verify-full make it mandatory */
		int mode = SSL_VERIFY_PEER;
		if (cfg->client_tls_sslmode >= TLS_VERIFY_CA)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				     SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* RELEASE_BUFFERS: an idle TLS client holds no 16 KiB record buffers (most clients of
	 * a pooler are idle); it costs a malloc/free per record, ~4% of a TLS transaction's
	 * instructions (callgrind, pgbench -S: ~37,200 against ~35,700 per transaction, both
	 * hops TLS) */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	*out = ctx;
	return true;
fail:
	ssl_reason(why, sizeof(why));
fail_why:
	snprintf(err, errlen, "%s: %s", what, why);
	SSL_CTX_free(ctx);
	return false;
}

bool tls_peer_cn(SSL *ssl, char *buf, size_t len)
{
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return false;
	bool ok = false;
	X509_NAME *name = X509_get_subject_name(cert);
	int i = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (i >= 0) {
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
		int n = ASN1_STRING_length(s);
		const unsigned char *d = ASN1_STRING_get0_data(s);
		/* an embedded NUL would let "a\0b" pass for "a" */
		if (n > 0 && (size_t)n < len && !memchr(d, 0, (size_t)n)) {
			memcpy(buf, d, (size_t)n);
			buf[n] = 0;
			ok = true;
		}
	}
	X509_free(cert);
	return ok;
}

const char *tls_conn_info(SSL *ssl, char *buf, size_t len)
{
	if (ssl)
		snprintf(buf, len, "%s/%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	else
		snprintf(buf, len, "no");
	return buf;
}

bool tls_alpn_ok(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;
	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(alpn_pg) - 1 && memcmp(p, alpn_pg, n) == 0;
}

const char *tls_error_string(SSL *ssl)
{
	static char buf[256];
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e = ERR_peek_last_error();
	if (e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		if (v != X509_V_OK) {
			size_t n = strlen(buf);
			snprintf(buf + n, sizeof(buf) - n, " (%s)", X509_verify_cert_error_string(v));
		}
	} else if (v != X509_V_OK) {
		snprintf(buf, sizeof(buf), "%s", X509_verify_cert_error_string(v));
	} else {
		snprintf(buf, sizeof(buf), "TLS connection closed");
	}
	ERR_clear_error();
	return buf;
}

/* Owns pgcoro's own server login (srvlogin.h): one connection per struct srvlogin, from
 * the host name to the server's first ReadyForQuery, for the credentials libpq cannot
 * use (an md5 secret, SCRAM keys) and a plain password or none, with TLS ciphers libpq
 * cannot set.
 *   resolving (executor: getaddrinfo, the TLS files and CRLs) -> connecting (non-blocking,
 *   each address in turn) -> [SSLRequest, SSL_connect] -> startup packet -> authentication
 *   (over TLS SCRAM-SHA-256-PLUS bound to the server's certificate, as libpq 15)
 *   [-> executor: PBKDF2 of a password] -> ParameterStatus / BackendKeyData ... -> done.
 * Reads take exactly what the current message still lacks (its header, then its body),
 * so no byte after the ReadyForQuery is ever consumed: the socket is handed over at a
 * message boundary with no buffer to pass along. A login reads a dozen small messages;
 * two reads each are nothing next to a backend's start. Every message is framed by
 * proto_next within libpq's bounds (authentication requests 2000 bytes, others 30000)
 * in one buffer allocated with the login. Failures go through sl_fail, which retries what
 * libpq retries (the next address after a connect failure or the timeout; sslmode allow's
 * and prefer's second try on the same address) and otherwise ends the login. */
#include "srvlogin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "executor.h"
#include "log.h"
#include "proto.h"
#include "tls.h"

#define SL_MAX_AUTH_MSG 2000 /* libpq's bound on an authentication request */
#define SL_MAX_MSG 30000     /* and on an error (MAX_ERRLEN): the other messages' bound */
#define SL_MAX_ADDRS 16
#define SL_MAX_PARAMS 256
#define SL_MAX_PARAM_BYTES 65536

enum sl_state {
	SL_RESOLVING,  /* the executor resolves the host name and loads the TLS files */
	SL_CONNECTING, /* a non-blocking connect: awaiting writability */
	SL_SSL_ANSWER, /* SSLRequest sent: awaiting 'S' or 'N' */
	SL_HANDSHAKE,  /* SSL_connect */
	SL_AUTH,       /* the startup packet sent: authentication requests */
	SL_DERIVING,   /* the executor runs PBKDF2 on the password (SCRAM) */
	SL_STARTUP,    /* AuthenticationOk: ParameterStatus, BackendKeyData ... ReadyForQuery */
	SL_DONE,       /* logged in */
	SL_FAILED,
};

/* What a failure lets the login try next (libpq's retries). */
enum sl_fail {
	SLF_ADDRESS, /* connecting failed or timed out: the next address */
	SLF_TLS,     /* the TLS handshake failed: prefer tries again without */
	SLF_SERVER,  /* the server refused during authentication: allow / prefer try again */
	SLF_FINAL,   /* nothing else to try */
};

enum sl_io { IO_OK, IO_WAIT_READ, IO_WAIT_WRITE, IO_EOF, IO_ERR, IO_BAD };

/* Where the SCRAM exchange is: refuses requests out of order. */
enum sl_sasl { SASL_NONE, SASL_FIRST_SENT, SASL_FINAL_SENT, SASL_VERIFIED };

struct sl_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

/* An executor job: name resolution and the TLS context, or PBKDF2. It holds copies of
 * what it reads and writes only its own fields; SL is NULL once the login was freed or
 * moved on, and then done frees the job. */
struct sl_job {
	struct exec_job job;
	struct srvlogin *sl;
	bool resolve; /* else PBKDF2 */
	/* resolve: in */
	char *host, *rootcert, *cert, *key, *crl, *crldir;
	int port;
	enum srvlogin_sslmode mode;
	int tls_min, tls_max; /* 0: TLS 1.2 at least, no upper bound */
	char *ciphers, *ciphersuites; /* NULL: OpenSSL's */
	bool need_ctx;
	/* resolve: out */
	struct sl_addr addrs[SL_MAX_ADDRS];
	int naddrs;
	SSL_CTX *ctx;
	char err[400];
	/* PBKDF2 */
	char *password;
	uint8_t salt[SCRAM_MAX_SALT];
	int salt_len, iterations;
	struct scram_keys keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	bool ok;
};

struct srvlogin {
	enum sl_state state;
	struct event_base *base;
	executor_t *ex;
	srvlogin_done_fn done;
	void *done_arg;

	/* what to log in with: copies */
	char *host; /* where: a host name, hostaddr's address, or the socket directory */
	char *tls_name; /* the name TLS sends (SNI) and verify-full checks: HOST, or with
	                 * hostaddr the host given (NULL: none) */
	int port;
	bool unix_socket, numeric;
	char *user;
	enum srvlogin_sslmode sslmode;
	enum srvlogin_cbind cbind;
	char *sslrootcert, *sslcert, *sslkey, *sslcrl, *sslcrldir;
	int tls_min, tls_max;
	struct timeval timeout;
	bool has_timeout;
	enum srvlogin_cred cred;
	char *secret;
	struct scram_keys keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	int scram_max_iterations;
	struct pbuf startup; /* the startup packet, sent on every attempt */

	/* where */
	struct sl_addr *addrs;
	int naddrs, addr;
	SSL_CTX *ctx;

	/* the attempt in progress */
	int fd;
	SSL *ssl;
	bool tls_up;      /* the handshake is done */
	bool tls_try;     /* this attempt asks for TLS */
	bool tls_retried; /* allow's or prefer's second try on this address was made */
	int sys_errno;    /* of the last IO_ERR without TLS */
	struct event io, timer, done_ev;
	uint8_t *in; /* SL_MAX_MSG + 1 bytes: the message being read */
	uint32_t ilen;
	struct pbuf out;
	size_t out_off;
	struct scram_client scram;
	enum sl_sasl sasl;
	const char *mech; /* the SASL mechanism chosen (static), NULL before */
	struct sl_job *job;

	/* results */
	struct pbuf params; /* name NUL value NUL, NPARAMS times */
	int nparams;
	uint32_t be_pid, be_key;
	bool have_key, taken;
	char tx_status;
	struct srvlogin_error err;
};

static void attempt(struct srvlogin *sl);
static void pump(struct srvlogin *sl);
static void handshake(struct srvlogin *sl);

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* True if S is an IPv4 or IPv6 address literal. */
static bool is_ip_literal(const char *s)
{
	struct in6_addr a;
	return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* Empties the output, wiping it: it may have held a password or a proof. */
static void wipe_out(struct srvlogin *sl)
{
	if (sl->out.data)
		OPENSSL_cleanse(sl->out.data, sl->out.len);
	pbuf_reset(&sl->out);
	sl->out_off = 0;
}

/* ---- the end ------------------------------------------------------------------------- */

static void job_orphan(struct srvlogin *sl)
{
	if (sl->job) {
		sl->job->sl = NULL;
		sl->job = NULL;
	}
}

/* Closes the attempt's connection and forgets its progress. */
static void close_conn(struct srvlogin *sl)
{
	event_del(&sl->io);
	job_orphan(sl);
	if (sl->ssl)
		SSL_free(sl->ssl);
	sl->ssl = NULL;
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = -1;
	sl->tls_up = false;
	sl->ilen = 0;
	wipe_out(sl);
	OPENSSL_cleanse(&sl->scram, sizeof(sl->scram));
	sl->sasl = SASL_NONE;
	sl->mech = NULL;
	pbuf_reset(&sl->params);
	sl->nparams = 0;
	sl->have_key = false;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct srvlogin *sl = arg;
	sl->done(sl, sl->done_arg); /* last: it may free SL */
}

/* Ends the login in STATE (SL_DONE keeps the connection); DONE runs from the loop. */
static void finish(struct srvlogin *sl, enum sl_state state)
{
	sl->state = state;
	event_del(&sl->io);
	evtimer_del(&sl->timer);
	if (state == SL_FAILED)
		close_conn(sl);
	event_active(&sl->done_ev, 0, 0);
}

/* Whether a failure of KIND leaves something to try; sets up what. */
static bool retry(struct srvlogin *sl, enum sl_fail kind)
{
	switch (kind) {
	case SLF_TLS:
	case SLF_SERVER:
		if (sl->tls_retried)
			return false;
		if (sl->sslmode == SRVLOGIN_SSL_PREFER && sl->tls_try) {
			sl->tls_try = false; /* prefer: again without TLS */
			sl->tls_retried = true;
			return true;
		}
		if (kind == SLF_SERVER && sl->sslmode == SRVLOGIN_SSL_ALLOW && !sl->tls_try &&
		    !sl->unix_socket) {
			sl->tls_try = true; /* allow: again with TLS */
			sl->tls_retried = true;
			return true;
		}
		return false;
	case SLF_ADDRESS:
		if (sl->addr + 1 >= sl->naddrs)
			return false;
		sl->addr++;
		sl->tls_try = !sl->unix_socket && sl->sslmode >= SRVLOGIN_SSL_PREFER;
		sl->tls_retried = false;
		return true;
	case SLF_FINAL:
		return false;
	}
	return false;
}

/* The error funnel, once SL->err holds the failure: the connection is closed, then the
 * login tries again (see retry) or ends. */
static void fail_now(struct srvlogin *sl, enum sl_fail kind)
{
	close_conn(sl);
	bool again = retry(sl, kind);
	log_debug("server login to %s as %s: %s%s", sl->err.where[0] ? sl->err.where : sl->host,
		  sl->user, sl->err.reason, again ? " (trying again)" : "");
	if (again)
		attempt(sl);
	else
		finish(sl, SL_FAILED);
}

/* Fails with SQLSTATE and a reason of our own (see fail_now). */
static void sl_fail(struct srvlogin *sl, enum sl_fail kind, const char *sqlstate,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void sl_fail(struct srvlogin *sl, enum sl_fail kind, const char *sqlstate,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sl->err.reason, sizeof(sl->err.reason), fmt, ap);
	va_end(ap);
	snprintf(sl->err.sqlstate, sizeof(sl->err.sqlstate), "%s", sqlstate);
	sl->err.from_server = false;
	fail_now(sl, kind);
}

/* True if S is a SQLSTATE: five digits or upper-case letters. */
static bool is_sqlstate(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return s[5] == '\0';
}

/* Fails with the server's ErrorResponse M. */
static void server_error(struct srvlogin *sl, const struct proto_msg *m, enum sl_fail kind)
{
	const char *code = proto_error_field(m->body, m->blen, 'C');
	const char *msg = proto_error_field(m->body, m->blen, 'M');
	snprintf(sl->err.sqlstate, sizeof(sl->err.sqlstate), "%s",
		 code && is_sqlstate(code) ? code : "08006");
	snprintf(sl->err.reason, sizeof(sl->err.reason), "%s",
		 msg ? msg : "the server refused the login without a message");
	sl->err.from_server = true;
	fail_now(sl, kind);
}

static const char *fail_reason(struct srvlogin *sl, enum sl_io r)
{
	switch (r) {
	case IO_EOF:
		return "server closed the connection unexpectedly";
	case IO_BAD:
		return "the server sent a message of an invalid length";
	case IO_ERR:
		return sl->ssl ? tls_error_string(sl->ssl) : strerror(sl->sys_errno);
	default:
		return "?";
	}
}

/* ---- bytes --------------------------------------------------------------------------- */

/* An SSL_read / SSL_write result R (<= 0) as an sl_io. */
static enum sl_io ssl_result(struct srvlogin *sl, int r)
{
	switch (SSL_get_error(sl->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return IO_WAIT_READ;
	case SSL_ERROR_WANT_WRITE:
		return IO_WAIT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return IO_EOF;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0)
			return IO_EOF;
		return IO_ERR;
	default:
		return IO_ERR;
	}
}

/* Reads at most N bytes into BUF; *GOT how many (IO_OK only). */
static enum sl_io raw_read(struct srvlogin *sl, uint8_t *buf, size_t n, size_t *got)
{
	if (sl->ssl) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(sl->ssl, buf, (int)n);
		if (r > 0) {
			*got = (size_t)r;
			return IO_OK;
		}
		return ssl_result(sl, r);
	}
	for (;;) {
		ssize_t r = recv(sl->fd, buf, n, 0);
		if (r > 0) {
			*got = (size_t)r;
			return IO_OK;
		}
		if (r == 0)
			return IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_WAIT_READ;
		sl->sys_errno = errno;
		return errno == ECONNRESET ? IO_EOF : IO_ERR;
	}
}

/* Writes what SL->out holds. */
static enum sl_io flush(struct srvlogin *sl)
{
	if (sl->out.failed) {
		sl->sys_errno = ENOMEM;
		return IO_ERR;
	}
	while (sl->out_off < sl->out.len) {
		const uint8_t *p = sl->out.data + sl->out_off;
		size_t n = sl->out.len - sl->out_off;
		if (sl->ssl) {
			ERR_clear_error();
			errno = 0;
			int r = SSL_write(sl->ssl, p, (int)n);
			if (r <= 0)
				return ssl_result(sl, r);
			sl->out_off += (size_t)r;
			continue;
		}
		ssize_t r = send(sl->fd, p, n, MSG_NOSIGNAL);
		if (r > 0) {
			sl->out_off += (size_t)r;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return IO_WAIT_WRITE;
		} else if (errno != EINTR) {
			sl->sys_errno = errno;
			return errno == EPIPE || errno == ECONNRESET ? IO_EOF : IO_ERR;
		}
	}
	wipe_out(sl);
	return IO_OK;
}

/* Reads until the message at the head of SL->in is whole (IO_OK: *M describes it), taking
 * no byte beyond it. */
static enum sl_io read_msg(struct srvlogin *sl, struct proto_msg *m)
{
	for (;;) {
		switch (proto_next(sl->in, sl->ilen, SL_MAX_MSG, m)) {
		case PROTO_OK:
			return IO_OK;
		case PROTO_BAD:
			return IO_BAD;
		case PROTO_NEED_MORE:
			break;
		}
		if (sl->ilen >= PROTO_HDR && m->type == 'R' && m->len > SL_MAX_AUTH_MSG)
			return IO_BAD;
		size_t want = sl->ilen < PROTO_HDR ? PROTO_HDR - sl->ilen
						   : (size_t)m->len + 1 - sl->ilen;
		size_t got;
		enum sl_io r = raw_read(sl, sl->in + sl->ilen, want, &got);
		if (r != IO_OK)
			return r;
		sl->ilen += (uint32_t)got;
	}
}

/* Waits for the socket to be readable or writable (WHAT), then on_io. */
static void sl_wait(struct srvlogin *sl, short what);

static void wait_or_fail(struct srvlogin *sl, enum sl_io r, enum sl_fail kind)
{
	if (r == IO_WAIT_READ)
		sl_wait(sl, EV_READ);
	else if (r == IO_WAIT_WRITE)
		sl_wait(sl, EV_WRITE);
	else
		sl_fail(sl, kind, "08006", "%s", fail_reason(sl, r));
}

/* ---- sending ------------------------------------------------------------------------- */

static void send_startup(struct srvlogin *sl)
{
	proto_put_bytes(&sl->out, sl->startup.data, sl->startup.len);
	sl->state = SL_AUTH;
}

/* PasswordMessage 'p' (also SASLResponse): LEN bytes of DATA, then a NUL when STR. */
static void send_password(struct srvlogin *sl, const void *data, size_t len, bool str)
{
	proto_begin(&sl->out, 'p');
	proto_put_bytes(&sl->out, data, len);
	if (str)
		proto_put_u8(&sl->out, 0);
	proto_end(&sl->out);
}

/* ---- authentication ------------------------------------------------------------------ */

static const char *cred_name(const struct srvlogin *sl)
{
	switch (sl->cred) {
	case SRVLOGIN_PASSWORD: return "a password";
	case SRVLOGIN_MD5_SECRET: return "an md5 secret";
	case SRVLOGIN_SCRAM_KEYS: return "SCRAM keys";
	case SRVLOGIN_SCRAM_NO_KEY: return "a SCRAM secret whose keys no client provided";
	case SRVLOGIN_NO_PASSWORD: return "no password";
	}
	return "?";
}

static bool answer_cleartext(struct srvlogin *sl)
{
	if (sl->cred != SRVLOGIN_PASSWORD) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"cannot do cleartext authentication: wrong password type (the server asks "
			"for a cleartext password for user \"%s\", but pgcoro has only %s)",
			sl->user, cred_name(sl));
		return false;
	}
	send_password(sl, sl->secret, strlen(sl->secret), true);
	return true;
}

static bool answer_md5(struct srvlogin *sl, const uint8_t salt[4])
{
	char stored[36], answer[36];
	bool ok = false;
	if (sl->cred == SRVLOGIN_SCRAM_KEYS || sl->cred == SRVLOGIN_SCRAM_NO_KEY) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"cannot do MD5 authentication: wrong password type (the server asks for md5 "
			"authentication for user \"%s\", but pgcoro has only %s)",
			sl->user, cred_name(sl));
		return false;
	}
	if (sl->cred == SRVLOGIN_PASSWORD)
		auth_md5_secret(sl->secret, sl->user, stored);
	else
		snprintf(stored, sizeof(stored), "%s", sl->secret);
	if (auth_md5_response(stored, salt, answer)) {
		send_password(sl, answer, strlen(answer), true);
		ok = true;
	} else {
		sl_fail(sl, SLF_FINAL, "28P01", "md5 authentication is not available (no MD5 digest)");
	}
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(answer, sizeof(answer));
	return ok;
}

/* tls-server-end-point (RFC 5929) of SSL's peer into OUT (*LEN bytes): the hash of the
 * server's certificate with the digest of its signature, SHA-256 for MD5 and SHA-1 (as
 * libpq's pgtls_get_peer_certificate_hash). False when there is none (no certificate, a
 * signature without a digest of its own such as Ed25519: libpq fails so too). */
static bool server_end_point(SSL *ssl, uint8_t out[SCRAM_MAX_CBIND_DATA], size_t *len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	int algo = NID_undef;
	const EVP_MD *md = NULL;
	if (cert && OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
		md = algo == NID_md5 || algo == NID_sha1 ? EVP_sha256() : EVP_get_digestbynid(algo);
	uint8_t buf[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	bool ok = md && X509_digest(cert, md, buf, &n) == 1 && n >= 1 &&
		  n <= SCRAM_MAX_CBIND_DATA;
	if (ok) {
		memcpy(out, buf, n);
		*len = n;
	}
	X509_free(cert);
	return ok;
}

/* AuthenticationSASL: the mechanisms DATA (DLEN bytes) lists, NUL-terminated names ending
 * with an empty one. The choice is libpq 15's: SCRAM-SHA-256-PLUS over TLS unless
 * channel_binding=disable, else SCRAM-SHA-256 (gs2 header "y" over TLS, "n" without). */
static bool sasl_begin(struct srvlogin *sl, const uint8_t *data, uint32_t dlen)
{
	bool scram = false, plus = false, ended = false;
	uint32_t pos = 0;
	while (pos < dlen) {
		const uint8_t *nul = memchr(data + pos, 0, dlen - pos);
		if (!nul)
			break;
		const char *name = (const char *)data + pos;
		pos = (uint32_t)(nul - data) + 1;
		if (!*name) {
			ended = pos == dlen;
			break;
		}
		scram |= strcmp(name, "SCRAM-SHA-256") == 0;
		plus |= strcmp(name, "SCRAM-SHA-256-PLUS") == 0;
	}
	if (!ended || sl->sasl != SASL_NONE) {
		sl_fail(sl, SLF_FINAL, "08006", "invalid SASL authentication request from the server");
		return false;
	}
	if (plus && !sl->tls_up) {
		/* a server that would refuse an unbound exchange: TLS stripped on the way? */
		sl_fail(sl, SLF_FINAL, "08006",
			"server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection");
		return false;
	}
	bool use_plus = plus && sl->cbind != SRVLOGIN_CB_DISABLE;
	if (sl->cbind == SRVLOGIN_CB_REQUIRE && !use_plus) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"channel binding is required, but server did not offer an authentication "
			"method that supports channel binding%s",
			sl->tls_up ? "" : " (the connection does not use TLS)");
		return false;
	}
	if (!scram && !use_plus) {
		sl_fail(sl, SLF_FINAL, "28P01", "%s",
			plus ? "the server offers only SCRAM-SHA-256-PLUS (channel binding), which "
			       "channel_binding=disable refuses"
			     : "the server offers no SASL mechanism pgcoro knows (SCRAM-SHA-256)");
		return false;
	}
	if (sl->cred == SRVLOGIN_MD5_SECRET) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"cannot do SCRAM authentication: wrong password type (the server asks for "
			"SCRAM-SHA-256 authentication for user \"%s\", but pgcoro has only an md5 "
			"secret)",
			sl->user);
		return false;
	}
	if (sl->cred == SRVLOGIN_SCRAM_NO_KEY) {
		/* PgBouncer's words, then the ones its clients get */
		sl_fail(sl, SLF_FINAL, "28P01",
			"cannot do SCRAM authentication: password is SCRAM secret but client "
			"authentication did not provide SCRAM keys (user \"%s\"): wrong password "
			"type",
			sl->user);
		return false;
	}
	uint8_t hash[SCRAM_MAX_CBIND_DATA];
	size_t hlen = 0;
	enum scram_cbind cb = use_plus ? SCRAM_CB_SERVER_END_POINT
		: sl->tls_up && sl->cbind != SRVLOGIN_CB_DISABLE ? SCRAM_CB_NOT_OFFERED
								 : SCRAM_CB_NONE;
	if (use_plus && !server_end_point(sl->ssl, hash, &hlen)) {
		sl_fail(sl, SLF_FINAL, "08006",
			"could not compute the hash of the server's certificate for channel binding "
			"(tls-server-end-point)");
		return false;
	}
	if (!scram_client_channel_binding(&sl->scram, cb, hash, hlen)) {
		sl_fail(sl, SLF_FINAL, "08006", "could not set up SCRAM channel binding");
		return false;
	}
	char first[128];
	if (!scram_client_first(&sl->scram, first, sizeof(first))) {
		sl_fail(sl, SLF_FINAL, "08006", "could not build the SCRAM client-first message");
		return false;
	}
	size_t len = strlen(first);
	sl->mech = scram_client_mechanism(&sl->scram);
	proto_begin(&sl->out, 'p');
	proto_put_str(&sl->out, sl->mech);
	proto_put_u32(&sl->out, (uint32_t)len);
	proto_put_bytes(&sl->out, first, len);
	proto_end(&sl->out);
	sl->sasl = SASL_FIRST_SENT;
	return true;
}

/* Sends the client-final-message proving CLIENT_KEY, expecting SERVER_KEY's signature. */
static bool sasl_send_final(struct srvlogin *sl, const uint8_t *client_key,
			    const uint8_t *server_key)
{
	char final[600];
	if (!scram_client_final_keys(&sl->scram, client_key, server_key, final, sizeof(final))) {
		sl_fail(sl, SLF_FINAL, "08006", "could not build the SCRAM client-final message");
		return false;
	}
	send_password(sl, final, strlen(final), false);
	OPENSSL_cleanse(final, sizeof(final));
	sl->sasl = SASL_FINAL_SENT;
	return true;
}

static void job_submit(struct srvlogin *sl, struct sl_job *job);

/* AuthenticationSASLContinue: the server-first-message. */
static bool sasl_continue(struct srvlogin *sl, const uint8_t *data, uint32_t dlen)
{
	if (sl->sasl != SASL_FIRST_SENT ||
	    !scram_client_server_first(&sl->scram, (const char *)data, dlen)) {
		sl_fail(sl, SLF_FINAL, "08006", "invalid SCRAM server-first message from the server");
		return false;
	}
	const struct scram_client *c = &sl->scram;
	if (sl->cred == SRVLOGIN_SCRAM_KEYS) {
		if (c->iterations != sl->keys.iterations || c->salt_len != sl->keys.salt_len ||
		    memcmp(c->salt, sl->keys.salt, (size_t)c->salt_len) != 0) {
			sl_fail(sl, SLF_FINAL, "28P01",
				"the server's SCRAM secret for user \"%s\" differs from the one pgcoro "
				"has (another salt or iteration count)",
				sl->user);
			return false;
		}
		return sasl_send_final(sl, sl->client_key, sl->keys.server_key);
	}
	if (c->iterations > sl->scram_max_iterations) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"the server asks for %d SCRAM iterations, more than the %d pgcoro runs for a "
			"server login",
			c->iterations, sl->scram_max_iterations);
		return false;
	}
	/* PBKDF2 on the password: the executor's */
	struct sl_job *job = calloc(1, sizeof(*job));
	if (!job || !(job->password = strdup(sl->secret))) {
		free(job);
		sl_fail(sl, SLF_FINAL, "08006", "out of memory");
		return false;
	}
	memcpy(job->salt, c->salt, (size_t)c->salt_len);
	job->salt_len = c->salt_len;
	job->iterations = c->iterations;
	sl->state = SL_DERIVING;
	job_submit(sl, job);
	return false; /* the job's done goes on */
}

static bool sasl_final(struct srvlogin *sl, const uint8_t *data, uint32_t dlen)
{
	if (sl->sasl != SASL_FINAL_SENT || !scram_client_verify(&sl->scram, (const char *)data, dlen)) {
		sl_fail(sl, SLF_FINAL, "28P01",
			"the server's SCRAM signature is wrong: it does not hold the secret of user \"%s\"",
			sl->user);
		return false;
	}
	sl->sasl = SASL_VERIFIED;
	return true;
}

static void notice(struct srvlogin *sl, const struct proto_msg *m)
{
	const char *sev = proto_error_field(m->body, m->blen, 'S');
	const char *msg = proto_error_field(m->body, m->blen, 'M');
	log_info("server login to %s as %s: %s: %s", sl->err.where, sl->user, sev ? sev : "NOTICE",
		 msg ? msg : "");
}

/* channel_binding=require (libpq's check_expected_areq): only SASL requests, and an
 * AuthenticationOk only after a SCRAM-SHA-256-PLUS exchange the server proved. False
 * (failed) for request CODE otherwise. */
static bool channel_bound_ok(struct srvlogin *sl, uint32_t code)
{
	switch (code) {
	case AUTH_REQ_SASL:
	case AUTH_REQ_SASL_CONT:
	case AUTH_REQ_SASL_FIN:
		return true;
	case AUTH_REQ_OK:
		if (sl->sasl == SASL_VERIFIED && sl->scram.cbind == SCRAM_CB_SERVER_END_POINT)
			return true;
		sl_fail(sl, SLF_FINAL, "28P01",
			"channel binding required, but server authenticated client without channel "
			"binding");
		return false;
	default:
		sl_fail(sl, SLF_FINAL, "28P01",
			"channel binding required but not supported by server's authentication "
			"request (method %u)",
			code);
		return false;
	}
}

/* A message in SL_AUTH. True: read the next one. */
static bool on_auth(struct srvlogin *sl, const struct proto_msg *m)
{
	switch (m->type) {
	case 'R':
		break;
	case 'E':
		server_error(sl, m, SLF_SERVER);
		return false;
	case 'N':
		notice(sl, m);
		return true;
	case 'v':
		sl_fail(sl, SLF_FINAL, "08006",
			"the server does not accept protocol 3.0 as pgcoro asks for it "
			"(NegotiateProtocolVersion)");
		return false;
	default:
		sl_fail(sl, SLF_FINAL, "08006",
			"expected an authentication request from the server, got message type 0x%02x",
			m->type);
		return false;
	}
	if (m->blen < 4) {
		sl_fail(sl, SLF_FINAL, "08006", "invalid authentication request from the server");
		return false;
	}
	uint32_t code = get_be32(m->body);
	const uint8_t *data = m->body + 4;
	uint32_t dlen = m->blen - 4;
	if (sl->cbind == SRVLOGIN_CB_REQUIRE && !channel_bound_ok(sl, code))
		return false;
	if (sl->sasl != SASL_NONE && code != AUTH_REQ_SASL_CONT && code != AUTH_REQ_SASL_FIN &&
	    code != AUTH_REQ_OK) {
		sl_fail(sl, SLF_FINAL, "08006",
			"the server sent authentication request %u in the middle of SCRAM", code);
		return false;
	}
	if (sl->cred == SRVLOGIN_NO_PASSWORD &&
	    (code == AUTH_REQ_PASSWORD || code == AUTH_REQ_MD5 || code == AUTH_REQ_SASL)) {
		sl_fail(sl, SLF_FINAL, "08006", "fe_sendauth: no password supplied"); /* libpq's */
		return false;
	}
	switch (code) {
	case AUTH_REQ_OK:
		if (dlen != 0 || (sl->sasl != SASL_NONE && sl->sasl != SASL_VERIFIED)) {
			sl_fail(sl, SLF_FINAL, "28P01",
				"the server ended SCRAM authentication without proving it holds the "
				"secret of user \"%s\"",
				sl->user);
			return false;
		}
		sl->state = SL_STARTUP;
		return true;
	case AUTH_REQ_PASSWORD:
		return answer_cleartext(sl);
	case AUTH_REQ_MD5:
		if (dlen != 4) {
			sl_fail(sl, SLF_FINAL, "08006", "invalid md5 authentication request from the server");
			return false;
		}
		return answer_md5(sl, data);
	case AUTH_REQ_SASL:
		return sasl_begin(sl, data, dlen);
	case AUTH_REQ_SASL_CONT:
		return sasl_continue(sl, data, dlen);
	case AUTH_REQ_SASL_FIN:
		return sasl_final(sl, data, dlen);
	default:
		sl_fail(sl, SLF_FINAL, "28P01",
			"the server asks for authentication method %u, which pgcoro's own server "
			"login does not do (it does cleartext, md5 and SCRAM-SHA-256)",
			code);
		return false;
	}
}

/* ---- after authentication ------------------------------------------------------------ */

static bool keep_param(struct srvlogin *sl, const struct proto_msg *m)
{
	const char *name, *value;
	if (!proto_parse_param_status(m->body, m->blen, &name, &value)) {
		sl_fail(sl, SLF_FINAL, "08006", "invalid ParameterStatus message from the server");
		return false;
	}
	if (sl->nparams >= SL_MAX_PARAMS || sl->params.len + m->blen > SL_MAX_PARAM_BYTES) {
		sl_fail(sl, SLF_FINAL, "08006", "the server reports too many parameters");
		return false;
	}
	proto_put_str(&sl->params, name);
	proto_put_str(&sl->params, value);
	if (sl->params.failed) {
		sl_fail(sl, SLF_FINAL, "08006", "out of memory");
		return false;
	}
	sl->nparams++;
	return true;
}

/* A message in SL_STARTUP. True: read the next one. */
static bool on_startup(struct srvlogin *sl, const struct proto_msg *m)
{
	switch (m->type) {
	case 'S':
		return keep_param(sl, m);
	case 'K':
		if (m->blen != 8)
			break;
		sl->be_pid = get_be32(m->body);
		sl->be_key = get_be32(m->body + 4);
		sl->have_key = true;
		return true;
	case 'N':
		notice(sl, m);
		return true;
	case 'E':
		server_error(sl, m, SLF_FINAL);
		return false;
	case 'Z':
		if (m->blen != 1 || !memchr("ITE", m->body[0], 3))
			break;
		sl->tx_status = (char)m->body[0];
		log_debug("server login to %s as %s: logged in%s%s%s", sl->err.where, sl->user,
			  sl->tls_up ? " over TLS" : "", sl->mech ? " with " : "",
			  sl->mech ? sl->mech : "");
		finish(sl, SL_DONE);
		return false;
	default:
		break;
	}
	sl_fail(sl, SLF_FINAL, "08006", "unexpected message type 0x%02x from the server during login",
		m->type);
	return false;
}

/* ---- TLS ----------------------------------------------------------------------------- */

/* verify-full: the peer's certificate names HOST (an IP address: an IP SAN, or the CN
 * when the certificate has no SAN; a name: a DNS SAN, or the CN when there is none). */
static bool host_matches(SSL *ssl, const char *host)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return false;
	int ok;
	if (is_ip_literal(host)) {
		ok = X509_check_ip_asc(cert, host, 0);
		if (ok != 1 && X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) < 0)
			ok = X509_check_host(cert, host, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL);
	} else {
		ok = X509_check_host(cert, host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
	}
	X509_free(cert);
	return ok == 1;
}

static bool tls_begin(struct srvlogin *sl)
{
	sl->ssl = sl->ctx ? SSL_new(sl->ctx) : NULL;
	if (!sl->ssl || SSL_set_fd(sl->ssl, sl->fd) != 1) {
		sl_fail(sl, SLF_FINAL, "08006", "could not set up TLS: %s",
			sl->ctx ? tls_error_string(NULL) : "no TLS context");
		return false;
	}
	SSL_set_connect_state(sl->ssl);
	SSL_set_mode(sl->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* SNI: the host name, never an IP address (libpq's rule) */
	if (sl->tls_name && !is_ip_literal(sl->tls_name) &&
	    SSL_set_tlsext_host_name(sl->ssl, sl->tls_name) != 1) {
		sl_fail(sl, SLF_FINAL, "08006", "could not set the TLS server name");
		return false;
	}
	sl->state = SL_HANDSHAKE;
	return true;
}

static void handshake(struct srvlogin *sl)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_connect(sl->ssl);
	if (r == 1) {
		if (sl->sslmode == SRVLOGIN_SSL_VERIFY_FULL && !sl->tls_name) {
			sl_fail(sl, SLF_FINAL, "08006",
				"host name must be specified for a verified SSL connection (hostaddr "
				"without host)");
			return;
		}
		if (sl->sslmode == SRVLOGIN_SSL_VERIFY_FULL && !host_matches(sl->ssl, sl->tls_name)) {
			sl_fail(sl, SLF_FINAL, "08006",
				"the server's certificate does not match host name \"%s\"",
				sl->tls_name);
			return;
		}
		sl->tls_up = true;
		send_startup(sl);
		pump(sl);
		return;
	}
	enum sl_io io = ssl_result(sl, r);
	if (io == IO_WAIT_READ || io == IO_WAIT_WRITE)
		wait_or_fail(sl, io, SLF_TLS);
	else
		sl_fail(sl, SLF_TLS, "08006", "TLS handshake failed: %s",
			io == IO_EOF ? "server closed the connection" : tls_error_string(sl->ssl));
}

/* The one-byte answer B to SSLRequest. True: go on reading (the startup packet is sent). */
static bool on_ssl_answer(struct srvlogin *sl, uint8_t b)
{
	switch (b) {
	case 'S':
		if (tls_begin(sl))
			handshake(sl);
		return false;
	case 'N':
		if (sl->sslmode >= SRVLOGIN_SSL_REQUIRE) {
			sl_fail(sl, SLF_FINAL, "08006", "server does not support SSL, but SSL was required");
			return false;
		}
		send_startup(sl);
		return true;
	case 'E':
		/* an ErrorResponse (the server could not start a backend): read it as one */
		sl->in[0] = b;
		sl->ilen = 1;
		sl->state = SL_AUTH;
		return true;
	default:
		sl_fail(sl, SLF_FINAL, "08006", "received invalid response to SSL negotiation: 0x%02x",
			b);
		return false;
	}
}

/* ---- the loop ------------------------------------------------------------------------ */

/* Writes what is queued, then reads and handles messages until one must wait. */
static void pump(struct srvlogin *sl)
{
	for (;;) {
		enum sl_io r = flush(sl);
		if (r == IO_OK && sl->state == SL_SSL_ANSWER) {
			uint8_t b;
			size_t got;
			r = raw_read(sl, &b, 1, &got);
			if (r == IO_OK) {
				if (!on_ssl_answer(sl, b))
					return;
				continue;
			}
		} else if (r == IO_OK) {
			struct proto_msg m;
			r = read_msg(sl, &m);
			if (r == IO_OK) {
				sl->ilen = 0; /* M stays readable until the next read */
				bool go_on = sl->state == SL_AUTH ? on_auth(sl, &m) : on_startup(sl, &m);
				if (!go_on)
					return;
				continue;
			}
		}
		wait_or_fail(sl, r, SLF_FINAL);
		return;
	}
}

static void on_connect(struct srvlogin *sl)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		sl_fail(sl, SLF_ADDRESS, "08006", "%s", strerror(err));
		return;
	}
	if (!sl->unix_socket) {
		int one = 1;
		(void)setsockopt(sl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (sl->tls_try) {
		proto_put_u32(&sl->out, 8);
		proto_put_u32(&sl->out, PROTO_SSL_CODE);
		sl->state = SL_SSL_ANSWER;
	} else {
		send_startup(sl);
	}
	pump(sl);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	struct srvlogin *sl = arg;
	switch (sl->state) {
	case SL_CONNECTING:
		on_connect(sl);
		break;
	case SL_HANDSHAKE:
		handshake(sl);
		break;
	case SL_SSL_ANSWER:
	case SL_AUTH:
	case SL_STARTUP:
		pump(sl);
		break;
	default:
		fatal("server login: socket event in state %d", (int)sl->state);
	}
}

static void sl_wait(struct srvlogin *sl, short what)
{
	event_del(&sl->io);
	event_assign(&sl->io, sl->base, sl->fd, what, on_io, sl);
	event_add(&sl->io, NULL);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct srvlogin *sl = arg;
	sl_fail(sl, SLF_ADDRESS, "08006", "timeout expired");
}

/* "host:port", "[v6]:port" or the socket's path, for messages. */
static void describe_addr(const struct sl_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	const struct sockaddr *sa = (const struct sockaddr *)&a->sa;
	if (sa->sa_family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		if (path[0] == '\0') /* abstract: as named, "@..." (NUL-padded by calloc) */
			snprintf(buf, len, "@%s", path + 1);
		else
			snprintf(buf, len, "%s", path);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

/* Connects to SL->addrs[SL->addr] (closing what the last attempt left). */
static void attempt(struct srvlogin *sl)
{
	close_conn(sl);
	const struct sl_addr *a = &sl->addrs[sl->addr];
	describe_addr(a, sl->err.where, sizeof(sl->err.where));
	if (sl->has_timeout)
		evtimer_add(&sl->timer, &sl->timeout); /* each address has its own */
	sl->state = SL_CONNECTING;
	sl->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sl->fd < 0) {
		sl_fail(sl, SLF_ADDRESS, "08006", "could not create a socket: %s", strerror(errno));
		return;
	}
	if (connect(sl->fd, (const struct sockaddr *)&a->sa, a->len) != 0 && errno != EINPROGRESS) {
		sl_fail(sl, SLF_ADDRESS, "08006", "%s", strerror(errno));
		return;
	}
	sl_wait(sl, EV_WRITE);
}

/* ---- executor jobs ------------------------------------------------------------------- */

static void job_free(struct sl_job *job)
{
	free(job->host);
	free(job->rootcert);
	free(job->cert);
	free(job->key);
	free(job->crl);
	free(job->crldir);
	free(job->ciphers);
	free(job->ciphersuites);
	free_secret(job->password);
	if (job->ctx)
		SSL_CTX_free(job->ctx);
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
}

/* The OpenSSL error queue's last entry into ERR (this thread's). */
static void ssl_err(char *err, size_t len, const char *what, const char *file)
{
	char e[256] = "unknown error";
	unsigned long code = ERR_peek_last_error();
	if (code)
		ERR_error_string_n(code, e, sizeof(e));
	ERR_clear_error();
	snprintf(err, len, "%s \"%s\": %s", what, file, e);
}

/* libpq's rule for the private key file KEY: a regular file, neither group nor world
 * access (0600 or less), or 0640 or less when root owns it. False with the reason in ERR. */
static bool key_file_ok(const char *key, char *err, size_t errlen)
{
	struct stat st;
	if (stat(key, &st) != 0) {
		snprintf(err, errlen, "certificate present, but not private key file \"%s\": %s", key,
			 strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "private key file \"%s\" is not a regular file", key);
		return false;
	}
	if (st.st_uid == 0 ? st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)
			   : st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
			 "private key file \"%s\" has group or world access; file must have "
			 "permissions u=rw (0600) or less if owned by the current user, or "
			 "permissions u=rw,g=r (0640) or less if owned by root",
			 key);
		return false;
	}
	return true;
}

/* JOB's revocation lists (sslcrl, sslcrldir) into CTX's store, which then checks every
 * certificate of the chain (libpq's flags). False with the reason in JOB->err. */
static bool load_crls(struct sl_job *job, SSL_CTX *ctx)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	if (job->crl && X509_STORE_load_file(store, job->crl) != 1) {
		ssl_err(job->err, sizeof(job->err), "could not load SSL certificate revocation list file",
			job->crl);
		return false;
	}
	if (job->crldir && X509_STORE_load_path(store, job->crldir) != 1) {
		ssl_err(job->err, sizeof(job->err),
			"could not use SSL certificate revocation list directory", job->crldir);
		return false;
	}
	if (X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL) != 1) {
		snprintf(job->err, sizeof(job->err), "could not enable certificate revocation checks");
		return false;
	}
	return true;
}

/* The client TLS context for JOB's settings (libpq's rules, see srvlogin.h). */
static bool build_ctx(struct sl_job *job)
{
	ERR_clear_error();
	SSL_CTX *ctx = job->ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx ||
	    SSL_CTX_set_min_proto_version(ctx, job->tls_min ? job->tls_min : TLS1_2_VERSION) != 1 ||
	    (job->tls_max && SSL_CTX_set_max_proto_version(ctx, job->tls_max) != 1)) {
		snprintf(job->err, sizeof(job->err), "could not create a TLS context");
		return false;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	char why[256];
	if ((job->ciphers && !tls_set_cipher_list(ctx, job->ciphers, why, sizeof(why))) ||
	    (job->ciphersuites && !tls_set_ciphersuites(ctx, job->ciphersuites, why, sizeof(why)))) {
		snprintf(job->err, sizeof(job->err), "could not set the TLS ciphers: %s", why);
		return false;
	}
	/* libpq: require verifies as verify-ca when the root certificate file exists */
	bool verify = job->mode >= SRVLOGIN_SSL_VERIFY_CA ||
		      (job->mode == SRVLOGIN_SSL_REQUIRE && job->rootcert &&
		       access(job->rootcert, R_OK) == 0);
	if (verify) {
		if (!job->rootcert) {
			snprintf(job->err, sizeof(job->err),
				 "sslmode verify-ca and verify-full need sslrootcert");
			return false;
		}
		if (SSL_CTX_load_verify_locations(ctx, job->rootcert, NULL) != 1) {
			ssl_err(job->err, sizeof(job->err), "could not read root certificate file",
				job->rootcert);
			return false;
		}
		if ((job->crl || job->crldir) && !load_crls(job, ctx))
			return false;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (job->cert || job->key) {
		if (!job->cert || !job->key) {
			snprintf(job->err, sizeof(job->err), "sslcert and sslkey go together");
			return false;
		}
		if (SSL_CTX_use_certificate_chain_file(ctx, job->cert) != 1) {
			ssl_err(job->err, sizeof(job->err), "could not load certificate file", job->cert);
			return false;
		}
		if (!key_file_ok(job->key, job->err, sizeof(job->err)))
			return false;
		if (SSL_CTX_use_PrivateKey_file(ctx, job->key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_err(job->err, sizeof(job->err), "could not load private key file", job->key);
			return false;
		}
	}
	return true;
}

/* Resolves HOST:PORT into ADDRS (at most SL_MAX_ADDRS). NUMERIC: no look-up (never
 * blocks). False with the reason in ERR. */
static bool resolve(const char *host, int port, bool numeric, struct sl_addr *addrs, int *naddrs,
		    char *err, size_t errlen)
{
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = numeric ? AI_NUMERICHOST : 0};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "could not translate host name \"%s\" to address: %s", host,
			 gai_strerror(rc));
		return false;
	}
	*naddrs = 0;
	for (struct addrinfo *ai = res; ai && *naddrs < SL_MAX_ADDRS; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(addrs[0].sa))
			continue;
		memcpy(&addrs[*naddrs].sa, ai->ai_addr, ai->ai_addrlen);
		addrs[*naddrs].len = (socklen_t)ai->ai_addrlen;
		(*naddrs)++;
	}
	freeaddrinfo(res);
	if (*naddrs == 0) {
		snprintf(err, errlen, "host name \"%s\" has no address", host);
		return false;
	}
	return true;
}

static void job_fn(struct exec_job *ej)
{
	struct sl_job *job = ej->arg;
	if (job->resolve) {
		job->ok = resolve(job->host, job->port, false, job->addrs, &job->naddrs, job->err,
				  sizeof(job->err)) &&
			  (!job->need_ctx || build_ctx(job));
		return;
	}
	job->ok = scram_derive_client_key(job->password, job->salt, job->salt_len, job->iterations,
					  &job->keys, job->client_key);
}

/* Takes the addresses and context of a resolve JOB, then the first attempt. */
static void resolved(struct srvlogin *sl, struct sl_job *job)
{
	if (!job->ok) {
		snprintf(sl->err.reason, sizeof(sl->err.reason), "%s", job->err);
		snprintf(sl->err.sqlstate, sizeof(sl->err.sqlstate), "08006");
		fail_now(sl, SLF_FINAL);
		return;
	}
	sl->addrs = malloc(sizeof(*sl->addrs) * (size_t)job->naddrs);
	if (!sl->addrs) {
		sl_fail(sl, SLF_FINAL, "08006", "out of memory");
		return;
	}
	memcpy(sl->addrs, job->addrs, sizeof(*sl->addrs) * (size_t)job->naddrs);
	sl->naddrs = job->naddrs;
	sl->ctx = job->ctx;
	job->ctx = NULL;
	sl->addr = 0;
	attempt(sl);
}

static void job_done(struct exec_job *ej)
{
	struct sl_job *job = ej->arg;
	struct srvlogin *sl = job->sl;
	if (!sl) {
		job_free(job); /* abandoned */
		return;
	}
	sl->job = NULL;
	if (job->resolve) {
		resolved(sl, job);
	} else if (!job->ok) {
		sl_fail(sl, SLF_FINAL, "08006", "could not derive the SCRAM keys of the password");
	} else {
		sl->state = SL_AUTH;
		if (sasl_send_final(sl, job->client_key, job->keys.server_key))
			pump(sl);
	}
	job_free(job);
}

static void job_submit(struct srvlogin *sl, struct sl_job *job)
{
	job->sl = sl;
	job->job = (struct exec_job){.fn = job_fn, .done = job_done, .arg = job};
	sl->job = job;
	exec_submit(sl->ex, &job->job);
}

/* ---- the API ------------------------------------------------------------------------- */

/* Checks P; the reason in ERR when it is unusable. */
static bool params_ok(const struct srvlogin_params *p, char *err, size_t errlen)
{
	const char *why = NULL;
	if (!p->user || !*p->user)
		why = "no user";
	else if ((p->cred == SRVLOGIN_PASSWORD || p->cred == SRVLOGIN_MD5_SECRET) && !p->secret)
		why = "no password or secret";
	else if (p->cred == SRVLOGIN_MD5_SECRET && auth_secret_kind(p->secret) != SECRET_MD5)
		why = "not an md5 secret (\"md5\" and 32 lower-case hex digits)";
	else if (p->cred == SRVLOGIN_SCRAM_KEYS &&
		 (p->keys.iterations < 1 || p->keys.salt_len < 1 || p->keys.salt_len > SCRAM_MAX_SALT))
		why = "SCRAM keys without a salt or an iteration count";
	else if (p->port < 0 || p->port > 65535)
		why = "port out of range";
	if (why)
		snprintf(err, errlen, "server login: %s", why);
	return why == NULL;
}

/* The startup packet of P into B; false if it is longer than PostgreSQL accepts. */
static bool build_startup(struct pbuf *b, const struct srvlogin_params *p)
{
	proto_begin(b, 0);
	proto_put_u32(b, PROTO_V3);
	proto_put_str(b, "user");
	proto_put_str(b, p->user);
	proto_put_str(b, "database");
	proto_put_str(b, p->dbname && *p->dbname ? p->dbname : p->user);
	for (int i = 0; i < p->nparams; i++) {
		if (!p->names[i] || !*p->names[i] || !p->values[i])
			continue;
		proto_put_str(b, p->names[i]);
		proto_put_str(b, p->values[i]);
	}
	proto_put_u8(b, 0);
	proto_end(b);
	return !b->failed && b->len <= PROTO_STARTUP_MAX;
}

/* The unix socket DIR/.s.PGSQL.PORT as SL's one address; a DIR starting with '@' names an
 * abstract socket (libpq's, as PostgreSQL's getaddrinfo_unix: the '@' becomes a NUL, the
 * address is as long as the path, no NUL after it). */
static bool unix_addr(struct srvlogin *sl)
{
	struct sockaddr_un *un;
	sl->addrs = calloc(1, sizeof(*sl->addrs));
	if (!sl->addrs)
		return false;
	un = (struct sockaddr_un *)&sl->addrs[0].sa;
	un->sun_family = AF_UNIX;
	int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", sl->host, sl->port);
	if (n < 0 || (size_t)n >= sizeof(un->sun_path))
		return false;
	bool abstract = un->sun_path[0] == '@';
	if (abstract)
		un->sun_path[0] = '\0';
	sl->addrs[0].len =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + (abstract ? 0 : 1));
	sl->naddrs = 1;
	return true;
}

struct srvlogin *srvlogin_start(struct event_base *base, executor_t *ex,
				const struct srvlogin_params *p, srvlogin_done_fn done, void *arg,
				char *err, size_t errlen)
{
	if (!params_ok(p, err, errlen))
		return NULL;
	struct srvlogin *sl = calloc(1, sizeof(*sl));
	if (!sl)
		goto nomem;
	sl->fd = -1;
	sl->base = base;
	sl->ex = ex;
	sl->done = done;
	sl->done_arg = arg;
	pbuf_init(&sl->startup);
	pbuf_init(&sl->out);
	pbuf_init(&sl->params);
	event_assign(&sl->io, base, -1, 0, on_io, sl);
	evtimer_assign(&sl->timer, base, on_timeout, sl);
	event_assign(&sl->done_ev, base, -1, 0, on_done, sl);
	bool by_addr = p->hostaddr && *p->hostaddr;
	sl->host = strdup(by_addr ? p->hostaddr
			  : p->host && *p->host ? p->host : SRVLOGIN_DEFAULT_SOCKET_DIR);
	sl->tls_name = by_addr ? dup_or_null(p->host) : sl->host ? strdup(sl->host) : NULL;
	sl->port = p->port ? p->port : SRVLOGIN_DEFAULT_PORT;
	sl->user = strdup(p->user);
	sl->sslmode = p->sslmode;
	sl->cbind = p->channel_binding;
	sl->sslrootcert = dup_or_null(p->sslrootcert);
	sl->sslcert = dup_or_null(p->sslcert);
	sl->sslkey = dup_or_null(p->sslkey);
	sl->sslcrl = dup_or_null(p->sslcrl);
	sl->sslcrldir = dup_or_null(p->sslcrldir);
	sl->tls_min = p->tls_min;
	sl->tls_max = p->tls_max;
	sl->cred = p->cred;
	sl->secret = p->secret ? strdup(p->secret) : NULL;
	sl->keys = p->keys;
	memcpy(sl->client_key, p->client_key, SCRAM_KEY_LEN);
	sl->scram_max_iterations = p->scram_max_iterations > 0 ? p->scram_max_iterations
							      : SRVLOGIN_SCRAM_MAX_ITERATIONS;
	sl->in = malloc(SL_MAX_MSG + 1);
	if (!sl->host || !sl->user || !sl->in || (p->secret && !sl->secret) ||
	    (!by_addr && !sl->tls_name) || (by_addr && p->host && *p->host && !sl->tls_name) ||
	    ((p->sslrootcert && *p->sslrootcert) && !sl->sslrootcert) ||
	    ((p->sslcert && *p->sslcert) && !sl->sslcert) || ((p->sslkey && *p->sslkey) && !sl->sslkey) ||
	    ((p->sslcrl && *p->sslcrl) && !sl->sslcrl) ||
	    ((p->sslcrldir && *p->sslcrldir) && !sl->sslcrldir))
		goto nomem;
	if (!build_startup(&sl->startup, p)) {
		snprintf(err, errlen, "server login: the startup packet is longer than %u bytes",
			 PROTO_STARTUP_MAX);
		srvlogin_free(sl);
		return NULL;
	}
	if (p->connect_timeout > 0) {
		sl->has_timeout = true;
		sl->timeout.tv_sec = (time_t)p->connect_timeout;
		sl->timeout.tv_usec = (suseconds_t)((p->connect_timeout - (double)sl->timeout.tv_sec) * 1e6);
	}
	sl->unix_socket = !by_addr && (sl->host[0] == '/' || sl->host[0] == '@');
	sl->numeric = !sl->unix_socket && is_ip_literal(sl->host);
	if (by_addr && !sl->numeric) {
		snprintf(err, errlen, "server login: could not parse network address \"%s\"",
			 sl->host);
		srvlogin_free(sl);
		return NULL;
	}
	sl->tls_try = !sl->unix_socket && sl->sslmode >= SRVLOGIN_SSL_PREFER;
	snprintf(sl->err.sqlstate, sizeof(sl->err.sqlstate), "08006");
	if (sl->unix_socket) {
		if (!unix_addr(sl)) {
			snprintf(err, errlen, "server login: unix socket path too long in \"%s\"",
				 sl->host);
			srvlogin_free(sl);
			return NULL;
		}
		attempt(sl);
		return sl;
	}
	if (sl->numeric && sl->sslmode == SRVLOGIN_SSL_DISABLE) {
		struct sl_addr addrs[SL_MAX_ADDRS];
		if (!resolve(sl->host, sl->port, true, addrs, &sl->naddrs, err, errlen) ||
		    !(sl->addrs = malloc(sizeof(addrs[0]) * (size_t)sl->naddrs))) {
			srvlogin_free(sl);
			return NULL;
		}
		memcpy(sl->addrs, addrs, sizeof(addrs[0]) * (size_t)sl->naddrs);
		attempt(sl);
		return sl;
	}
	/* a host name to look up, or TLS files to read: the executor's */
	struct sl_job *job = calloc(1, sizeof(*job));
	if (!job)
		goto nomem;
	job->resolve = true;
	job->port = sl->port;
	job->mode = sl->sslmode;
	job->tls_min = sl->tls_min;
	job->tls_max = sl->tls_max;
	job->need_ctx = sl->sslmode != SRVLOGIN_SSL_DISABLE;
	job->host = strdup(sl->host);
	job->rootcert = dup_or_null(sl->sslrootcert);
	job->cert = dup_or_null(sl->sslcert);
	job->key = dup_or_null(sl->sslkey);
	job->crl = dup_or_null(sl->sslcrl);
	job->crldir = dup_or_null(sl->sslcrldir);
	job->ciphers = dup_or_null(p->ciphers);
	job->ciphersuites = dup_or_null(p->ciphersuites);
	if (!job->host || (sl->sslrootcert && !job->rootcert) || (sl->sslcert && !job->cert) ||
	    (sl->sslkey && !job->key) || (sl->sslcrl && !job->crl) ||
	    (sl->sslcrldir && !job->crldir) || (p->ciphers && *p->ciphers && !job->ciphers) ||
	    (p->ciphersuites && *p->ciphersuites && !job->ciphersuites)) {
		job_free(job);
		goto nomem;
	}
	sl->state = SL_RESOLVING;
	snprintf(sl->err.where, sizeof(sl->err.where), "%s:%d", sl->host, sl->port);
	if (sl->has_timeout)
		evtimer_add(&sl->timer, &sl->timeout);
	job_submit(sl, job);
	return sl;
nomem:
	snprintf(err, errlen, "server login: out of memory");
	if (sl)
		srvlogin_free(sl);
	return NULL;
}

bool srvlogin_ok(const struct srvlogin *sl) { return sl->state == SL_DONE; }

const struct srvlogin_error *srvlogin_error(const struct srvlogin *sl) { return &sl->err; }

uint32_t srvlogin_backend_pid(const struct srvlogin *sl) { return sl->be_pid; }

uint32_t srvlogin_backend_key(const struct srvlogin *sl) { return sl->be_key; }

bool srvlogin_have_backend_key(const struct srvlogin *sl) { return sl->have_key; }

char srvlogin_tx_status(const struct srvlogin *sl) { return sl->tx_status; }

bool srvlogin_tls(const struct srvlogin *sl) { return sl->tls_up; }

const char *srvlogin_mechanism(const struct srvlogin *sl) { return sl->mech; }

int srvlogin_nparams(const struct srvlogin *sl) { return sl->nparams; }

void srvlogin_param(const struct srvlogin *sl, int i, const char **name, const char **value)
{
	const char *p = (const char *)sl->params.data;
	for (int k = 0; k < i; k++) {
		p += strlen(p) + 1;
		p += strlen(p) + 1;
	}
	*name = p;
	*value = p + strlen(p) + 1;
}

const char *srvlogin_param_value(const struct srvlogin *sl, const char *name)
{
	const char *found = NULL, *n, *v;
	for (int i = 0; i < sl->nparams; i++) {
		srvlogin_param(sl, i, &n, &v);
		if (strcmp(n, name) == 0)
			found = v;
	}
	return found;
}

bool srvlogin_take(struct srvlogin *sl, int *fd, SSL **ssl)
{
	if (sl->state != SL_DONE || sl->taken)
		return false;
	*fd = sl->fd;
	*ssl = sl->ssl;
	sl->fd = -1;
	sl->ssl = NULL;
	sl->taken = true;
	return true;
}

void srvlogin_free(struct srvlogin *sl)
{
	if (!sl)
		return;
	close_conn(sl);
	evtimer_del(&sl->timer);
	event_del(&sl->done_ev);
	if (sl->ctx)
		SSL_CTX_free(sl->ctx);
	free(sl->addrs);
	free(sl->host);
	free(sl->tls_name);
	free(sl->user);
	free(sl->sslrootcert);
	free(sl->sslcert);
	free(sl->sslkey);
	free(sl->sslcrl);
	free(sl->sslcrldir);
	free_secret(sl->secret);
	free(sl->in);
	pbuf_free(&sl->startup);
	pbuf_free(&sl->out);
	pbuf_free(&sl->params);
	OPENSSL_cleanse(sl, sizeof(*sl));
	free(sl);
}

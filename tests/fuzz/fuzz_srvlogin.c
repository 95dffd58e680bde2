/* Fuzzes pgcoro's own server login (srvlogin.c) with what a server sends: each input is
 * one login, over a real unix socket or TCP connection to a listener the harness runs
 * (the module connects by itself), the harness playing the server. SCRAM answers that
 * depend on the login's random nonce are computed by the harness with pgcoro's own server
 * side, so an input can reach every step of every authentication path.
 *   byte 0   the login: bits 0-1 the credential (0, 3 the password "pencil", 1 its md5
 *            secret, 2 its SCRAM keys); bit 2 TCP (else the unix socket); bits 3-4 the
 *            sslmode over TCP (disable, prefer, require, allow); bit 5 the login is freed
 *            at the end of the script rather than left to fail; bit 6 the server's
 *            SCRAM secret has 2^31 - 1 iterations (past the login's default bound,
 *            SRVLOGIN_SCRAM_MAX_ITERATIONS: refused before any PBKDF2, else a timeout)
 *   then operations (op % 8), each followed by the loop until nothing moves:
 *   0  N+1 raw bytes (N the next byte) from the server
 *   1  AuthenticationSASL offering SCRAM-SHA-256 (next byte odd: also -PLUS)
 *   2  AuthenticationSASLContinue: the server-first-message answering the last
 *      SASLInitialResponse the login sent (nothing when it sent none)
 *   3  AuthenticationSASLFinal: the server-final-message for the login's client-final
 *      (an invalid signature when the proof does not verify)
 *   4  AuthenticationOk, ParameterStatus x2, BackendKeyData, ReadyForQuery
 *   5  AuthenticationMD5Password, the salt from the next 4 bytes
 *   6  the server closes the connection (a new one, a retry, is accepted)
 *   7  AuthenticationCleartextPassword
 * At the end the server closes every connection until the login ends (or the login is
 * freed); nothing may leak. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth.h"
#include "executor.h"
#include "loop.h"
#include "proto.h"
#include "scram.h"
#include "srvlogin.h"

#define PASSWORD "pencil"
#define USER "alice"
#define ITERATIONS 4
#define MAX_GOT 8192

static struct event_base *base;
static executor_t *ex;
static int unix_lfd = -1, tcp_lfd = -1, tcp_port;
static char sockdir[256];
static struct scram_keys keys;
static uint8_t client_key[SCRAM_KEY_LEN];
static char md5[36];

/* The server's side of the connection in use, and what the login sent on it. */
static int peer = -1;
static uint8_t got[MAX_GOT];
static size_t ngot;
static bool startup_seen; /* typed messages follow */
static size_t parsed;
static uint8_t last_p[2048]; /* the body of the last 'p' message */
static uint32_t last_plen;
static bool have_p;
static struct scram_server sst;
static bool finished;
static bool huge_iterations; /* byte 0, bit 6 */

static void die(const char *what)
{
	fprintf(stderr, "fuzz_srvlogin: %s: %s\n", what, errno ? strerror(errno) : "failed");
	abort();
}

static int listen_on(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, sa, len) != 0 || listen(fd, 16) != 0)
		die("listen");
	return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t salt[] = "srvlogin-salt";
	if (!scram_derive_client_key(PASSWORD, salt, (int)sizeof(salt) - 1, ITERATIONS, &keys,
				     client_key))
		die("keys");
	auth_md5_secret(PASSWORD, USER, md5);
	base = event_base_new();
	ex = base ? exec_new(base, 1) : NULL;
	if (!ex)
		die("event loop");
	snprintf(sockdir, sizeof(sockdir), "%s", fz_dir());
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.5432", sockdir);
	unix_lfd = listen_on((struct sockaddr *)&un, sizeof(un));
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	tcp_lfd = listen_on((struct sockaddr *)&in, sizeof(in));
	socklen_t len = sizeof(in);
	if (getsockname(tcp_lfd, (struct sockaddr *)&in, &len) != 0)
		die("getsockname");
	tcp_port = ntohs(in.sin_port);
	return 0;
}

static void peer_close(void)
{
	if (peer >= 0)
		close(peer);
	peer = -1;
	ngot = parsed = 0;
	startup_seen = have_p = false;
	memset(&sst, 0, sizeof(sst));
}

/* A connection waiting on either listener becomes the peer (the last one's closed). */
static bool accept_new(void)
{
	bool any = false;
	for (int i = 0; i < 2; i++) {
		int fd;
		while ((fd = accept4(i ? tcp_lfd : unix_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
			peer_close();
			peer = fd;
			sst.keys = keys;
			if (huge_iterations)
				sst.keys.iterations = 2147483647;
			any = true;
		}
	}
	return any;
}

/* Frames what the login sent: startup-style packets until the StartupMessage, typed
 * messages after it; keeps the last 'p' body. */
static void parse_got(void)
{
	struct proto_msg m;
	for (;;) {
		enum proto_frame f = startup_seen ? proto_next(got + parsed, ngot - parsed, 65536, &m)
						  : proto_next_startup(got + parsed, ngot - parsed, &m);
		if (f != PROTO_OK)
			return;
		parsed += m.size;
		if (!startup_seen) {
			/* an SSLRequest is 8 bytes; anything longer is the startup packet */
			startup_seen = m.len > 8;
		} else if (m.type == 'p' && m.blen <= sizeof(last_p)) {
			memcpy(last_p, m.body, m.blen);
			last_plen = m.blen;
			have_p = true;
		}
	}
}

/* Reads what the login sent; true if anything came. */
static bool drain(void)
{
	bool any = false;
	while (peer >= 0) {
		uint8_t buf[4096];
		ssize_t n = recv(peer, buf, sizeof(buf), 0);
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				peer_close(); /* the login closed it */
				any = true;
			}
			break;
		}
		any = true;
		size_t take = (size_t)n < MAX_GOT - ngot ? (size_t)n : MAX_GOT - ngot;
		memcpy(got + ngot, buf, take);
		ngot += take;
		parse_got();
	}
	return any;
}

static void settle(void)
{
	for (int quiet = 0, rounds = 0; quiet < 2 && rounds < 100000; rounds++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		bool moved = accept_new();
		moved |= drain();
		if (exec_pending(ex) > 0) {
			event_base_loop(base, EVLOOP_ONCE); /* the job's completion wakes it */
			quiet = 0;
			continue;
		}
		if (moved || event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) > 0)
			quiet = 0;
		else
			quiet++;
	}
}

static void send_buf(const void *data, size_t len)
{
	if (peer < 0)
		return;
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = send(peer, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			settle();
			if (peer < 0)
				return;
		} else {
			return; /* the login closed it */
		}
	}
}

static void send_pbuf(struct pbuf *b)
{
	if (!b->failed)
		send_buf(b->data, b->len);
	pbuf_reset(b);
}

/* Authentication 'R' CODE with DATA. */
static void send_auth(struct pbuf *b, uint32_t code, const void *data, size_t len)
{
	proto_build_auth(b, code, data, len);
	send_pbuf(b);
}

static void sasl_continue(struct pbuf *b)
{
	const char *mech;
	const uint8_t *data;
	uint32_t dlen;
	char out[512];
	if (!have_p || !proto_parse_sasl_initial(last_p, last_plen, &mech, &data, &dlen) ||
	    dlen == UINT32_MAX || !scram_server_first(&sst, (const char *)data, dlen, out, sizeof(out)))
		return;
	send_auth(b, AUTH_REQ_SASL_CONT, out, strlen(out));
}

static void sasl_final(struct pbuf *b)
{
	char out[512];
	if (!have_p)
		return;
	if (!scram_server_final(&sst, (const char *)last_p, last_plen, out, sizeof(out)))
		snprintf(out, sizeof(out), "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	send_auth(b, AUTH_REQ_SASL_FIN, out, strlen(out));
}

static void ready(struct pbuf *b)
{
	proto_build_auth(b, AUTH_REQ_OK, NULL, 0);
	proto_build_param_status(b, "server_version", "15.0");
	proto_build_param_status(b, "client_encoding", "UTF8");
	proto_build_backend_key(b, 4242, 0x12345678);
	proto_build_ready(b, 'I');
	send_pbuf(b);
}

static void on_done(struct srvlogin *sl, void *arg)
{
	finished = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	uint8_t cfg = fz_u8(&in);
	struct srvlogin_params p = {
	    .user = USER,
	    .dbname = "db",
	    .port = (cfg & 4) ? tcp_port : 5432,
	    .host = (cfg & 4) ? "127.0.0.1" : sockdir,
	    .scram_max_iterations = 0, /* the default bound */
	};
	huge_iterations = cfg & 64;
	static const enum srvlogin_sslmode modes[] = {SRVLOGIN_SSL_DISABLE, SRVLOGIN_SSL_PREFER,
						      SRVLOGIN_SSL_REQUIRE, SRVLOGIN_SSL_ALLOW};
	p.sslmode = modes[(cfg >> 3) & 3];
	switch (cfg & 3) {
	case 1:
		p.cred = SRVLOGIN_MD5_SECRET;
		p.secret = md5;
		break;
	case 2:
		p.cred = SRVLOGIN_SCRAM_KEYS;
		p.keys = keys;
		memcpy(p.client_key, client_key, SCRAM_KEY_LEN);
		break;
	default:
		p.cred = SRVLOGIN_PASSWORD;
		p.secret = PASSWORD;
		break;
	}
	const char *names[] = {"application_name"}, *values[] = {"fuzz"};
	p.nparams = 1;
	p.names = names;
	p.values = values;

	char err[256];
	finished = false;
	struct srvlogin *sl = srvlogin_start(base, ex, &p, on_done, NULL, err, sizeof(err));
	if (!sl)
		die(err);
	settle();
	struct pbuf b;
	pbuf_init(&b);
	while (in.n > 0 && !finished) {
		uint8_t op = fz_u8(&in) % 8;
		size_t n;
		const uint8_t *bytes;
		switch (op) {
		case 0:
			bytes = fz_bytes(&in, (size_t)fz_u8(&in) + 1, &n);
			send_buf(bytes, n);
			break;
		case 1:
			proto_begin(&b, 'R');
			proto_put_u32(&b, AUTH_REQ_SASL);
			if (fz_u8(&in) & 1)
				proto_put_str(&b, "SCRAM-SHA-256-PLUS");
			proto_put_str(&b, "SCRAM-SHA-256");
			proto_put_u8(&b, 0);
			proto_end(&b);
			send_pbuf(&b);
			break;
		case 2:
			sasl_continue(&b);
			break;
		case 3:
			sasl_final(&b);
			break;
		case 4:
			ready(&b);
			break;
		case 5:
			bytes = fz_bytes(&in, 4, &n);
			if (n == 4)
				send_auth(&b, AUTH_REQ_MD5, bytes, 4);
			break;
		case 6:
			peer_close();
			break;
		case 7:
			send_auth(&b, AUTH_REQ_PASSWORD, NULL, 0);
			break;
		}
		settle();
	}
	pbuf_free(&b);
	/* the end: the server hangs up (again, after a retry) until the login is over */
	for (int i = 0; i < 8 && !finished && !(cfg & 32); i++) {
		peer_close();
		settle();
	}
	if (!finished && !(cfg & 32)) {
		fprintf(stderr, "fuzz_srvlogin: the login never ended after its server left\n");
		abort();
	}
	if (getenv("PGCORO_FUZZ_TRACE")) /* checking what a seed does */
		fprintf(stderr, "fuzz_srvlogin: %s\n",
			!finished ? "freed before the end"
			: srvlogin_ok(sl) ? "logged in"
					  : srvlogin_error(sl)->reason);
	if (finished && srvlogin_ok(sl)) {
		int fd;
		SSL *ssl;
		if (!srvlogin_take(sl, &fd, &ssl) || srvlogin_take(sl, &fd, &ssl))
			die("srvlogin_take");
		if (ssl)
			SSL_free(ssl);
		close(fd);
	}
	srvlogin_free(sl);
	peer_close();
	settle(); /* an abandoned job's completion */
	return 0;
}

/* A client for the integration tests of srvlogin.c: logs in to a server with pgcoro's own
 * server login, then sends one simple Query over the socket it was handed (through its
 * TLS handle when there is one) and prints the answer.
 * Usage: srvlogin_client [option VALUE]...
 *   host hostaddr port dbname user sslmode sslrootcert sslcert sslkey sslcrl sslcrldir
 *   channel_binding (prefer, disable, require) timeout (seconds) query
 *   password PW          a plain password
 *   md5 SECRET           an md5 secret ("md5" + 32 hex)
 *   verifier V           a SCRAM verifier (salt, iterations, ServerKey) ...
 *   client_key HEX       ... with the ClientKey (64 hex digits)
 *   param NAME=VALUE     a startup parameter (repeatable)
 * Prints "ok tls=0|1 mech=MECHANISM|none pid=N key=0|1 tx=I", one "param NAME=VALUE" line per ParameterStatus, then one
 * "row VALUE..." line per row of the query's result, and exits 0; or prints
 * "error SQLSTATE where: reason" (or "query-error SQLSTATE: message") and exits 1; 2 for
 * usage errors. Frees everything (clean under LeakSanitizer). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "executor.h"
#include "proto.h"
#include "scram.h"
#include "srvlogin.h"

#define MAX_PARAMS 16

static const char *const modes[] = {"disable", "allow", "prefer", "require", "verify-ca",
				    "verify-full", NULL};

static void on_done(struct srvlogin *sl, void *arg)
{
	event_base_loopbreak(arg);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool parse_hex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

/* Blocking I/O on the handed-over connection. */
struct conn {
	int fd;
	SSL *ssl;
};

static bool put_all(struct conn *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		long r = c->ssl ? SSL_write(c->ssl, p, (int)n) : write(c->fd, p, n);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static bool get_all(struct conn *c, uint8_t *p, size_t n)
{
	while (n > 0) {
		long r = c->ssl ? SSL_read(c->ssl, p, (int)n) : read(c->fd, p, n);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sends SQL, prints the rows; 0 on success, 1 on an error or a broken connection. */
static int run_query(struct conn *c, const char *sql)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_query(&b, sql);
	bool sent = !b.failed && put_all(c, b.data, b.len);
	pbuf_free(&b);
	if (!sent) {
		printf("query-error 08006: could not send the query\n");
		return 1;
	}
	int rc = 0;
	for (;;) {
		uint8_t hdr[5];
		if (!get_all(c, hdr, 5)) {
			printf("query-error 08006: connection lost\n");
			return 1;
		}
		uint32_t len = be32(hdr + 1);
		if (len < 4 || len > (1u << 24)) {
			printf("query-error 08P01: bad message length\n");
			return 1;
		}
		uint8_t *body = malloc(len - 4 + 1);
		if (!body || !get_all(c, body, len - 4)) {
			free(body);
			printf("query-error 08006: connection lost\n");
			return 1;
		}
		uint32_t blen = len - 4;
		if (hdr[0] == 'D' && blen >= 2) {
			int n = body[0] << 8 | body[1];
			uint32_t pos = 2;
			printf("row");
			for (int i = 0; i < n && pos + 4 <= blen; i++) {
				int32_t vlen = (int32_t)be32(body + pos);
				pos += 4;
				if (vlen < 0) {
					printf(" NULL");
				} else if (pos + (uint32_t)vlen <= blen) {
					printf(" %.*s", vlen, (const char *)body + pos);
					pos += (uint32_t)vlen;
				}
			}
			printf("\n");
		} else if (hdr[0] == 'E') {
			const char *code = proto_error_field(body, blen, 'C');
			const char *msg = proto_error_field(body, blen, 'M');
			printf("query-error %s: %s\n", code ? code : "?", msg ? msg : "?");
			rc = 1;
		} else if (hdr[0] == 'Z') {
			free(body);
			return rc;
		}
		free(body);
	}
}

int main(int argc, char **argv)
{
	struct srvlogin_params p = {.cred = SRVLOGIN_PASSWORD};
	const char *names[MAX_PARAMS], *values[MAX_PARAMS];
	char *kv[MAX_PARAMS];
	const char *query = "SELECT current_user";
	bool have_key = false;
	int nkv = 0;
	p.names = names;
	p.values = values;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (strcmp(k, "host") == 0) {
			p.host = v;
		} else if (strcmp(k, "hostaddr") == 0) {
			p.hostaddr = v;
		} else if (strcmp(k, "sslcrl") == 0) {
			p.sslcrl = v;
		} else if (strcmp(k, "sslcrldir") == 0) {
			p.sslcrldir = v;
		} else if (strcmp(k, "channel_binding") == 0) {
			if (strcmp(v, "prefer") == 0) {
				p.channel_binding = SRVLOGIN_CB_PREFER;
			} else if (strcmp(v, "disable") == 0) {
				p.channel_binding = SRVLOGIN_CB_DISABLE;
			} else if (strcmp(v, "require") == 0) {
				p.channel_binding = SRVLOGIN_CB_REQUIRE;
			} else {
				fprintf(stderr, "unknown channel_binding %s\n", v);
				return 2;
			}
		} else if (strcmp(k, "port") == 0) {
			p.port = atoi(v);
		} else if (strcmp(k, "dbname") == 0) {
			p.dbname = v;
		} else if (strcmp(k, "user") == 0) {
			p.user = v;
		} else if (strcmp(k, "sslrootcert") == 0) {
			p.sslrootcert = v;
		} else if (strcmp(k, "sslcert") == 0) {
			p.sslcert = v;
		} else if (strcmp(k, "sslkey") == 0) {
			p.sslkey = v;
		} else if (strcmp(k, "timeout") == 0) {
			p.connect_timeout = atof(v);
		} else if (strcmp(k, "query") == 0) {
			query = v;
		} else if (strcmp(k, "password") == 0) {
			p.cred = SRVLOGIN_PASSWORD;
			p.secret = v;
		} else if (strcmp(k, "md5") == 0) {
			p.cred = SRVLOGIN_MD5_SECRET;
			p.secret = v;
		} else if (strcmp(k, "verifier") == 0) {
			p.cred = SRVLOGIN_SCRAM_KEYS;
			if (!scram_parse_verifier(v, &p.keys)) {
				fprintf(stderr, "not a SCRAM verifier: %s\n", v);
				return 2;
			}
		} else if (strcmp(k, "client_key") == 0) {
			if (!parse_hex(v, p.client_key, SCRAM_KEY_LEN)) {
				fprintf(stderr, "client_key: 64 hex digits\n");
				return 2;
			}
			have_key = true;
		} else if (strcmp(k, "sslmode") == 0) {
			int m = 0;
			while (modes[m] && strcmp(modes[m], v) != 0)
				m++;
			if (!modes[m]) {
				fprintf(stderr, "unknown sslmode %s\n", v);
				return 2;
			}
			p.sslmode = (enum srvlogin_sslmode)m;
		} else if (strcmp(k, "param") == 0 && nkv < MAX_PARAMS && strchr(v, '=')) {
			kv[nkv] = strdup(v);
			if (!kv[nkv])
				return 2;
			char *eq = strchr(kv[nkv], '=');
			*eq = '\0';
			names[nkv] = kv[nkv];
			values[nkv] = eq + 1;
			nkv++;
		} else {
			fprintf(stderr, "unknown option %s\n", k);
			return 2;
		}
	}
	p.nparams = nkv;
	if (p.cred == SRVLOGIN_SCRAM_KEYS && !have_key) {
		fprintf(stderr, "verifier needs client_key\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	int rc = 1;
	char err[256];
	struct event_base *base = event_base_new();
	executor_t *ex = base ? exec_new(base, 2) : NULL;
	struct srvlogin *sl = ex ? srvlogin_start(base, ex, &p, on_done, base, err, sizeof(err)) : NULL;
	if (!sl) {
		printf("error start: %s\n", ex ? err : "no event loop");
		goto out;
	}
	event_base_dispatch(base);
	if (!srvlogin_ok(sl)) {
		const struct srvlogin_error *e = srvlogin_error(sl);
		printf("error %s %s: %s%s\n", e->sqlstate, e->where, e->reason,
		       e->from_server ? " (server)" : "");
		goto out;
	}
	const char *mech = srvlogin_mechanism(sl);
	printf("ok tls=%d mech=%s pid=%u key=%d tx=%c\n", srvlogin_tls(sl) ? 1 : 0,
	       mech ? mech : "none", srvlogin_backend_pid(sl), srvlogin_have_backend_key(sl) ? 1 : 0,
	       srvlogin_tx_status(sl));
	for (int i = 0; i < srvlogin_nparams(sl); i++) {
		const char *n, *v;
		srvlogin_param(sl, i, &n, &v);
		printf("param %s=%s\n", n, v);
	}
	struct conn c;
	if (!srvlogin_take(sl, &c.fd, &c.ssl)) {
		printf("error take: the connection was not handed over\n");
		goto out;
	}
	/* blocking from here: the test's query is one round trip */
	fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
	rc = run_query(&c, query);
	static const uint8_t terminate[] = {'X', 0, 0, 0, 4};
	(void)put_all(&c, terminate, sizeof(terminate));
	if (c.ssl)
		SSL_free(c.ssl);
	close(c.fd);
out:
	fflush(stdout);
	srvlogin_free(sl);
	if (ex)
		exec_free(ex);
	if (base)
		event_base_free(base);
	for (int i = 0; i < nkv; i++)
		free(kv[i]);
	return rc;
}

/* Owns the server logins pgcoro makes itself (srvconnect.h): which credential the server
 * user's secret gives (an md5 secret; a SCRAM verifier with the ClientKey clientkey.h
 * kept, or without one: then only a server asking for no password takes it, as with
 * PgBouncer), the pool's libpq parameters read as srvlogin_params (hosts, ports, TLS
 * files, startup parameters, a replication connection's "replication"; what a login of
 * its own cannot honour fails it with the
 * reason), and the walk along the host list. The connection it ends with is server.c's
 * (server_adopt_conn's form); a failure carries the last attempt's SQLSTATE and reason. */
#include "srvconnect.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "clientkey.h"
#include "config.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "tls.h"

#define SC_MAX_HOSTS 64
#define SC_MAX_STARTUP 5 /* application_name, options, client_encoding, replication */

static struct runtime *rt;

struct srvconnect {
	struct srvlogin *sl;     /* the attempt in progress, or the successful one */
	srvconnect_done_fn done;
	void *arg;
	struct event fail_ev;    /* a failure before any attempt, reported from the loop */
	struct srvlogin_params p; /* all but host and port: pointers into CP and SECRET */
	struct pool_conn_params *cp; /* a copy of the caller's */
	char *secret;
	char *hostbuf, *portbuf; /* the lists, cut at their commas */
	const char *hosts[SC_MAX_HOSTS], *ports[SC_MAX_HOSTS];
	int nhosts, nports, next;
	const char *names[SC_MAX_STARTUP], *values[SC_MAX_STARTUP];
	const char **pnames, **pvalues; /* the server's parameters, once taken */
	struct srvlogin_error err;
	bool ok, taken;
};

void srvconnect_init(struct runtime *r)
{
	rt = r;
}

const char *srvconnect_secret(const char *user)
{
	/* The auth_file's entry. auth_query's secrets (fetched from PostgreSQL, cached) are
	 * to be consulted here as well, after it, so that a server login finds them. */
	return rt->auth ? auth_lookup(rt->auth, user) : NULL;
}

static const char *param(const struct pool_conn_params *cp, const char *kw)
{
	const char *v = NULL;
	for (int i = 0; cp->kw[i]; i++)
		if (strcmp(cp->kw[i], kw) == 0)
			v = cp->val[i]; /* the last one wins, as in a conninfo */
	return v;
}

bool srvconnect_wanted(const struct pool_conn_params *cp)
{
	if (param(cp, "password"))
		return false;
	const char *user = param(cp, "user");
	const char *secret = user ? srvconnect_secret(user) : NULL;
	if (!secret)
		return false;
	enum auth_secret_kind kind = auth_secret_kind(secret);
	return kind == SECRET_MD5 || kind == SECRET_SCRAM;
}

/* A copy of CP in one block; NULL without memory. */
static struct pool_conn_params *copy_params(const struct pool_conn_params *cp)
{
	int n = 0;
	size_t strings = 0;
	for (; cp->kw[n]; n++)
		strings += strlen(cp->kw[n]) + strlen(cp->val[n]) + 2;
	struct pool_conn_params *c =
		malloc(sizeof(*c) + 2 * ((size_t)n + 1) * sizeof(char *) + strings);
	if (!c)
		return NULL;
	c->kw = (const char **)(c + 1);
	c->val = c->kw + n + 1;
	char *w = (char *)(c->val + n + 1);
	for (int i = 0; i < n; i++) {
		c->kw[i] = w;
		w = stpcpy(w, cp->kw[i]) + 1;
		c->val[i] = w;
		w = stpcpy(w, cp->val[i]) + 1;
	}
	c->kw[n] = c->val[n] = NULL;
	c->host = cp->host;
	return c;
}

/* Cuts the comma-separated LIST (a copy of its own, into *BUF) into OUT; returns the
 * count (0 for NULL or an empty list, -1 past MAX or without memory). */
static int split(const char *list, char **buf, const char **out, int max)
{
	if (!list || !*list)
		return 0;
	if (!(*buf = strdup(list)))
		return -1;
	int n = 0;
	for (char *s = *buf, *comma;; s = comma + 1) {
		if (n == max)
			return -1;
		out[n++] = s;
		if (!(comma = strchr(s, ',')))
			break;
		*comma = '\0';
	}
	return n;
}

static const char *const ssl_modes[] = {
	[SRVLOGIN_SSL_DISABLE] = "disable", [SRVLOGIN_SSL_ALLOW] = "allow",
	[SRVLOGIN_SSL_PREFER] = "prefer",   [SRVLOGIN_SSL_REQUIRE] = "require",
	[SRVLOGIN_SSL_VERIFY_CA] = "verify-ca", [SRVLOGIN_SSL_VERIFY_FULL] = "verify-full",
};

/* libpq keywords a login of its own leaves aside: TCP tuning (pgcoro's own socket options
 * apply to every server), files libpq would read for a password pgcoro has, and TLS
 * details its own TLS settings cover. */
static const char *const ignored[] = {
	"passfile", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
	"tcp_user_timeout", "sslcompression", "sslcrl", "sslcrldir", "sslsni", "sslpassword",
	"load_balance_hosts",
	"krbsrvname", "gsslib", "fallback_application_name",
};

static bool is_ignored(const char *kw, const char *val)
{
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (strcmp(kw, ignored[i]) == 0)
			return true;
	/* the defaults, or what asks nothing of the login */
	return (strcmp(kw, "target_session_attrs") == 0 && strcmp(val, "any") == 0) ||
	       (strcmp(kw, "gssencmode") == 0 && strcmp(val, "require") != 0) ||
	       (strcmp(kw, "channel_binding") == 0 && strcmp(val, "require") != 0);
}

static void fail_own(struct srvconnect *sc, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records a failure of SC's own (no server involved) and reports it from the loop. */
static void fail_own(struct srvconnect *sc, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sc->err.reason, sizeof(sc->err.reason), fmt, ap);
	va_end(ap);
	snprintf(sc->err.sqlstate, sizeof(sc->err.sqlstate), "%s", sqlstate);
	sc->err.where[0] = '\0';
	sc->err.from_server = false;
	event_active(&sc->fail_ev, EV_TIMEOUT, 0);
}

static void on_fail_ev(evutil_socket_t fd, short what, void *arg)
{
	struct srvconnect *sc = arg;
	sc->done(sc, sc->arg);
}

/* Reads SC's copied parameters into SC->p; false (fail_own called) for one it cannot
 * honour. */
static bool read_params(struct srvconnect *sc)
{
	const struct pool_conn_params *cp = sc->cp;
	struct srvlogin_params *p = &sc->p;
	const char *host = NULL, *hostaddr = NULL, *port = NULL;
	const char *app = NULL, *fallback_app = NULL;
	p->sslmode = SRVLOGIN_SSL_PREFER; /* libpq's default */
	for (int i = 0; cp->kw[i]; i++) {
		const char *kw = cp->kw[i], *v = cp->val[i];
		if (strcmp(kw, "host") == 0)
			host = v;
		else if (strcmp(kw, "hostaddr") == 0)
			hostaddr = v;
		else if (strcmp(kw, "port") == 0)
			port = v;
		else if (strcmp(kw, "dbname") == 0)
			p->dbname = v;
		else if (strcmp(kw, "user") == 0)
			p->user = v;
		else if (strcmp(kw, "sslrootcert") == 0)
			p->sslrootcert = v;
		else if (strcmp(kw, "sslcert") == 0)
			p->sslcert = v;
		else if (strcmp(kw, "sslkey") == 0)
			p->sslkey = v;
		else if (strcmp(kw, "ssl_min_protocol_version") == 0 ||
			 strcmp(kw, "ssl_max_protocol_version") == 0) {
			int version = tls_version_of_libpq(v);
			if (!version) {
				fail_own(sc, "08006", "invalid %s value: \"%s\"", kw, v);
				return false;
			}
			*(strcmp(kw, "ssl_min_protocol_version") == 0 ? &p->tls_min : &p->tls_max) = version;
		} else if (strcmp(kw, "connect_timeout") == 0)
			p->connect_timeout = atof(v);
		else if (strcmp(kw, "application_name") == 0)
			app = v;
		else if (strcmp(kw, "fallback_application_name") == 0)
			fallback_app = v;
		else if ((strcmp(kw, "options") == 0 || strcmp(kw, "client_encoding") == 0 ||
			  strcmp(kw, "replication") == 0) &&
			 p->nparams < SC_MAX_STARTUP - 1) {
			if (strcmp(kw, "client_encoding") == 0 && strcmp(v, "auto") == 0)
				continue; /* libpq's "from the locale": the server's default here */
			sc->names[p->nparams] = kw;
			sc->values[p->nparams++] = v;
		} else if (strcmp(kw, "sslmode") == 0) {
			size_t m = 0;
			while (m < sizeof(ssl_modes) / sizeof(ssl_modes[0]) && strcmp(ssl_modes[m], v) != 0)
				m++;
			if (m == sizeof(ssl_modes) / sizeof(ssl_modes[0])) {
				fail_own(sc, "08001", "invalid sslmode value: \"%s\"", v);
				return false;
			}
			p->sslmode = (enum srvlogin_sslmode)m;
		} else if (!is_ignored(kw, v)) {
			fail_own(sc, "08001",
				 "%s=%s cannot be used when logging in with user \"%s\"'s md5 or SCRAM "
				 "secret (pgcoro's own server login): give the database entry a "
				 "password, or the auth_file a plain one",
				 kw, v, p->user ? p->user : "");
			return false;
		}
	}
	if (app || fallback_app) {
		sc->names[p->nparams] = "application_name";
		sc->values[p->nparams++] = app ? app : fallback_app;
	}
	p->names = sc->names;
	p->values = sc->values;
	/* hostaddr, when given, is where the connection goes (libpq's meaning) */
	sc->nhosts = split(hostaddr ? hostaddr : host, &sc->hostbuf, sc->hosts, SC_MAX_HOSTS);
	sc->nports = split(port, &sc->portbuf, sc->ports, SC_MAX_HOSTS);
	if (sc->nhosts < 0 || sc->nports < 0) {
		fail_own(sc, "08001", "too many hosts or ports in the database entry (or no memory)");
		return false;
	}
	if (sc->nhosts == 0) {
		sc->hosts[0] = NULL; /* srvlogin's default socket directory */
		sc->nhosts = 1;
	}
	if (sc->nports > 1 && sc->nports != sc->nhosts) {
		fail_own(sc, "08001", "could not match %d port numbers to %d hosts", sc->nports,
			 sc->nhosts);
		return false;
	}
	return true;
}

/* The credential of the server user's secret into SC->p; false (fail_own called) when
 * there is none to use. */
static bool read_secret(struct srvconnect *sc)
{
	struct srvlogin_params *p = &sc->p;
	const char *secret = p->user ? srvconnect_secret(p->user) : NULL;
	enum auth_secret_kind kind = secret ? auth_secret_kind(secret) : SECRET_PLAIN;
	if (secret && kind == SECRET_MD5) {
		if (!(sc->secret = strdup(secret))) {
			fail_own(sc, "53200", "out of memory");
			return false;
		}
		p->cred = SRVLOGIN_MD5_SECRET;
		p->secret = sc->secret;
		return true;
	}
	if (secret && kind == SECRET_SCRAM && scram_parse_verifier(secret, &p->keys)) {
		if (clientkey_find(p->user, &p->keys, p->client_key)) {
			p->cred = SRVLOGIN_SCRAM_KEYS;
		} else {
			p->cred = SRVLOGIN_SCRAM_NO_KEY; /* a server asking for no password still will */
			log_debug("server login as %s: no client has logged in with SCRAM yet: its keys "
				  "are not known", p->user);
		}
		return true;
	}
	fail_own(sc, "28P01", "no md5 or SCRAM secret for user \"%s\" any more (reload)",
		 p->user ? p->user : "");
	return false;
}

static void sl_done(struct srvlogin *sl, void *arg);

/* Starts the attempt on the next host; false when none is left or it could not start
 * (SC->err says why). */
static bool next_host(struct srvconnect *sc)
{
	while (sc->next < sc->nhosts) {
		int i = sc->next++;
		sc->p.host = sc->hosts[i];
		const char *port = sc->nports == 0 ? NULL : sc->ports[sc->nports == 1 ? 0 : i];
		sc->p.port = port && *port ? atoi(port) : 0;
		char err[256];
		sc->sl = srvlogin_start(rt->base, rt->exec, &sc->p, sl_done, sc, err, sizeof(err));
		if (sc->sl)
			return true;
		snprintf(sc->err.sqlstate, sizeof(sc->err.sqlstate), "08001");
		snprintf(sc->err.reason, sizeof(sc->err.reason), "%s", err);
		snprintf(sc->err.where, sizeof(sc->err.where), "%s",
			 sc->p.host ? sc->p.host : SRVLOGIN_DEFAULT_SOCKET_DIR);
		sc->err.from_server = false;
	}
	return false;
}

static void sl_done(struct srvlogin *sl, void *arg)
{
	struct srvconnect *sc = arg;
	if (srvlogin_ok(sl)) {
		sc->ok = true;
		sc->done(sc, sc->arg);
		return;
	}
	sc->err = *srvlogin_error(sl);
	srvlogin_free(sl);
	sc->sl = NULL;
	if (sc->next < sc->nhosts)
		log_debug("server login to %s as %s failed: %s: trying the next host", sc->err.where,
			  sc->p.user, sc->err.reason);
	if (next_host(sc))
		return;
	sc->done(sc, sc->arg);
}

struct srvconnect *srvconnect_start(const struct pool_conn_params *cp, srvconnect_done_fn done,
				    void *arg)
{
	struct srvconnect *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (!(sc->cp = copy_params(cp))) {
		free(sc);
		return NULL;
	}
	sc->done = done;
	sc->arg = arg;
	event_assign(&sc->fail_ev, rt->base, -1, 0, on_fail_ev, sc);
	if (!read_params(sc) || !read_secret(sc))
		return sc; /* fails from the loop */
	if (!next_host(sc))
		event_active(&sc->fail_ev, EV_TIMEOUT, 0);
	return sc;
}

bool srvconnect_ok(const struct srvconnect *sc)
{
	return sc->ok;
}

const struct srvlogin_error *srvconnect_error(const struct srvconnect *sc)
{
	return &sc->err;
}

bool srvconnect_take(struct srvconnect *sc, struct server_conn *out)
{
	if (!sc->ok || sc->taken)
		return false;
	int n = srvlogin_nparams(sc->sl);
	sc->pnames = calloc((size_t)n + 1, sizeof(char *));
	sc->pvalues = calloc((size_t)n + 1, sizeof(char *));
	if (!sc->pnames || !sc->pvalues)
		return false;
	for (int i = 0; i < n; i++)
		srvlogin_param(sc->sl, i, &sc->pnames[i], &sc->pvalues[i]);
	*out = (struct server_conn){
		.backend_pid = srvlogin_backend_pid(sc->sl),
		.cancel_key = srvlogin_backend_key(sc->sl),
		.have_key = srvlogin_have_backend_key(sc->sl),
		.nparams = n,
		.names = sc->pnames,
		.values = sc->pvalues,
	};
	if (!srvlogin_take(sc->sl, &out->fd, &out->ssl))
		return false;
	sc->taken = true;
	return true;
}

void srvconnect_free(struct srvconnect *sc)
{
	if (!sc)
		return;
	event_del(&sc->fail_ev);
	if (sc->sl)
		srvlogin_free(sc->sl);
	OPENSSL_cleanse(sc->p.client_key, sizeof(sc->p.client_key));
	OPENSSL_cleanse(&sc->p.keys, sizeof(sc->p.keys));
	if (sc->secret) {
		OPENSSL_cleanse(sc->secret, strlen(sc->secret));
		free(sc->secret);
	}
	free(sc->pnames);
	free(sc->pvalues);
	free(sc->hostbuf);
	free(sc->portbuf);
	free(sc->cp);
	free(sc);
}

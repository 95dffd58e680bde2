/* Owns the server logins pgcoro makes itself (srvconnect.h): when one is wanted (a secret
 * libpq cannot use, or ciphers libpq cannot set), which credential it uses (the entry's
 * password or the auth_file's plain one; an md5 secret; a SCRAM verifier with the
 * ClientKey clientkey.h kept, or without one: then only a server asking for no password
 * takes it, as with PgBouncer; none), the passwords PAM or LDAP accepted (the store
 * srvconnect_secret reads first), the server_tls_ciphers and server_tls13_ciphers in
 * force, the pool's libpq parameters read as srvlogin_params with libpq's meaning
 * (host and hostaddr lists paired, ports, TLS files and revocation lists, channel binding,
 * startup parameters, a replication connection's "replication"; a keyword a login of its
 * own cannot honour fails it with the reason, never is ignored when it would make the
 * login weaker than libpq's), and the
 * walk along the host list. The connection it ends with is server.c's
 * (server_adopt_conn's form); a failure carries the last attempt's SQLSTATE and reason. */
#include "srvconnect.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "authcache.h"
#include "authquery.h"
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
	struct srvlogin_params p; /* all but host, hostaddr, port: pointers into CP and SECRET */
	struct pool_conn_params *cp; /* a copy of the caller's */
	char *secret;
	char *ciphers, *ciphersuites; /* the config's when the login started; NULL: OpenSSL's */
	bool for_ciphers; /* wanted for them (srvconnect_wanted): else for the secret */
	char *hostbuf, *addrbuf, *portbuf; /* the lists, cut at their commas */
	const char *hosts[SC_MAX_HOSTS], *addrs[SC_MAX_HOSTS], *ports[SC_MAX_HOSTS];
	int nhosts, naddrs, nports, nentries, next; /* entries: host[i] and hostaddr[i] paired */
	const char *names[SC_MAX_STARTUP], *values[SC_MAX_STARTUP];
	const char **pnames, **pvalues; /* the server's parameters, once taken */
	struct srvlogin_error err;
	bool ok, taken;
};

void srvconnect_init(struct runtime *r)
{
	rt = r;
}

/* The authcache source of the passwords PAM or LDAP accepted: no auth_query source
 * (authquery.c's start with a digit) is named so. */
#define ACCEPTED_SOURCE "accepted"

const char *srvconnect_secret(const char *database, const char *user)
{
	/* PAM's or LDAP's, else the auth_file's entry, else what DATABASE's auth_query found */
	const char *s = authcache_get(ACCEPTED_SOURCE, user);
	return s ? s : authquery_secret(database, user);
}

bool srvconnect_keep_password(const char *user, const char *password)
{
	const char *old = authcache_get(ACCEPTED_SOURCE, user);
	if (old && strcmp(old, password) == 0)
		return true;
	bool had = old != NULL, kept = authcache_put(ACCEPTED_SOURCE, user, password);
	if (kept || had) /* another password, or none any more */
		pool_secret_changed(user); /* a pool made before takes it */
	return kept;
}

static const char *param(const struct pool_conn_params *cp, const char *kw)
{
	const char *v = NULL;
	for (int i = 0; cp->kw[i]; i++)
		if (strcmp(cp->kw[i], kw) == 0)
			v = cp->val[i]; /* the last one wins, as in a conninfo */
	return v;
}

/* Whether a connection made with CP may use TLS: its sslmode is not disable, and a host
 * (or hostaddr) is reached over TCP (libpq never uses TLS on a unix socket). */
static bool may_use_tls(const struct pool_conn_params *cp)
{
	const char *mode = param(cp, "sslmode"), *host = param(cp, "host");
	if (mode && strcmp(mode, "disable") == 0)
		return false;
	if (param(cp, "hostaddr"))
		return true;
	for (const char *h = host; h && *h;) {
		if (*h != '/' && *h != '@' && *h != ',')
			return true;
		h += strcspn(h, ",");
		h += *h == ',';
	}
	return false; /* only unix sockets (none named: libpq's default directory) */
}

/* Whether the config in force sets ciphers libpq cannot: server_tls_ciphers other than
 * OpenSSL's list, or server_tls13_ciphers. */
static bool ciphers_set(void)
{
	return !tls_default_cipher_list(rt->cfg->server_tls_ciphers) ||
	       rt->cfg->server_tls13_ciphers[0];
}

bool srvconnect_wanted(const struct pool_conn_params *cp)
{
	if (ciphers_set() && may_use_tls(cp))
		return true;
	if (param(cp, "password"))
		return false;
	const char *user = param(cp, "user");
	const char *secret = user ? srvconnect_secret(cp->database, user) : NULL;
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
	c->database = cp->database;
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

static const char *const cbind_modes[] = {
	[SRVLOGIN_CB_PREFER] = "prefer", [SRVLOGIN_CB_DISABLE] = "disable",
	[SRVLOGIN_CB_REQUIRE] = "require",
};

/* libpq keywords a login of its own leaves aside, none of which makes a login safer: TCP
 * tuning (pgcoro's own socket options apply to every server), files libpq would read for
 * a password pgcoro has, SNI (always sent for a host name), sslpassword (an encrypted key
 * fails to load, and so the login), sslcompression (never used). */
static const char *const ignored[] = {
	"passfile", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
	"tcp_user_timeout", "sslcompression", "sslsni", "sslpassword",
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
	       (strcmp(kw, "gssencmode") == 0 && strcmp(val, "require") != 0);
}

/* libpq's parse_int_param: a decimal int, blanks around it allowed, nothing else. */
static bool parse_int(const char *v, int *out)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (end == v || errno != 0 || n != (int)n)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return false;
	*out = (int)n;
	return true;
}

/* The index of V in the NAMES table (N entries), or -1. */
static int mode_index(const char *const *names, size_t n, const char *v)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], v) == 0)
			return (int)i;
	return -1;
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

/* The host and hostaddr lists into SC's entries, paired by index as libpq pairs them,
 * and the port list checked against them (each port libpq's valid int, 1-65535); false
 * (fail_own called) for lists that do not match. */
static bool read_hosts(struct srvconnect *sc, const char *host, const char *hostaddr,
		       const char *port)
{
	sc->nhosts = split(host, &sc->hostbuf, sc->hosts, SC_MAX_HOSTS);
	sc->naddrs = split(hostaddr, &sc->addrbuf, sc->addrs, SC_MAX_HOSTS);
	sc->nports = split(port, &sc->portbuf, sc->ports, SC_MAX_HOSTS);
	if (sc->nhosts < 0 || sc->naddrs < 0 || sc->nports < 0) {
		fail_own(sc, "08001", "too many hosts or ports in the database entry (or no memory)");
		return false;
	}
	if (sc->naddrs > 0 && sc->nhosts > 0 && sc->nhosts != sc->naddrs) {
		fail_own(sc, "08001", "could not match %d host names to %d hostaddr values",
			 sc->nhosts, sc->naddrs);
		return false;
	}
	sc->nentries = sc->naddrs > 0 ? sc->naddrs : sc->nhosts;
	if (sc->nentries == 0)
		sc->nentries = 1; /* srvlogin's default socket directory */
	if (sc->nports > 1 && sc->nports != sc->nentries) {
		fail_own(sc, "08001", "could not match %d port numbers to %d hosts", sc->nports,
			 sc->nentries);
		return false;
	}
	for (int i = 0; i < sc->nports; i++) {
		int n;
		if (!*sc->ports[i])
			continue; /* the default */
		if (!parse_int(sc->ports[i], &n)) {
			fail_own(sc, "08001", "invalid integer value \"%s\" for connection option \"port\"",
				 sc->ports[i]);
			return false;
		}
		if (n < 1 || n > 65535) {
			fail_own(sc, "08001", "invalid port number: \"%s\"", sc->ports[i]);
			return false;
		}
	}
	return true;
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
	p->channel_binding = SRVLOGIN_CB_PREFER;
	p->user = param(cp, "user"); /* for the messages, whatever the keywords' order */
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
		else if (strcmp(kw, "password") == 0)
			p->secret = v; /* the entry's, or the auth_file's plain one (pool.c) */
		else if (strcmp(kw, "sslrootcert") == 0)
			p->sslrootcert = v;
		else if (strcmp(kw, "sslcert") == 0)
			p->sslcert = v;
		else if (strcmp(kw, "sslkey") == 0)
			p->sslkey = v;
		else if (strcmp(kw, "sslcrl") == 0)
			p->sslcrl = v;
		else if (strcmp(kw, "sslcrldir") == 0)
			p->sslcrldir = v;
		else if (strcmp(kw, "ssl_min_protocol_version") == 0 ||
			 strcmp(kw, "ssl_max_protocol_version") == 0) {
			int version = tls_version_of_libpq(v);
			if (!version) {
				fail_own(sc, "08006", "invalid %s value: \"%s\"", kw, v);
				return false;
			}
			*(strcmp(kw, "ssl_min_protocol_version") == 0 ? &p->tls_min : &p->tls_max) = version;
		} else if (strcmp(kw, "connect_timeout") == 0) {
			int t;
			if (!parse_int(v, &t)) {
				fail_own(sc, "08001",
					 "invalid integer value \"%s\" for connection option \"connect_timeout\"",
					 v);
				return false;
			}
			/* libpq's: 2 s at least (rounding must not make it fail at once), <= 0 none */
			p->connect_timeout = t <= 0 ? 0 : t < 2 ? 2 : t;
		} else if (strcmp(kw, "application_name") == 0)
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
			int m = mode_index(ssl_modes, sizeof(ssl_modes) / sizeof(ssl_modes[0]), v);
			if (m < 0) {
				fail_own(sc, "08001", "invalid sslmode value: \"%s\"", v);
				return false;
			}
			p->sslmode = (enum srvlogin_sslmode)m;
		} else if (strcmp(kw, "channel_binding") == 0) {
			int m = mode_index(cbind_modes, sizeof(cbind_modes) / sizeof(cbind_modes[0]), v);
			if (m < 0) {
				fail_own(sc, "08001", "invalid channel_binding value: \"%s\"", v);
				return false;
			}
			p->channel_binding = (enum srvlogin_cbind)m;
		} else if (!is_ignored(kw, v) && sc->for_ciphers) {
			fail_own(sc, "08001",
				 "%s=%s cannot be used with server_tls_ciphers or server_tls13_ciphers "
				 "set (pgcoro's own server login, as libpq cannot set ciphers)",
				 kw, v);
			return false;
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
	return read_hosts(sc, host, hostaddr, port);
}

/* The credential into SC->p: the password read_params found, else the server user's
 * secret, else (a login for the ciphers) none; false (fail_own called) when there is none
 * to use. */
static bool read_secret(struct srvconnect *sc)
{
	struct srvlogin_params *p = &sc->p;
	if (p->secret) {
		p->cred = SRVLOGIN_PASSWORD;
		return true;
	}
	const char *secret = p->user ? srvconnect_secret(sc->cp->database, p->user) : NULL;
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
	if (sc->for_ciphers) {
		const char *passfile = param(sc->cp, "passfile");
		if (passfile) {
			fail_own(sc, "08001",
				 "passfile=%s cannot be used with server_tls_ciphers or "
				 "server_tls13_ciphers set (pgcoro's own server login reads no "
				 "passfile): give the database entry a password, or the auth_file one",
				 passfile);
			return false;
		}
		p->cred = SRVLOGIN_NO_PASSWORD; /* as libpq without one: a trust server takes it */
		return true;
	}
	fail_own(sc, "28P01", "no md5 or SCRAM secret for user \"%s\" any more (reload)",
		 p->user ? p->user : "");
	return false;
}

/* The ciphers in force into SC (copies: a reload may free the config during the login);
 * false without memory. */
static bool read_ciphers(struct srvconnect *sc)
{
	const char *list = rt->cfg->server_tls_ciphers, *suites = rt->cfg->server_tls13_ciphers;
	if (!tls_default_cipher_list(list) && !(sc->ciphers = strdup(list)))
		return false;
	if (suites[0] && !(sc->ciphersuites = strdup(suites)))
		return false;
	sc->p.ciphers = sc->ciphers;
	sc->p.ciphersuites = sc->ciphersuites;
	return true;
}

static void sl_done(struct srvlogin *sl, void *arg);

/* Starts the attempt on the next host; false when none is left or it could not start
 * (SC->err says why). */
static bool next_host(struct srvconnect *sc)
{
	while (sc->next < sc->nentries) {
		int i = sc->next++;
		sc->p.host = i < sc->nhosts ? sc->hosts[i] : NULL;
		sc->p.hostaddr = i < sc->naddrs ? sc->addrs[i] : NULL;
		const char *port = sc->nports == 0 ? NULL : sc->ports[sc->nports == 1 ? 0 : i];
		if (!port || !*port || !parse_int(port, &sc->p.port)) /* checked: read_hosts */
			sc->p.port = 0;
		char err[256];
		sc->sl = srvlogin_start(rt->base, rt->exec, &sc->p, sl_done, sc, err, sizeof(err));
		if (sc->sl)
			return true;
		snprintf(sc->err.sqlstate, sizeof(sc->err.sqlstate), "08001");
		snprintf(sc->err.reason, sizeof(sc->err.reason), "%s", err);
		snprintf(sc->err.where, sizeof(sc->err.where), "%s",
			 sc->p.hostaddr && *sc->p.hostaddr ? sc->p.hostaddr
			 : sc->p.host && *sc->p.host	   ? sc->p.host
							   : SRVLOGIN_DEFAULT_SOCKET_DIR);
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
	if (sc->next < sc->nentries)
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
	sc->for_ciphers = ciphers_set() && may_use_tls(cp);
	event_assign(&sc->fail_ev, rt->base, -1, 0, on_fail_ev, sc);
	if (!read_ciphers(sc)) {
		srvconnect_free(sc);
		return NULL;
	}
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
	free(sc->ciphers);
	free(sc->ciphersuites);
	free(sc->pnames);
	free(sc->pvalues);
	free(sc->hostbuf);
	free(sc->addrbuf);
	free(sc->portbuf);
	free(sc->cp);
	free(sc);
}

/* Owns the login dialog: the only code that reads bytes from a peer that has not
 * authenticated. The startup packet (or an SSLRequest, direct TLS, a GSSENCRequest, a
 * CancelRequest), the startup parameters' one bounded store, the method (auth_type or the
 * first auth_hba_file rule) and the trust/password/md5/SCRAM/cert/peer/any/pam/ldap
 * exchanges.
 *
 * One entry, login_on_input (login_on_tls_ready when a handshake ends); one exit,
 * client_logged_in after AuthenticationOk, or client_disconnect. A cleartext password is
 * checked on the executor as a bulk job (its PBKDF2 would block the loop; executor.h): the
 * login awaits the verdict in LOGIN_PASSWORD_CHECK, reading on so that a peer that leaves
 * is seen at once (at most LOGIN_MSG_MAX bytes may come meanwhile, kept for after the
 * login), and the check outlives a login that ends meanwhile (it then frees itself). Every
 * message is taken whole (proto_next: nothing is read before all of it is there) and
 * bounded (PROTO_STARTUP_MAX, LOGIN_AUTH_MAX_LEN); the packet is copied once and parsed in
 * place, so nothing allocated here outlives the login but the parameters' block the
 * session keeps (client.h). Secrets (a password, SCRAM keys) are cleansed before their
 * memory is let go. */
#include "login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "authquery.h"
#include "client.h"
#include "clientkey.h"
#include "config.h"
#include "console.h"
#include "executor.h"
#include "hba.h"
#include "ldapauth.h"
#include "list.h"
#include "log.h"
#include "pamauth.h"
#include "proto.h"
#include "rand.h"
#include "runtime.h"
#include "scram.h"
#include "server.h"
#include "srvconnect.h"
#include "tls.h"

/* The longest PasswordMessage/SASL message (its length field): PostgreSQL's
 * PG_MAX_AUTH_TOKEN_LENGTH (65535 bytes of body), PgBouncer 1.25's password limit too */
#define LOGIN_AUTH_MAX_LEN (65535 + 4)
#define LOGIN_MSG_MAX 8192 /* the most input kept while a password is checked */
#define NAMEDATALEN_APP 400 /* application_name_add_host's value (PostgreSQL keeps 63 bytes) */

enum login_phase {
	LOGIN_STARTUP,        /* reading the startup packet (SSLRequest may come first) */
	LOGIN_PASSWORD,       /* awaiting a PasswordMessage (plain, md5) */
	LOGIN_SASL_INITIAL,   /* awaiting SASLInitialResponse */
	LOGIN_SASL_FINAL,     /* awaiting SASLResponse */
	LOGIN_PASSWORD_CHECK, /* awaiting the executor's verdict on a cleartext password (or
	                       * its turn to go there): input waits, LOGIN_MSG_MAX at most */
	LOGIN_AUTH_QUERY,     /* awaiting auth_query's answer (authquery.h): input waits so */
};

struct plain_check;

/* What only the login needs; freed at its exit. */
struct login {
	enum login_phase phase;
	enum hba_method method;
	bool direct_tls;            /* TLS began without SSLRequest (PostgreSQL 17) */
	bool ssl_done;              /* an SSLRequest was answered: no other, nor a GSSENCRequest */
	bool gss_done;              /* a GSSENCRequest was answered: no other */
	uint8_t md5_salt[4];
	uint8_t *packet;            /* the startup packet while it is parsed ("options" is
	                             * split in place) */
	struct scram_server *scram; /* during a SCRAM exchange */
	struct plain_check *check;  /* LOGIN_PASSWORD_CHECK */
	struct authquery_lookup *lookup; /* LOGIN_AUTH_QUERY */
	struct auth_file *found;    /* what auth_query found for the user (one entry): the
	                             * checks read it instead of auth_file */
	struct ldapauth_opts *ldap; /* HBA_LDAP: the method's options (a copy) until the
	                             * password's check takes them */
	int nparams;                /* the store: startup parameters and "options" settings */
	struct client_param params[CLIENT_MAX_PARAMS];
};

/* A cleartext password check (auth_plain_prepare, then auth_plain_verify's PBKDF2 on the
 * executor): for every user, listed or not, so every answer costs the same work and none
 * blocks the loop; or an external check's, on the same terms: PAM's (pamauth_check, as
 * long as PAM's modules take) or LDAP's binds (ldapauth_check). At most
 * exec_bulk_threads() checks are on the executor at once (one
 * thread stays free of them for connect steps, cancels and reloads), counting those whose
 * login has ended (each frees itself when done, so an anonymous peer cannot queue work by
 * leaving); later ones wait here, FIFO, each for a login still open (a login that ends
 * frees its waiting check; max_password_checks_waiting bounds them, and client_login_timeout
 * their wait). */
struct plain_check {
	struct exec_job job;
	client_t *c;      /* NULL once its login has ended */
	uint64_t client_id; /* C's, for the log */
	struct list node; /* in checks_waiting until submitted */
	enum hba_method method; /* HBA_PASSWORD (auth_plain's check), HBA_PAM or HBA_LDAP */
	struct auth_plain chk;
	char rhost[INET6_ADDRSTRLEN]; /* HBA_PAM: PAM_RHOST, the client's address, or "unix" */
	struct ldapauth_opts *ldap;   /* HBA_LDAP: the method's options (owned) */
	int ldap_timeout_ms;
	enum ldapauth_result ldap_result; /* set on the worker, as WHY */
	char why[256];
	bool ok;         /* the verdict (set on the worker) */
	char *user;      /* a copy (the login may end first), in the same block after the password */
	char password[]; /* cleansed before it is freed */
};

static struct runtime *rt;
static struct pbuf out; /* reused for every message the login builds */
static struct list_head checks_waiting;
static int checks_running;  /* submitted, done not run yet */
static uint64_t checks_run; /* submitted since the start */

void login_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
	list_head_init(&checks_waiting);
}

bool login_begin(client_t *c)
{
	c->login = calloc(1, sizeof(*c->login));
	return c->login != NULL;
}

static void check_free(struct plain_check *pc)
{
	OPENSSL_cleanse(pc->password, strlen(pc->password));
	OPENSSL_cleanse(&pc->chk, sizeof pc->chk);
	ldapauth_free(pc->ldap);
	free(pc);
}

void login_free(client_t *c)
{
	struct login *l = c->login;
	if (!l)
		return;
	struct plain_check *pc = l->check;
	if (pc && list_linked(&pc->node)) {
		list_del(&checks_waiting, &pc->node);
		check_free(pc);
	} else if (pc) {
		pc->c = NULL; /* on the executor: it frees itself when done */
	}
	authquery_cancel(l->lookup);
	auth_free(l->found);
	ldapauth_free(l->ldap);
	free(l->packet);
	if (l->scram)
		OPENSSL_cleanse(l->scram, sizeof *l->scram); /* StoredKey, ServerKey */
	free(l->scram);
	free(l);
	c->login = NULL;
}

void login_check_stats(int *running, int *waiting, uint64_t *run)
{
	*running = checks_running;
	*waiting = checks_waiting.count;
	*run = checks_run;
}

/* Queues what OUT holds for C; it leaves at the end of the read callback, so
 * AuthenticationOk and the welcome go in one write. */
static void send_out(client_t *c)
{
	if (out.failed || !stream_queue(&c->st, out.data, out.len)) {
		pbuf_reset(&out);
		client_disconnect(c, "53200", "out of memory building a message");
		return;
	}
	pbuf_reset(&out);
}

static void send_auth(client_t *c, uint32_t code, const void *data, size_t len)
{
	proto_build_auth(&out, code, data, len);
	send_out(c);
}

/* ---- the exit ------------------------------------------------------------------------ */

/* The one way out of a successful login: AuthenticationOk, the login state freed, and
 * the session takes over. */
static void login_done(client_t *c)
{
	send_auth(c, AUTH_REQ_OK, NULL, 0);
	login_free(c);
	if (c->state == CL_LOGIN)
		client_logged_in(c);
}

/* A password or SCRAM proof did not match, or the user is not in auth_file: the words
 * depend on the method alone (nobody learns who exists), PgBouncer's, which its users'
 * alerts look for: "SASL authentication failed" for scram-sha-256, "PAM authentication
 * failed" for pam, "LDAP authentication failed" for ldap, else "password authentication
 * failed" (md5 too when it asked for SCRAM: auth_md5_offers_scram). */
static void auth_failed(client_t *c)
{
	enum hba_method m = c->login->method;
	client_disconnect(c, "28P01", "%s authentication failed",
			  m == HBA_SCRAM ? "SASL"
			  : m == HBA_PAM ? "PAM"
			  : m == HBA_LDAP ? "LDAP"
					  : "password");
}

/* ---- the startup parameters ---------------------------------------------------------- */

/* The one place the store is filled. False (C closed with 08P01) when it is full. */
static bool param_add(client_t *c, const char *name, const char *value)
{
	struct login *l = c->login;
	if (l->nparams >= CLIENT_MAX_PARAMS) {
		client_disconnect(c, "08P01",
				  "too many startup parameters: at most %d, counting each setting "
				  "in \"options\"",
				  CLIENT_MAX_PARAMS);
		return false;
	}
	l->params[l->nparams++] = (struct client_param){name, value, server_param_index(name)};
	return true;
}

/* PgBouncer's tracked parameters (with track_extra_parameters): never ignored. */
static const char *const tracked_params[] = {"client_encoding", "DateStyle", "TimeZone",
					     "standard_conforming_strings", "application_name"};

/* ignore_startup_parameters, as PgBouncer's: NAME (a setting of "options" when
 * IN_OPTIONS) is dropped rather than applied on the server. A replication client's
 * "options" go to its own server as they are. */
static bool param_ignored(const client_t *c, const char *name, bool in_options)
{
	const char *list = rt->cfg->ignore_startup_parameters;
	if (!list[0] || (in_options && c->replication))
		return false;
	if (!cfg_list_has(list, name) && !(in_options && cfg_list_has(list, "options")))
		return false;
	for (size_t k = 0; k < sizeof(tracked_params) / sizeof(tracked_params[0]); k++)
		if (strcasecmp(name, tracked_params[k]) == 0)
			return false;
	if (cfg_list_has(rt->cfg->track_extra_parameters, name))
		return false;
	log_debug("client %llu %s: ignoring startup parameter%s: %s", (unsigned long long)c->id,
		  client_peer(c), in_options ? " from options" : "", name);
	return true;
}

/* Splits the "options" startup parameter ("-c a=b --c=d", a backslash escapes the next
 * character) in place into settings for the store. False (C closed) on anything but -c
 * / -- settings, or when the store is full. */
static bool parse_options(client_t *c, char *p)
{
	bool expect_value = false;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char *tok = p, *w = p;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '\\' && p[1])
				p++;
			*w++ = *p++;
		}
		if (*p)
			p++;
		*w = 0;
		char *setting;
		if (expect_value) {
			setting = tok;
			expect_value = false;
		} else if (strcmp(tok, "-c") == 0) {
			expect_value = true;
			continue;
		} else if (strncmp(tok, "-c", 2) == 0 || strncmp(tok, "--", 2) == 0) {
			setting = tok + 2;
		} else {
			goto unsupported;
		}
		char *eq = strchr(setting, '=');
		if (!eq || eq == setting)
			goto unsupported;
		*eq = 0;
		for (char *q = setting; *q; q++)
			if (*q == '-')
				*q = '_';
		if (!param_ignored(c, setting, true) && !param_add(c, setting, eq + 1))
			return false;
	}
	if (!expect_value)
		return true;
unsupported:
	client_disconnect(c, "0A000", /* PgBouncer's words */
			  "unsupported options startup parameter: only '-c config=val' and "
			  "'--config=val' are allowed");
	return false;
}

static char *put_str(char **w, const char *v)
{
	char *at = *w;
	size_t n = strlen(v) + 1;
	memcpy(at, v, n);
	*w += n;
	return at;
}

/* application_name_add_host: C's application_name ("app" when it sent none) gets the
 * client's address after it, as PgBouncer's: "psql - 10.0.0.7:51234", "[::1]:5678",
 * "unix:6432". BUF (LEN bytes) holds the new value until keep_params copies it. False
 * when C was closed (the store is full). */
static bool add_host_to_appname(client_t *c, char *buf, size_t len)
{
	struct login *l = c->login;
	struct client_param *app = NULL;
	for (int i = 0; i < l->nparams; i++)
		if (strcmp(l->params[i].name, "application_name") == 0)
			app = &l->params[i]; /* the last one wins, as at the server */
	char host[INET6_ADDRSTRLEN] = "unix";
	int port = rt->cfg->listen_port;
	if (c->peer_family == AF_INET || c->peer_family == AF_INET6) {
		inet_ntop(c->peer_family, c->peer_ip, host, sizeof(host));
		port = c->peer_port;
	}
	const char *v6 = c->peer_family == AF_INET6 ? "[" : "";
	snprintf(buf, len, "%s - %s%s%s:%d", app ? app->value : "app", v6, host, *v6 ? "]" : "",
		 port);
	if (app) {
		app->value = buf;
		return true;
	}
	return param_add(c, "application_name", buf);
}

/* Moves the store, USER and DATABASE into one block the session keeps (client.h), with
 * the digest parameter sync compares, and frees the packet. False if out of memory. */
static bool keep_params(client_t *c, const char *user, const char *database)
{
	struct login *l = c->login;
	size_t arr = (size_t)l->nparams * sizeof(struct client_param);
	size_t need = arr + strlen(user) + strlen(database) + 2;
	for (int i = 0; i < l->nparams; i++)
		need += strlen(l->params[i].name) + strlen(l->params[i].value) + 2;
	struct client_param *blk = malloc(need);
	if (!blk)
		return false;
	char *w = (char *)blk + arr;
	c->user = put_str(&w, user);
	c->database = put_str(&w, database);
	uint64_t sig = 0xcbf29ce484222325ull; /* FNV-1a over the parameters, in order */
	for (int i = 0; i < l->nparams; i++) {
		blk[i].report = l->params[i].report;
		blk[i].name = put_str(&w, l->params[i].name);
		blk[i].value = put_str(&w, l->params[i].value);
		for (const char *q = blk[i].name; *q; q++)
			sig = (sig ^ (uint8_t)*q) * 0x100000001b3ull;
		sig = (sig ^ '=') * 0x100000001b3ull;
		for (const char *q = blk[i].value; *q; q++)
			sig = (sig ^ (uint8_t)*q) * 0x100000001b3ull;
		sig = (sig ^ 0) * 0x100000001b3ull;
	}
	free(c->params);
	c->params = blk;
	c->nparams = l->nparams;
	c->param_sig = sig | 1; /* never 0, the value of a server with nothing applied */
	free(l->packet);
	l->packet = NULL;
	return true;
}

/* ---- authentication ------------------------------------------------------------------ */

/* The secrets C's checks read: auth_query's find, else auth_file (NULL when unset). */
static struct auth_file *secrets(const client_t *c)
{
	return c->login->found ? c->login->found : rt->auth;
}

static void start_scram(client_t *c, const char *secret)
{
	struct login *l = c->login;
	l->scram = calloc(1, sizeof(*l->scram));
	if (!l->scram) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	const struct scram_keys *keys = secret ? auth_scram_keys(secrets(c), c->user) : NULL;
	if (keys) {
		l->scram->keys = *keys;
		/* a stored verifier's proof gives the ClientKey SCRAM pass-through logs in to
		 * servers with (clientkey.h); keys derived from a plain secret need none */
		l->scram->keep_client_key = auth_secret_kind(secret) == SECRET_SCRAM;
	} else {
		scram_mock_keys(c->user, rt->cfg->scram_iterations, &l->scram->keys);
		l->scram->mock = true;
	}
	proto_build_auth_sasl(&out);
	send_out(c);
	l->phase = LOGIN_SASL_INITIAL;
}

/* The host as PostgreSQL's messages name it: the address, or "[local]". */
static const char *peer_host(const client_t *c, char *buf, size_t len)
{
	if (c->peer_family != AF_INET && c->peer_family != AF_INET6)
		return "[local]";
	inet_ntop(c->peer_family, c->peer_ip, buf, (socklen_t)len);
	return buf;
}

/* auth trust: when an auth_file is set it is the list of who may log in (as PgBouncer),
 * with the users auth_query finds (authquery.h). */
static void check_trust(client_t *c)
{
	if (rt->auth && !c->login->found && !auth_lookup(rt->auth, c->user)) {
		log_info("client %llu %s: trust: user \"%s\" is not in auth_file",
			 (unsigned long long)c->id, client_peer(c), c->user);
		client_disconnect(c, "28000", "\"trust\" authentication failed");
		return;
	}
	login_done(c);
}

bool login_peer_is_self(const client_t *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	return c->peer_family == AF_UNIX &&
	       (strcmp(c->user, "pgbouncer") == 0 || strcmp(c->user, "pgcoro") == 0) &&
	       getsockopt(c->st.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	       cred.uid == getuid();
}

/* auth cert: the verified client certificate's CN must be the user, or map to it (MAP:
 * the hba rule's ident map). */
static void check_cert(client_t *c, const struct hba_map *map)
{
	char cn[256];
	if (!stream_tls_ready(&c->st) || !tls_peer_cn(stream_ssl(&c->st), cn, sizeof(cn))) {
		client_disconnect(c, "28000", "connection requires a valid client certificate");
		return;
	}
	if (!hba_map_allows(map, cn, c->user)) {
		log_info("client %llu %s: certificate CN \"%s\" is not user \"%s\"%s%s%s",
			 (unsigned long long)c->id, client_peer(c), cn, c->user,
			 map ? " (ident map \"" : "", hba_map_name(map),
			 map ? "\" has no line for them)" : "");
		client_disconnect(c, "28000", "certificate authentication failed for user \"%s\"",
				  c->user);
		return;
	}
	login_done(c);
}

/* auth peer (unix sockets): the peer process's OS user must be the user, or map to it
 * (MAP: the hba rule's ident map). */
static void check_peer(client_t *c, const struct hba_map *map)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char buf[4096];
	struct passwd pw, *res = NULL;
	if (c->peer_family != AF_UNIX ||
	    getsockopt(c->st.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		client_disconnect(c, "28000", "could not get peer credentials: %s",
				  c->peer_family != AF_UNIX ? "not a unix socket" : strerror(errno));
		return;
	}
	int rc = getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res);
	if (rc != 0 || !res) {
		client_disconnect(c, "28000", "could not look up local user ID %ld: %s",
				  (long)cred.uid, rc ? strerror(rc) : "user does not exist");
		return;
	}
	if (!hba_map_allows(map, pw.pw_name, c->user)) {
		log_info("client %llu: peer OS user \"%s\" is not user \"%s\"%s%s%s",
			 (unsigned long long)c->id, pw.pw_name, c->user,
			 map ? " (ident map \"" : "", hba_map_name(map),
			 map ? "\" has no line for them)" : "");
		client_disconnect(c, "28000", "Peer authentication failed for user \"%s\"", c->user);
		return;
	}
	login_done(c);
}

/* The method for C: auth_type, or with auth_type hba the first matching rule (none, or
 * reject: refused with 28000 in PostgreSQL's words), *MAP its ident map (NULL: none) and
 * *LDAP an ldap rule's options (NULL otherwise, and for auth_type ldap). */
static enum hba_method choose_method(client_t *c, const struct hba_map **map,
				     const struct ldapauth_opts **ldap)
{
	static const enum hba_method of_type[] = {
	    [AUTH_TRUST] = HBA_TRUST, [AUTH_PLAIN] = HBA_PASSWORD, [AUTH_MD5] = HBA_MD5,
	    [AUTH_SCRAM] = HBA_SCRAM, [AUTH_CERT] = HBA_CERT, [AUTH_ANY] = HBA_ANY,
	    [AUTH_PAM] = HBA_PAM,     [AUTH_LDAP] = HBA_LDAP,
	};
	int type = rt->cfg->auth_type;
	*map = NULL;
	*ldap = NULL;
	if (type != AUTH_HBA)
		return of_type[type];
	struct hba_conn conn = {
	    .unix_socket = c->peer_family != AF_INET && c->peer_family != AF_INET6,
	    .tls = stream_tls_ready(&c->st),
	    .family = c->peer_family,
	    .addr = c->peer_ip,
	    .database = c->database,
	    .user = c->user,
	    .physical_replication = c->replication == PROTO_REPL_PHYSICAL,
	};
	int line;
	enum hba_method m = hba_match(rt->hba, &conn, &line, map, ldap);
	char host[INET6_ADDRSTRLEN];
	const char *enc = conn.unix_socket ? "" : conn.tls ? ", SSL encryption" : ", no encryption";
	if (m == HBA_NO_MATCH && conn.physical_replication) { /* PostgreSQL's words */
		client_disconnect(c, "28000",
				  "no pg_hba.conf entry for replication connection from host \"%s\", "
				  "user \"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, enc);
	} else if (m == HBA_REJECT && conn.physical_replication) {
		client_disconnect(c, "28000",
				  "pg_hba.conf rejects replication connection for host \"%s\", user "
				  "\"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, enc);
	} else if (m == HBA_NO_MATCH) {
		client_disconnect(c, "28000",
				  "no pg_hba.conf entry for host \"%s\", user \"%s\", database \"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, c->database, enc);
	} else if (m == HBA_REJECT) {
		client_disconnect(c, "28000",
				  "pg_hba.conf rejects connection for host \"%s\", user \"%s\", "
				  "database \"%s\"%s",
				  peer_host(c, host, sizeof(host)), c->user, c->database, enc);
	} else {
		log_debug("client %llu: auth_hba_file line %d: %s", (unsigned long long)c->id, line,
			  hba_method_name(m));
	}
	return m;
}

static void run_method(client_t *c, const struct hba_map *map);

/* auth_query's look-up of C ended: the method goes on with what it FOUND (NULL: C is
 * being refused). */
static void on_found(client_t *c, struct auth_file *found)
{
	struct login *l = c->login;
	l->lookup = NULL;
	if (!found)
		return;
	l->found = found;
	run_method(c, NULL); /* no look-up for cert and peer, which read no secret */
}

static void start_auth(client_t *c)
{
	struct login *l = c->login;
	if (console_is_console_db(c->database) && login_peer_is_self(c)) {
		/* the admin console for the OS user pgcoro runs as, as PgBouncer's */
		log_debug("client %llu: console access from the unix socket as its own OS user",
			  (unsigned long long)c->id);
		login_done(c);
		return;
	}
	const struct hba_map *map;
	const struct ldapauth_opts *ldap;
	enum hba_method m = choose_method(c, &map, &ldap);
	if (c->state != CL_LOGIN)
		return;
	l->method = m;
	if (m == HBA_LDAP) {
		/* a copy: a reload may free the rule (or change auth_ldap_options) meanwhile */
		char why[256] = "out of memory";
		l->ldap = ldap ? ldapauth_dup(ldap)
			       : ldapauth_parse(rt->cfg->auth_ldap_options, why, sizeof(why));
		if (!l->ldap) {
			log_error("client %llu: auth_ldap_options: %s", (unsigned long long)c->id, why);
			client_disconnect(c, "08P01", "bouncer config error");
			return;
		}
	}
	if ((m == HBA_TRUST || m == HBA_PASSWORD || m == HBA_MD5 || m == HBA_SCRAM) &&
	    authquery_needed(c)) {
		l->phase = LOGIN_AUTH_QUERY;
		struct authquery_lookup *lookup =
		    authquery_begin(c, m == HBA_SCRAM, m == HBA_MD5, m != HBA_TRUST, on_found);
		if (lookup) /* else C is refused already, its login freed */
			l->lookup = lookup;
		return;
	}
	run_method(c, map);
}

/* Runs C's method (c->login->method) with the secrets it reads (secrets()). */
static void run_method(client_t *c, const struct hba_map *map)
{
	struct login *l = c->login;
	struct auth_file *af = secrets(c);
	const char *secret = af ? auth_lookup(af, c->user) : NULL;
	switch (l->method) {
	case HBA_TRUST:
		check_trust(c);
		return;
	case HBA_ANY: /* the user was set to the database's user= (on_startup) */
		login_done(c);
		return;
	case HBA_PASSWORD:
	case HBA_PAM:
	case HBA_LDAP:
		send_auth(c, AUTH_REQ_PASSWORD, NULL, 0);
		l->phase = LOGIN_PASSWORD;
		return;
	case HBA_MD5:
		if (auth_md5_offers_scram(af, c->user)) {
			start_scram(c, secret); /* md5 cannot check a SCRAM verifier (auth.h) */
			return;
		}
		if (!rand_bytes(l->md5_salt, sizeof(l->md5_salt))) {
			client_disconnect(c, "58000", "could not generate a random salt");
			return;
		}
		send_auth(c, AUTH_REQ_MD5, l->md5_salt, sizeof(l->md5_salt));
		l->phase = LOGIN_PASSWORD;
		return;
	case HBA_SCRAM:
		start_scram(c, secret);
		return;
	case HBA_CERT:
		check_cert(c, map);
		return;
	case HBA_PEER:
		check_peer(c, map);
		return;
	case HBA_REJECT:
	case HBA_NO_MATCH:
		break;
	}
	fatal("impossible authentication method %d", (int)l->method);
}

/* ---- the startup packet -------------------------------------------------------------- */

/* The user C logs in as, having given USER for DATABASE: USER, but under auth_type any
 * (PgBouncer's) the database entry's user=, whatever USER is (the admin console keeps
 * USER: admin_users and stats_users still tell who may do what there). NULL (C closed,
 * in PgBouncer's words) when the entry names no user= or there is no entry. */
static const char *any_user(client_t *c, const char *user, const char *database)
{
	if (rt->cfg->auth_type != AUTH_ANY || console_is_console_db(database))
		return user;
	const struct cfg_db *db = cfg_find_db(rt->cfg, database);
	const char *forced = db ? cfg_db_param(db, "user") : NULL;
	if (!forced) {
		log_error("client %llu %s: auth_type=any requires forced user (database \"%s\" "
			  "has no user=)", (unsigned long long)c->id, client_peer(c), database);
		client_disconnect(c, "08P01", "bouncer config error");
		return NULL;
	}
	if (strcmp(forced, user) != 0)
		log_debug("client %llu %s: auth_type any: user \"%s\" logs in as \"%s\"",
			  (unsigned long long)c->id, client_peer(c), user, forced);
	return forced;
}

static void on_startup(client_t *c, const struct proto_startup *st)
{
	if (c->too_many) {
		client_disconnect(c, "53300", "sorry, too many clients already (max_client_conn %d)",
				  rt->cfg->max_client_conn);
		return;
	}
	if (rt->cfg->client_tls_sslmode >= TLS_REQUIRE && !stream_tls_ready(&c->st) &&
	    (c->peer_family == AF_INET || c->peer_family == AF_INET6)) {
		client_disconnect_hint(c, "28000", "Connect with TLS (libpq: sslmode=require or stronger).",
				       "TLS required: pgcoro's client_tls_sslmode is %s",
				       rt->cfg->client_tls_sslmode == TLS_REQUIRE ? "require"
										   : "verify-ca/verify-full");
		return;
	}
	for (int i = 0; i < st->nparams; i++) { /* first: the others depend on it */
		if (strcmp(st->names[i], "replication") != 0)
			continue;
		enum proto_replication r = proto_parse_replication(st->values[i]);
		if (r == PROTO_REPL_INVALID) { /* PostgreSQL's words */
			client_disconnect_hint(c, "22023",
					       "Valid values are: \"false\", 0, \"true\", 1, "
					       "\"database\".",
					       "invalid value for parameter \"replication\": \"%s\"",
					       st->values[i]);
			return;
		}
		c->replication = (uint8_t)r;
	}
	for (int i = 0; i < st->nparams; i++) {
		const char *name = st->names[i];
		bool ok;
		if (strcmp(name, "options") == 0)
			ok = parse_options(c, (char *)st->values[i]); /* in the packet copy */
		else if (strcmp(name, "replication") == 0 || param_ignored(c, name, false))
			continue;
		else
			ok = param_add(c, name, st->values[i]);
		if (!ok)
			return;
	}
	if ((st->version & 0xffff) != 0 || st->nunrecognized > 0) {
		proto_build_negotiate(&out, PROTO_V3, st->unrecognized, st->nunrecognized);
		send_out(c);
	}
	char app[NAMEDATALEN_APP];
	if (rt->cfg->application_name_add_host && !c->replication &&
	    !add_host_to_appname(c, app, sizeof(app)))
		return;
	const char *database = st->database && st->database[0] ? st->database : st->user;
	const char *user = any_user(c, st->user, database);
	if (!user)
		return;
	/* the packet goes here: nothing below reads ST */
	if (!keep_params(c, user, database)) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	log_debug("client %llu %s: startup user=%s database=%s", (unsigned long long)c->id,
		  client_peer(c), c->user, c->database);
	start_auth(c);
}

/* An SSLRequest: 'S' and the TLS handshake when pgcoro has TLS for this client (TCP,
 * client_tls_sslmode not disable), else 'N'. */
static void on_ssl_request(client_t *c)
{
	bool tcp = c->peer_family == AF_INET || c->peer_family == AF_INET6;
	if (c->st.tls) {
		client_disconnect(c, "08P01", "SSLRequest received on a TLS connection");
		return;
	}
	if (!rt->tls || !tcp) {
		(void)stream_queue(&c->st, "N", 1); /* a failure is reported by the stream */
		return;
	}
	if (stream_input_len(&c->st) > 0) {
		/* bytes sent before our answer would be taken as if they came over TLS */
		client_disconnect(c, "08P01", "received unencrypted data after SSL request");
		return;
	}
	(void)stream_queue(&c->st, "S", 1);
	stream_flush(&c->st);
	if (stream_output_len(&c->st) > 0 || c->st.err) {
		client_disconnect(c, NULL, "could not answer the SSLRequest");
		return;
	}
	if (!stream_tls_accept(&c->st, rt->tls, NULL, 0))
		client_disconnect(c, NULL, "out of memory starting TLS");
}

/* A first byte 0x16 (a TLS handshake record): PostgreSQL 17's direct TLS. The bytes
 * read so far are the ClientHello's start; the handshake takes them over. ALPN
 * "postgresql" is checked when it is done. */
static void on_direct_tls(client_t *c)
{
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	if (!rt->tls || (c->peer_family != AF_INET && c->peer_family != AF_INET6)) {
		stream_take(&c->st, p, n);
		client_disconnect(c, NULL, "direct TLS connection refused: %s",
				  rt->tls ? "not over TCP" : "client_tls_sslmode is disable");
		return;
	}
	c->login->direct_tls = true;
	bool ok = stream_tls_accept(&c->st, rt->tls, p, n);
	stream_take(&c->st, p, n);
	if (!ok)
		client_disconnect(c, NULL, "out of memory starting TLS");
}

void login_on_tls_ready(client_t *c)
{
	if (c->login->direct_tls && !tls_alpn_ok(stream_ssl(&c->st))) {
		client_disconnect(c, "08P01",
				  "received direct SSL connection request without ALPN protocol "
				  "negotiation extension");
		return;
	}
	SSL *ssl = stream_ssl(&c->st);
	if (rt->cfg->log_connections) /* "tls=VERSION/CIPHER": PgBouncer's words */
		log_info("client %llu %s: TLS established, tls=%s/%s", (unsigned long long)c->id,
			 client_peer(c), SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

/* The whole startup-style packet M at the head of the input: copied (the parameters point
 * into the copy), taken off the input, and handled. */
static void on_startup_packet(client_t *c, const struct proto_msg *m)
{
	struct login *l = c->login;
	free(l->packet);
	l->packet = malloc(m->size);
	if (!l->packet) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	memcpy(l->packet, m->data, m->size);
	stream_take(&c->st, m->data, m->size);
	struct proto_startup st;
	const char *why = NULL;
	if (!proto_parse_startup(l->packet, m->len, &st, &why)) {
		uint32_t v = (uint32_t)l->packet[4] << 24 | (uint32_t)l->packet[5] << 16 |
			     (uint32_t)l->packet[6] << 8 | l->packet[7];
		if (v >> 16 != 3)
			client_disconnect(c, "0A000",
					  "unsupported frontend protocol %u.%u: pgcoro supports 3.0",
					  v >> 16, v & 0xffff);
		else
			client_disconnect(c, "08P01", "invalid startup packet: %s",
					  why ? why : "malformed");
		return;
	}
	/* one encryption request of each kind, GSS before SSL, as PostgreSQL: anything else
	 * is an unknown protocol (and no client makes pgcoro answer it forever) */
	if ((st.kind == STARTUP_SSL && l->ssl_done) || (st.kind == STARTUP_GSSENC && l->gss_done)) {
		uint32_t v = st.kind == STARTUP_SSL ? PROTO_SSL_CODE : PROTO_GSSENC_CODE;
		client_disconnect(c, "0A000", "unsupported frontend protocol %u.%u: pgcoro supports 3.0",
				  v >> 16, v & 0xffff);
		return;
	}
	switch (st.kind) {
	case STARTUP_SSL:
		l->ssl_done = l->gss_done = true;
		on_ssl_request(c);
		return;
	case STARTUP_GSSENC:
		l->gss_done = true;
		(void)stream_queue(&c->st, "N", 1); /* a failure is reported by the stream */
		return;
	case STARTUP_CANCEL:
		client_cancel_request(st.cancel_pid, st.cancel_key);
		client_disconnect(c, NULL, "cancel request handled");
		return;
	case STARTUP_MSG:
		on_startup(c, &st);
		return;
	}
}

/* ---- the exchanges ------------------------------------------------------------------- */

/* Worker thread: touches only PC. */
static void check_fn(struct exec_job *job)
{
	struct plain_check *pc = job->arg;
	switch (pc->method) {
	case HBA_PAM:
		pc->ok = pamauth_check(pc->user, pc->password, pc->rhost);
		break;
	case HBA_LDAP:
		pc->ldap_result = ldapauth_check(pc->ldap, pc->user, pc->password,
						 pc->ldap_timeout_ms, pc->why, sizeof(pc->why));
		pc->ok = pc->ldap_result == LDAPAUTH_OK;
		break;
	default:
		pc->ok = auth_plain_verify(&pc->chk, pc->password);
		break;
	}
}

static void check_done(struct exec_job *job);

static void check_submit(struct plain_check *pc)
{
	pc->job = (struct exec_job){.fn = check_fn, .done = check_done, .arg = pc};
	checks_running++;
	checks_run++;
	exec_submit_bulk(rt->exec, &pc->job);
}

/* Loop thread: PC's verdict goes to its login if it is still open; the next waiting
 * check takes its place on the executor. */
static void check_done(struct exec_job *job)
{
	struct plain_check *pc = job->arg;
	client_t *c = pc->c;
	bool ok = pc->ok;
	enum hba_method m = pc->method;
	enum ldapauth_result lr = pc->ldap_result;
	/* a password PAM or LDAP accepted is the user's server logins' (PgBouncer's) */
	if (ok && m != HBA_PASSWORD && !srvconnect_keep_password(pc->user, pc->password))
		log_warning("out of memory keeping the %s password of user \"%s\": its server "
			    "logins go without it", hba_method_name(m), pc->user);
	if (m == HBA_LDAP && !ok)
		log_at(lr == LDAPAUTH_UNAVAILABLE ? LOGL_WARNING : LOGL_INFO,
		       "client %llu: LDAP authentication of user \"%s\" failed: %s",
		       (unsigned long long)pc->client_id, pc->user, pc->why);
	checks_running--;
	check_free(pc);
	struct list *next = list_first(&checks_waiting);
	if (next) {
		list_del(&checks_waiting, next);
		check_submit(list_entry(next, struct plain_check, node));
	}
	if (!c)
		return;
	c->login->check = NULL;
	if (ok)
		login_done(c);
	else if (m == HBA_LDAP && lr == LDAPAUTH_UNAVAILABLE)
		client_disconnect_hint(c, "28P01", "The LDAP server could not be reached or did not "
				       "answer in time (auth_ldap_timeout); pgcoro's log says more.",
				       "LDAP authentication failed");
	else
		auth_failed(c);
	stream_flush(&c->st); /* outside the read callback, which would flush it */
}

/* A cleartext PasswordMessage (plain, an hba password or ldap rule, pam, ldap): checked
 * on the executor, the login awaiting the verdict. */
static void start_plain_check(client_t *c, const char *pw)
{
	struct login *l = c->login;
	bool runs = checks_running < exec_bulk_threads(rt->exec);
	if (!runs && checks_waiting.count >= rt->cfg->max_password_checks_waiting) {
		client_disconnect(c, "53300", "too many password checks waiting "
				  "(max_password_checks_waiting %d)",
				  rt->cfg->max_password_checks_waiting);
		return;
	}
	size_t len = strlen(pw), ulen = strlen(c->user);
	struct plain_check *pc = calloc(1, sizeof(*pc) + len + 1 + ulen + 1);
	if (!pc) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	pc->c = c;
	pc->client_id = c->id;
	list_init(&pc->node);
	memcpy(pc->password, pw, len + 1);
	pc->user = memcpy(pc->password + len + 1, c->user, ulen + 1);
	pc->method = l->method;
	if (l->method == HBA_PAM) {
		char host[INET6_ADDRSTRLEN];
		bool tcp = c->peer_family == AF_INET || c->peer_family == AF_INET6;
		snprintf(pc->rhost, sizeof(pc->rhost), "%s",
			 tcp ? peer_host(c, host, sizeof(host)) : "unix"); /* PgBouncer's */
	} else if (l->method == HBA_LDAP) {
		pc->ldap = l->ldap; /* the check's from now on */
		l->ldap = NULL;
		pc->ldap_timeout_ms = (int)(rt->cfg->auth_ldap_timeout * 1000);
	} else {
		auth_plain_prepare(secrets(c), c->user, pw, rt->cfg->scram_iterations, &pc->chk);
	}
	l->check = pc;
	l->phase = LOGIN_PASSWORD_CHECK;
	if (runs)
		check_submit(pc);
	else
		list_append(&checks_waiting, &pc->node);
}

static void on_password(client_t *c, const uint8_t *body, uint32_t blen)
{
	struct login *l = c->login;
	const char *pw;
	if (!proto_parse_password(body, blen, &pw)) {
		client_disconnect(c, "08P01", "invalid password packet");
		return;
	}
	if ((l->method == HBA_PAM || l->method == HBA_LDAP) && !pw[0]) {
		/* an empty password would be an LDAP anonymous bind; PostgreSQL's words, and
		 * PgBouncer's SQLSTATE for pam */
		client_disconnect(c, l->method == HBA_PAM ? "08P01" : "28P01",
				  "empty password returned by client");
		return;
	}
	if (l->method == HBA_PASSWORD || l->method == HBA_PAM || l->method == HBA_LDAP) {
		start_plain_check(c, pw);
		return;
	}
	/* md5 does the same work for a user absent from auth_file (no timing tells) */
	if (auth_md5_check_user(secrets(c), c->user, l->md5_salt, pw))
		login_done(c);
	else
		auth_failed(c);
}

static void on_sasl_initial(client_t *c, const uint8_t *body, uint32_t blen)
{
	struct login *l = c->login;
	const char *mech;
	const uint8_t *data;
	uint32_t dlen;
	char reply[512];
	if (!proto_parse_sasl_initial(body, blen, &mech, &data, &dlen)) {
		client_disconnect(c, "08P01", "invalid SASL initial response");
		return;
	}
	if (strcmp(mech, "SCRAM-SHA-256") != 0) {
		client_disconnect(c, "08P01", "client selected an invalid SASL authentication mechanism");
		return;
	}
	if (!data ||
	    !scram_server_first(l->scram, (const char *)data, dlen, reply, sizeof(reply))) {
		client_disconnect(c, "08P01", "malformed SCRAM message");
		return;
	}
	send_auth(c, AUTH_REQ_SASL_CONT, reply, strlen(reply));
	l->phase = LOGIN_SASL_FINAL;
}

static void on_sasl_final(client_t *c, const uint8_t *body, uint32_t blen)
{
	char reply[512];
	if (!scram_server_final(c->login->scram, (const char *)body, blen, reply, sizeof(reply))) {
		auth_failed(c);
		return;
	}
	if (c->login->scram->have_client_key)
		clientkey_store(c->user, &c->login->scram->keys, c->login->scram->client_key);
	send_auth(c, AUTH_REQ_SASL_FIN, reply, strlen(reply));
	if (c->state == CL_LOGIN)
		login_done(c);
}

void login_on_input(client_t *c)
{
	while (c->state == CL_LOGIN && c->login) {
		struct login *l = c->login;
		size_t n;
		const uint8_t *p = stream_input(&c->st, &n);
		struct proto_msg m;
		if (l->phase == LOGIN_PASSWORD_CHECK || l->phase == LOGIN_AUTH_QUERY) {
			/* kept for after the login (a pipelined query); no driver sends anything
			 * before AuthenticationOk, so more is refused, not buffered */
			if (n > LOGIN_MSG_MAX) {
				stream_consume(&c->st, n);
				client_disconnect(c, "08P01", "more than %d bytes received while the "
						  "%s", LOGIN_MSG_MAX,
						  l->phase == LOGIN_AUTH_QUERY ? "user is looked up"
									       : "password is checked");
			}
			return;
		}
		if (n == 0)
			return;
		if (l->phase == LOGIN_STARTUP) {
			if (p[0] == 0x16 && !c->st.tls && !l->ssl_done && !l->gss_done) {
				on_direct_tls(c); /* only as the first bytes (PostgreSQL 17) */
				return;
			}
			if (p[0] == 'X') {
				/* a Terminate before any startup packet (node-postgres' connect();
				 * end()): PostgreSQL closes without a word; its length is no startup
				 * packet's anyway */
				static const uint8_t terminate[PROTO_HDR] = {'X', 0, 0, 0, 4};
				size_t k = n < PROTO_HDR ? n : PROTO_HDR;
				if (memcmp(p, terminate, k) == 0) {
					if (n < PROTO_HDR)
						return;
					log_debug("client %llu %s: Terminate before the startup packet",
						  (unsigned long long)c->id, client_peer(c));
					stream_take(&c->st, p, n);
					client_disconnect(c, NULL, "client close request (before logging in)");
					return;
				}
			}
			switch (proto_next_startup(p, n, &m)) {
			case PROTO_NEED_MORE:
				return;
			case PROTO_BAD:
				client_disconnect(c, "08P01", "invalid startup packet length %u", m.len);
				return;
			case PROTO_OK:
				break;
			}
			on_startup_packet(c, &m);
			continue;
		}
		switch (proto_next(p, n, LOGIN_AUTH_MAX_LEN, &m)) {
		case PROTO_NEED_MORE:
			if (m.len == 0 || m.type == 'p')
				return;
			break; /* the type is wrong already */
		case PROTO_BAD:
			client_disconnect(c, "08P01", "invalid authentication message length %u", m.len);
			return;
		case PROTO_OK:
			break;
		}
		if (m.type != 'p') {
			client_disconnect(c, "08P01",
					  "expected password response, got message type %d", m.type);
			return;
		}
		/* Taken off the input before it is handled: a successful login may link a server
		 * at once, and the relay must not see this message. */
		uint8_t msg[LOGIN_AUTH_MAX_LEN + 1];
		memcpy(msg, m.data, m.size);
		stream_take(&c->st, m.data, m.size);
		const uint8_t *body = msg + PROTO_HDR;
		switch (l->phase) {
		case LOGIN_PASSWORD:
			on_password(c, body, m.blen);
			break;
		case LOGIN_SASL_INITIAL:
			on_sasl_initial(c, body, m.blen);
			break;
		case LOGIN_SASL_FINAL:
			on_sasl_final(c, body, m.blen);
			break;
		case LOGIN_STARTUP:
		case LOGIN_PASSWORD_CHECK:
		case LOGIN_AUTH_QUERY:
			fatal("client %llu: auth message in login phase %d",
			      (unsigned long long)c->id, (int)l->phase);
		}
		OPENSSL_cleanse(msg, m.size); /* a password, or a SCRAM proof */
	}
}

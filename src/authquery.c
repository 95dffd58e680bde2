/* Owns the look-ups of auth_user / auth_query / auth_dbname (authquery.h): where a login's
 * look-up runs (PgBouncer's choice of the authentication database, and its refusals), the
 * query as a task on a server of auth_user's pool (pool_run_task: Parse/Bind with $1 = the
 * user name, never quoted into the text, after a RESET ALL and a DISCARD TEMP — nothing
 * of a client's, no SET, no temporary table, reaches the query), reading its answer's one
 * row, and the verdict for the login.
 * Every look-up runs the query again (an expired or changed password counts at once), and
 * what it finds replaces the user's entry in the store server logins read (authcache.h). */
#include "authquery.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "authcache.h"
#include "client.h"
#include "config.h"
#include "console.h"
#include "executor.h"
#include "log.h"
#include "pool.h"
#include "poolctl.h"
#include "rand.h"
#include "runtime.h"
#include "server.h"

struct authquery_lookup {
	struct server_task task;
	client_t *c;          /* NULL once its login ended while keys are derived */
	pool_t *pool;         /* auth_user's, referenced while the task is out */
	void (*done)(client_t *c, struct auth_file *found);
	bool scram;           /* the method is SCRAM: a plain secret's keys are derived */
	bool mock_unknown;    /* the method asks a password: an unknown user gets a mock */
	bool md5;             /* the method is md5: the mock follows password_encryption */
	bool asking_enc;      /* the task is SHOW password_encryption, the query's next */
	int iterations;       /* for them: scram_iterations when the job was submitted */
	struct auth_file *found; /* while they are derived (on the executor) */
	struct exec_job job;
	struct authquery_answer ans;
	const char *values[1];
	char *sql;            /* a copy: a reload may free the config's */
	char *source;         /* where it runs, for the store (source_of) */
	char user[];
};

static struct runtime *rt;

/* pool->auth_pwenc: what an unknown user's mock is under md5 (PostgreSQL's choice) */
enum { PWENC_UNKNOWN, PWENC_SCRAM, PWENC_MD5 };

void authquery_init(struct runtime *r) { rt = r; }


/* C's database entry (NULL for the admin console, which has none) into *DB; false when
 * the database is not configured (PgBouncer's "fake" database: no look-up). */
static bool db_of(const client_t *c, const struct cfg_db **db)
{
	*db = NULL;
	if (console_is_console_db(c->database))
		return true;
	*db = cfg_find_db(rt->cfg, c->database);
	return *db != NULL;
}

static const char *auth_user_of(const struct cfg_db *db)
{
	return db && db->auth_user && db->auth_user[0] ? db->auth_user : rt->cfg->auth_user;
}

/* The database a look-up for a login to DATABASE (entry DB, NULL for the console) runs on:
 * auth_dbname (its entry's, else the global one), else DATABASE itself. */
static const char *auth_dbname_of(const struct cfg_db *db, const char *database)
{
	return db && db->auth_dbname && db->auth_dbname[0] ? db->auth_dbname
	       : rt->cfg->auth_dbname[0]                    ? rt->cfg->auth_dbname
							    : database;
}

static const char *auth_query_of(const struct cfg_db *db)
{
	return db && db->auth_query && db->auth_query[0] ? db->auth_query : rt->cfg->auth_query;
}

/* The source (authcache.h) of a look-up for a login to DATABASE (entry DB): its auth
 * database, auth_user and query, each but the last with its length first (no two
 * sources alike); malloc'd, NULL without memory. */
static char *source_of(const struct cfg_db *db, const char *database)
{
	const char *adb = auth_dbname_of(db, database), *au = auth_user_of(db);
	char *s = NULL;
	if (asprintf(&s, "%zu:%s %zu:%s %s", strlen(adb), adb, strlen(au), au,
		     auth_query_of(db)) < 0)
		return NULL;
	return s;
}

const char *authquery_secret(const char *database, const char *user)
{
	const char *s = rt->auth ? auth_lookup(rt->auth, user) : NULL;
	const struct cfg_db *db = s || !database ? NULL : cfg_find_db(rt->cfg, database);
	if (s || !db || !auth_user_of(db)[0])
		return s; /* no look-up for DATABASE: no secret of one */
	char *source = source_of(db, database);
	s = source ? authcache_get(source, user) : NULL;
	free(source);
	return s;
}

bool authquery_keep(const char *database, const char *user, const char *secret)
{
	const struct cfg_db *db = database ? cfg_find_db(rt->cfg, database) : NULL;
	if (!db || !auth_user_of(db)[0])
		return true; /* DATABASE's logins look nobody up: nothing to keep */
	char *source = source_of(db, database);
	bool ok = source && authcache_put(source, user, secret);
	free(source);
	return ok;
}

bool authquery_needed(const client_t *c)
{
	const struct cfg_db *db;
	if (rt->auth && auth_lookup(rt->auth, c->user))
		return false;
	return db_of(c, &db) && auth_user_of(db)[0];
}

static void lookup_free(struct authquery_lookup *l)
{
	auth_free(l->found);
	if (l->pool)
		pool_unref(l->pool);
	authquery_answer_free(&l->ans);
	free(l->sql);
	free(l->source);
	free(l);
}

void authquery_cancel(struct authquery_lookup *l)
{
	if (!l)
		return;
	if (l->found) {
		l->c = NULL; /* its keys are derived: freed when that ends */
		return;
	}
	pool_cancel_task(l->pool, &l->task);
	lookup_free(l);
}

/* L ended without a secret: its login forgets it (DONE with NULL), L is freed, and C is
 * disconnected with SQLSTATE and MSG. */
static void refuse(struct authquery_lookup *l, const char *sqlstate, const char *msg)
{
	client_t *c = l->c;
	l->done(c, NULL);
	lookup_free(l);
	client_disconnect(c, sqlstate, "%s", msg);
	stream_flush(&c->st); /* outside C's read callback, which would flush it */
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A's row is refused: WHY is logged and the login gets "bouncer config error". */
static void row_bad(struct authquery_answer *a, const char *why)
{
	a->bad = true;
	snprintf(a->bad_why, sizeof(a->bad_why), "%s", why);
}

void authquery_answer_row(struct authquery_answer *a, const char *user, const uint8_t *body,
			  uint32_t blen)
{
	if (++a->rows > 1)
		row_bad(a, "auth_query returned more than one row");
	if (a->bad)
		return;
	uint16_t ncols = blen >= 2 ? (uint16_t)(body[0] << 8 | body[1]) : 0;
	if (ncols != 2) {
		a->bad = true;
		snprintf(a->bad_why, sizeof(a->bad_why), "expected 2 columns from auth_query, not %u",
			 (unsigned)ncols);
		return;
	}
	const uint8_t *p = body + 2, *end = body + blen;
	uint32_t ulen = end - p >= 4 ? be32(p) : 0;
	if (end - p < 4 || ulen == UINT32_MAX) {
		row_bad(a, "auth_query response contained null user name");
		return;
	}
	p += 4;
	if ((uint64_t)(end - p) < (uint64_t)ulen + 4) {
		row_bad(a, "bad DataRow from auth_query");
		return;
	}
	if (ulen != strlen(user) || memcmp(p, user, ulen) != 0) {
		row_bad(a, "auth_query returned a row for another user");
		return;
	}
	p += ulen;
	uint32_t slen = be32(p);
	p += 4;
	if (slen == UINT32_MAX)
		return; /* no secret: a->secret stays NULL */
	if ((uint64_t)(end - p) < slen || memchr(p, 0, slen)) {
		row_bad(a, "bad secret column from auth_query");
		return;
	}
	if (!(a->secret = malloc((size_t)slen + 1))) {
		row_bad(a, "out of memory");
		return;
	}
	memcpy(a->secret, p, slen);
	a->secret[slen] = '\0';
}

void authquery_answer_free(struct authquery_answer *a)
{
	if (a->secret) {
		OPENSSL_cleanse(a->secret, strlen(a->secret));
		free(a->secret);
		a->secret = NULL;
	}
}

bool authquery_pwenc_md5(const uint8_t *body, uint32_t blen)
{
	return blen >= 9 && body[0] == 0 && body[1] == 1 && be32(body + 2) == 3 &&
	       memcmp(body + 6, "md5", 3) == 0;
}

/* A DataRow of the answer: SHOW password_encryption's, or auth_query's. */
static void on_row(void *arg, const uint8_t *body, uint32_t blen)
{
	struct authquery_lookup *l = arg;
	if (l->asking_enc) {
		if (authquery_pwenc_md5(body, blen))
			l->pool->auth_pwenc = PWENC_MD5;
		return;
	}
	authquery_answer_row(&l->ans, l->user, body, blen);
}

/* L's login goes on with FOUND (taken over), outside C's callbacks. */
static void found(struct authquery_lookup *l, struct auth_file *af)
{
	client_t *c = l->c;
	void (*done)(client_t *, struct auth_file *) = l->done;
	lookup_free(l);
	done(c, af);
	stream_flush(&c->st); /* outside C's read callback, which would flush it */
}

/* Worker thread: touches only L's found and iterations. */
static void derive_fn(struct exec_job *job)
{
	struct authquery_lookup *l = job->arg;
	/* a failed derivation leaves the user without keys: the SCRAM exchange fails */
	bool made = auth_make_scram_keys(l->found, l->iterations, true, false);
	(void)made;
}

static void derive_done(struct exec_job *job)
{
	struct authquery_lookup *l = job->arg;
	if (!l->c) {
		lookup_free(l);
		return;
	}
	struct auth_file *af = l->found;
	l->found = NULL;
	found(l, af);
}

/* A user auth_query does not know, with a method that asks a password: the login goes on
 * as for a user with a SCRAM verifier nobody knows the password of (the mock keys an
 * unknown auth_file user gets), so the challenge, the work and the refusal ("password
 * authentication failed", "SASL authentication failed") do not tell that the name is
 * unknown, as PostgreSQL's own. PgBouncer answers "no such user" at once (a TODO in its
 * handle_auth_query_response). */
static void mock_user(struct authquery_lookup *l)
{
	struct scram_keys k;
	char verifier[256];
	bool ok;
	if (l->md5 && l->pool->auth_pwenc == PWENC_MD5) {
		/* PostgreSQL's mock under md5 follows password_encryption: md5 there, so an md5
		 * challenge here, through the md5 path real md5 users take, against a random
		 * md5 secret (nobody knows a password it is made of) */
		uint8_t r[16];
		ok = rand_bytes(r, sizeof(r));
		memcpy(verifier, "md5", 3);
		for (size_t i = 0; i < sizeof(r); i++)
			snprintf(verifier + 3 + 2 * i, 3, "%02x", r[i]);
		OPENSSL_cleanse(r, sizeof(r));
	} else {
		scram_mock_keys(l->c->user, rt->cfg->scram_iterations, &k);
		ok = scram_format_verifier(&k, verifier, sizeof(verifier));
		OPENSSL_cleanse(&k, sizeof(k));
	}
	struct auth_file *af = ok ? auth_of_one(l->c->user, verifier) : NULL;
	OPENSSL_cleanse(verifier, sizeof(verifier));
	if (!af || !auth_make_scram_keys(af, rt->cfg->scram_iterations, true, false)) {
		auth_free(af);
		refuse(l, "53200", "out of memory");
		return;
	}
	found(l, af);
}

static void run_query(struct authquery_lookup *l);

/* The answer ended: the verdict for the login. */
static void on_done(void *arg, const struct hkquery *q)
{
	struct authquery_lookup *l = arg;
	client_t *c = l->c;
	if (l->asking_enc && !q->failed) {
		if (l->pool->auth_pwenc == PWENC_UNKNOWN)
			l->pool->auth_pwenc = PWENC_SCRAM;
		run_query(l);
		return;
	}
	if (q->failed) {
		log_error("client %llu: %s for user \"%s\" failed on %s/%s: %s%s%s",
			  (unsigned long long)c->id,
			  l->asking_enc ? "SHOW password_encryption" : "auth_query", c->user,
			  l->pool->dbname, l->pool->user,
			  q->sqlstate[0] ? q->sqlstate : "", q->sqlstate[0] ? ": " : "", q->message);
		refuse(l, "08P01", "bouncer config error");
	} else if (l->ans.bad || q->rows != (uint32_t)l->ans.rows) {
		if (!l->ans.bad) /* a DataRow too long to be read: no row is guessed at */
			snprintf(l->ans.bad_why, sizeof(l->ans.bad_why), "a row from auth_query too long");
		log_error("client %llu: auth_query for user \"%s\" on %s/%s: %s",
			  (unsigned long long)c->id, c->user, l->pool->dbname, l->pool->user,
			  l->ans.bad_why);
		refuse(l, "08P01", "bouncer config error");
	} else if (!l->ans.secret) {
		/* no row, or no secret (NULL: no password, or an expired one): as an unknown
		 * user, and the user's server logins forget what an earlier look-up found */
		authcache_forget(l->source, c->user);
		if (l->ans.rows)
			log_info("client %llu %s: user %s has no password (or it expired)",
				 (unsigned long long)c->id, client_peer(c), c->user);
		else
			log_info("client %llu %s: no such user: %s", (unsigned long long)c->id,
				 client_peer(c), c->user);
		if (l->mock_unknown) {
			mock_user(l);
		} else if (l->ans.rows) {
			/* trust: the role exists, and trust asks no password (PostgreSQL's trust
			 * ignores VALID UNTIL too); an empty secret, which no password matches
			 * and no server login uses */
			struct auth_file *af = auth_of_one(c->user, "");
			if (af)
				found(l, af);
			else
				refuse(l, "53200", "out of memory");
		} else {
			refuse(l, "08P01", "no such user");
		}
	} else {
		if (!authcache_put(l->source, c->user, l->ans.secret))
			log_warning("out of memory keeping the secret of user \"%s\": its server "
				    "logins go without it", c->user);
		struct auth_file *af = auth_of_one(c->user, l->ans.secret);
		if (!af) {
			refuse(l, "53200", "out of memory");
		} else if (l->scram && auth_secret_kind(l->ans.secret) == SECRET_PLAIN && l->ans.secret[0]) {
			/* a plain secret's SCRAM keys: one PBKDF2, off the loop (as auth_file's) */
			l->found = af;
			l->iterations = rt->cfg->scram_iterations;
			l->job = (struct exec_job){.fn = derive_fn, .done = derive_done, .arg = l};
			exec_submit_bulk(rt->exec, &l->job);
		} else {
			found(l, af);
		}
	}
}

/* No server could run it: the client gets the server's refusal of the login as it is (as
 * PgBouncer passes it on), or pgcoro's words for a failure on the way (08006). */
static void on_failed(void *arg, const char *sqlstate, const char *msg)
{
	struct authquery_lookup *l = arg;
	client_t *c = l->c;
	char told[512];
	log_warning("client %llu: auth_query for user \"%s\" could not run on %s/%s: %s",
		    (unsigned long long)c->id, c->user, l->pool->dbname, l->pool->user, msg);
	if (strcmp(sqlstate, "08006") != 0 && *msg)
		snprintf(told, sizeof(told), "%s", msg);
	else
		snprintf(told, sizeof(told), "server connection failed%s%s", *msg ? ": " : "", msg);
	refuse(l, sqlstate, told);
}

/* L's query goes to a server of its pool (from authquery_begin, or after SHOW
 * password_encryption answered). */
static void run_query(struct authquery_lookup *l)
{
	l->asking_enc = false;
	l->task = (struct server_task){
	    .sql = l->sql, .nvalues = 1, .values = l->values, .arg = l,
	    .row = on_row, .done = on_done, .failed = on_failed};
	pool_run_task(l->pool, &l->task);
}

struct authquery_lookup *authquery_begin(client_t *c, bool scram, bool md5, bool mock_unknown,
				 void (*done)(client_t *c, struct auth_file *found))
{
	const struct cfg_db *db;
	if (!db_of(c, &db))
		fatal("client %llu: auth_query without a database", (unsigned long long)c->id);
	const char *dbname = auth_dbname_of(db, c->database);
	if (console_is_console_db(dbname)) { /* PgBouncer's words, here and below */
		log_error("client %llu: cannot use the reserved \"%s\" database as an auth_dbname",
			  (unsigned long long)c->id, dbname);
		client_disconnect(c, "08P01", "bouncer config error");
		return NULL;
	}
	const struct cfg_db *adb = cfg_find_db(rt->cfg, dbname);
	if (!adb) {
		log_error("client %llu: authentication database \"%s\" is not configured.",
			  (unsigned long long)c->id, dbname);
		client_disconnect(c, "08P01", "bouncer config error");
		return NULL;
	}
	if (poolctl_disabled(dbname)) {
		client_disconnect(c, "08P01", "authentication database \"%s\" is disabled", dbname);
		return NULL;
	}
	const char *sql = auth_query_of(db);
	size_t ul = strlen(c->user) + 1;
	struct authquery_lookup *l = calloc(1, sizeof(*l) + ul);
	pool_t *pool = pool_get(dbname, auth_user_of(db), adb);
	if (!l || !pool || !(l->sql = strdup(sql)) || !(l->source = source_of(db, c->database))) {
		if (l)
			free(l->sql);
		free(l);
		client_disconnect(c, "53200", "out of memory");
		return NULL;
	}
	memcpy(l->user, c->user, ul);
	l->c = c;
	l->done = done;
	l->scram = scram;
	l->mock_unknown = mock_unknown;
	l->pool = pool;
	pool_ref(pool);
	l->md5 = md5;
	l->values[0] = l->user;
	log_debug("client %llu: auth_query for user \"%s\" on %s/%s", (unsigned long long)c->id,
		  c->user, pool->dbname, pool->user);
	if (md5 && mock_unknown && pool->auth_pwenc == PWENC_UNKNOWN) {
		/* once per auth pool: the kind of mock an unknown user gets (mock_user) */
		l->asking_enc = true;
		l->task = (struct server_task){
		    .sql = "SHOW password_encryption", .arg = l,
		    .row = on_row, .done = on_done, .failed = on_failed};
		pool_run_task(pool, &l->task);
	} else {
		run_query(l);
	}
	/* it may have failed at once (the pool backs off): C is then closing, L freed */
	return c->state == CL_LOGIN ? l : NULL;
}

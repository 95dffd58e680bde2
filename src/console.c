/* Owns the admin console (see console.h): authorization of console users, parsing of
 * console commands, the SHOW results (PgBouncer's columns and types) and the commands
 * that wait for a condition (PAUSE, WAIT_CLOSE, RELOAD). */
#include "console.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "login.h"
#include "pool.h"
#include "poolctl.h"
#include "proto.h"
#include "reload.h"
#include "runtime.h"
#include "server.h"
#include "show.h"
#include "shutdown.h"
#include "stream.h"

/* What a console client waits for before its command completes. */
enum console_wait {
	CW_NONE,
	CW_PAUSE,      /* PAUSE: no server left in the paused pools */
	CW_WAIT_CLOSE, /* WAIT_CLOSE: no server of an older generation left */
	CW_RELOAD,     /* RELOAD: the reload running on the executor ended */
	CW_SET,        /* SET: the files it re-reads are read (console_set_done) */
	CW_SET_QUEUED, /* SET (the query in arg): a reload or another SET to end, then it runs */
};

/* The console part of a client (client->console). */
struct console_session {
	bool admin;           /* admin_users: every command; else SHOW only */
	enum console_wait wait;
	char *arg;            /* the database the waited command names, or NULL; a queued
	                       * SET's query */
	char tag[512];        /* its CommandComplete tag ("SET key=value", cut as PgBouncer's) */
	struct list node;     /* in waiters while waiting */
	client_t *owner;
	bool reading;         /* console_on_input runs for it: its loop reads what follows */
};

#define CONSOLE_MAX_MESSAGE (64 * 1024) /* a longer console message is malformed (08P01);
                                          * below STREAM_READ_HIGH: it is waited for whole */
#define CONSOLE_MAX_QUERY 4096            /* a longer console command gets 54000 */

static struct runtime *rt;
static struct pbuf out;
static struct list_head waiters;

void console_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
	list_head_init(&waiters);
	show_init(r);
}

bool console_is_console_db(const char *db)
{
	return strcmp(db, "pgcoro") == 0 || strcmp(db, "pgbouncer") == 0;
}

/* True if NAME is in the comma-separated LIST (blanks around names ignored). */
static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == n && strncmp(p, name, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* ---- output ---------------------------------------------------------------------------- */

/* Sends what OUT holds to C; out of memory building it, C is closed (53200) rather than
 * left waiting for an answer. */
static void flush_out(client_t *c)
{
	bool failed = out.failed;
	if (!failed)
		stream_send(&c->st, out.data, out.len);
	pbuf_reset(&out);
	if (failed)
		client_disconnect(c, "53200", "out of memory building a console result");
}

static void send_error(client_t *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void send_error(client_t *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	proto_build_error(&out, "ERROR", sqlstate, msg, NULL, NULL);
	proto_build_ready(&out, 'I');
	flush_out(c);
}

static void complete(client_t *c, const char *tag)
{
	proto_build_command_complete(&out, tag);
	proto_build_ready(&out, 'I');
	flush_out(c);
}

/* ---- commands -------------------------------------------------------------------------- */

/* Splits the query into at most MAX blank-separated words (trailing ';' dropped), in
 * place. Returns the count, or -1 if there are more. */
static int split_words(char *q, char **w, int max)
{
	size_t len = strlen(q);
	while (len > 0 && (isspace((unsigned char)q[len - 1]) || q[len - 1] == ';'))
		q[--len] = '\0';
	int n = 0;
	for (char *p = q; *p;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (n == max)
			return -1;
		w[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

static struct console_session *session(client_t *c) { return c->console; }

/* C's command waits for KIND (DB its argument, TAG its completion tag). */
static void wait_for(client_t *c, enum console_wait kind, const char *db, const char *tag)
{
	struct console_session *cs = session(c);
	free(cs->arg);
	cs->arg = db ? strdup(db) : NULL;
	if (db && !cs->arg) {
		send_error(c, "53200", "out of memory");
		return;
	}
	cs->wait = kind;
	snprintf(cs->tag, sizeof(cs->tag), "%s", tag);
	list_append(&waiters, &cs->node);
	stream_set_read(&c->st, false); /* the next command waits for this one */
	console_poll();
}

static bool db_known(client_t *c, const char *db)
{
	if (cfg_find_db(rt->cfg, db))
		return true;
	send_error(c, "08P01", "no such database: %s", db);
	return false;
}

/* SET key = value (or TO; the value bare or in single quotes, '' for a quote): Q points
 * after "SET". Fills KEY and VALUE (at most their sizes); false if it does not parse. */
static bool parse_set(const char *q, char *key, size_t keylen, char *value, size_t vallen)
{
	while (isspace((unsigned char)*q))
		q++;
	size_t n = 0;
	while (isalnum((unsigned char)*q) || *q == '_') {
		if (n + 1 >= keylen)
			return false;
		key[n++] = *q++;
	}
	key[n] = 0;
	while (isspace((unsigned char)*q))
		q++;
	if (!n)
		return false;
	if (*q == '=')
		q++;
	else if (strncasecmp(q, "to", 2) == 0 && isspace((unsigned char)q[2]))
		q += 2;
	else
		return false;
	while (isspace((unsigned char)*q))
		q++;
	n = 0;
	if (*q == '\'') {
		for (q++;; q++) {
			if (!*q)
				return false; /* unterminated */
			if (*q == '\'' && q[1] != '\'')
				break;
			if (*q == '\'')
				q++;
			if (n + 1 >= vallen)
				return false;
			value[n++] = *q;
		}
		q++;
	} else {
		while (*q && *q != ';') {
			if (n + 1 >= vallen)
				return false;
			value[n++] = *q++;
		}
		while (n > 0 && isspace((unsigned char)value[n - 1]))
			n--;
	}
	value[n] = 0;
	while (isspace((unsigned char)*q) || *q == ';')
		q++;
	return *q == 0;
}

/* PgBouncer's parameters a driver may SET on connecting: answered, ignored */
static const char *const fake_params[] = {"client_encoding", "default_transaction_isolation",
					  "standard_conforming_strings", "datestyle", "timezone",
					  NULL};

/* The answer to C's SET: done (TAG, after NOTICE when not NULL) or, when not OK, PgBouncer's
 * 08P01 "SET failed" with WHY as the detail. */
static void answer_set(client_t *c, bool ok, const char *why, const char *notice,
		       const char *tag)
{
	if (!ok) {
		proto_build_error(&out, "ERROR", "08P01", "SET failed", why, NULL);
		proto_build_ready(&out, 'I');
		flush_out(c);
		return;
	}
	if (notice)
		proto_build_notice(&out, "NOTICE", "00000", notice, NULL);
	complete(c, tag);
}

/* SET key = value, as PgBouncer's: the key changed as a reload of the file with it changed
 * would (reload_set), tag "SET key=value"; refused with 08P01 "SET failed" and the reason
 * as the detail. QUERY starts with "SET". */
static void run_set(client_t *c, const char *query)
{
	char key[64], value[CONSOLE_MAX_QUERY + 1], msg[1024];
	if (!parse_set(query + 3, key, sizeof(key), value, sizeof(value))) {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
		return;
	}
	for (int i = 0; fake_params[i]; i++)
		if (strcasecmp(key, fake_params[i]) == 0) {
			answer_set(c, true, NULL, "SET ignored", "SET");
			return;
		}
	if (!session(c)->admin) {
		send_error(c, "08P01", "admin access needed");
		return;
	}
	char tag[sizeof(session(c)->tag)];
	int keylen = (int)strlen(key); /* below sizeof(key) */
	snprintf(tag, sizeof(tag), "SET %s=%.*s", key, (int)sizeof(tag) - 6 - keylen, value);
	switch (reload_set(key, value, c->user, msg, sizeof(msg))) {
	case RELOAD_SET_DONE:
		answer_set(c, true, NULL, NULL, tag);
		break;
	case RELOAD_SET_IGNORED:
		answer_set(c, true, NULL, msg, tag);
		break;
	case RELOAD_SET_READING:
		wait_for(c, CW_SET, NULL, tag);
		break;
	case RELOAD_SET_BUSY:
		wait_for(c, CW_SET_QUEUED, query, "SET");
		break;
	case RELOAD_SET_FAILED:
		answer_set(c, false, msg, NULL, NULL);
		break;
	}
}

static void run(client_t *c, char *query)
{
	struct console_session *cs = session(c);
	const char *q = query + strspn(query, " \t\r\n");
	if (strncasecmp(q, "set", 3) == 0 && isspace((unsigned char)q[3])) {
		run_set(c, q);
		return;
	}
	char copy[CONSOLE_MAX_QUERY + 1];
	snprintf(copy, sizeof(copy), "%s", query);
	char *w[4];
	int n = split_words(copy, w, 4);
	if (n == 0) {
		proto_build_empty_query(&out);
		proto_build_ready(&out, 'I');
		flush_out(c);
		return;
	}
	if (n < 0) {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
		return;
	}
	if (strcasecmp(w[0], "show") == 0) {
		if (n != 2) {
			send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
			return;
		}
		if (!show_build(&out, w[1])) {
			send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
			return;
		}
		proto_build_ready(&out, 'I');
		flush_out(c);
		return;
	}
	if (!cs->admin) {
		send_error(c, "08P01", "admin access needed");
		return;
	}
	const char *db = n >= 2 ? w[1] : NULL;
	if (n > 2) {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
	} else if (strcasecmp(w[0], "pause") == 0) {
		if (db && !db_known(c, db))
			return;
		if (!poolctl_pause(db))
			send_error(c, "53200", "out of memory");
		else
			wait_for(c, CW_PAUSE, db, "PAUSE");
	} else if (strcasecmp(w[0], "resume") == 0) {
		poolctl_resume(db);
		complete(c, "RESUME");
	} else if (strcasecmp(w[0], "disable") == 0 || strcasecmp(w[0], "enable") == 0 ||
		   strcasecmp(w[0], "kill") == 0) {
		if (!db) {
			send_error(c, "08P01", "%s needs a database name", w[0]);
			return;
		}
		if (!db_known(c, db))
			return;
		bool ok = true;
		if (strcasecmp(w[0], "enable") == 0)
			poolctl_enable(db);
		else if (strcasecmp(w[0], "disable") == 0)
			ok = poolctl_disable(db);
		else
			ok = poolctl_kill(db);
		if (!ok)
			send_error(c, "53200", "out of memory");
		else
			complete(c, strcasecmp(w[0], "kill") == 0	 ? "KILL"
				    : strcasecmp(w[0], "enable") == 0 ? "ENABLE"
								       : "DISABLE");
	} else if (strcasecmp(w[0], "reconnect") == 0) {
		if (db && !db_known(c, db))
			return;
		poolctl_reconnect(db);
		complete(c, "RECONNECT");
	} else if (strcasecmp(w[0], "wait_close") == 0) {
		if (db && !db_known(c, db))
			return;
		wait_for(c, CW_WAIT_CLOSE, db, "WAIT_CLOSE");
	} else if (strcasecmp(w[0], "kill_client") == 0) {
		char *end;
		unsigned long long id = db ? strtoull(db, &end, 10) : 0;
		client_t *victim = db && *end == '\0' ? client_find(id) : NULL;
		if (!victim) {
			send_error(c, "42704", "no such client: %s", db ? db : "(none given)");
			return;
		}
		client_disconnect(victim, "57P01",
				  "terminating connection: KILL_CLIENT by an administrator");
		complete(c, "KILL_CLIENT");
	} else if (strcasecmp(w[0], "reload") == 0 && n == 1) {
		reload_start();
		wait_for(c, CW_RELOAD, NULL, "RELOAD");
	} else if (strcasecmp(w[0], "shutdown") == 0 && n == 1) {
		complete(c, "SHUTDOWN");
		stream_flush(&c->st);
		log_info("SHUTDOWN by %s", c->user);
		shutdown_begin(SHUTDOWN_SERVERS);
	} else {
		send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
	}
}

/* ---- sessions -------------------------------------------------------------------------- */

void console_login(client_t *c)
{
	const struct config *cfg = rt->cfg;
	bool admin = in_list(cfg->admin_users, c->user) || login_peer_is_self(c);
	if (!admin && !in_list(cfg->stats_users, c->user)) {
		client_disconnect(c, "28000", "not allowed: user \"%s\" is not in admin_users or "
				  "stats_users", c->user);
		return;
	}
	c->console = calloc(1, sizeof(*c->console));
	if (!c->console) {
		client_disconnect(c, "53200", "out of memory");
		return;
	}
	c->console->admin = admin;
	c->console->owner = c;
	list_init(&c->console->node);
	char *params[SERVER_NPARAMS] = {0};
	params[server_param_index("server_version")] = "15.0 (pgcoro " PGCORO_VERSION ")";
	params[server_param_index("client_encoding")] = "UTF8";
	params[server_param_index("server_encoding")] = "UTF8";
	params[server_param_index("DateStyle")] = "ISO";
	params[server_param_index("TimeZone")] = "UTC";
	params[server_param_index("standard_conforming_strings")] = "on";
	params[server_param_index("integer_datetimes")] = "on";
	params[server_param_index("application_name")] = "pgcoro";
	client_set_state(c, CL_CONSOLE);
	client_send_welcome(c, params);
	if (rt->cfg->log_connections)
		log_info("client %llu %s (%s@%s): console login (%s)", (unsigned long long)c->id,
			 client_peer(c), c->user, c->database, admin ? "admin" : "stats");
}

void console_on_input(client_t *c)
{
	struct console_session *cs = session(c);
	bool outer = !cs->reading;
	cs->reading = true;
	while (c->state == CL_CONSOLE && session(c)->wait == CW_NONE &&
	       !stream_output_full(&c->st)) { /* a full output resumes at its drain */
		struct proto_msg m;
		if (client_next(c, CONSOLE_MAX_MESSAGE, &m) != PROTO_OK)
			break; /* not all here yet, or closed */
		if (m.type == 'X') {
			client_disconnect(c, NULL, "client sent Terminate");
			break;
		}
		if (m.type != 'Q') {
			client_disconnect(c, "08P01",
					  "the admin console supports only the simple query protocol");
			break;
		}
		char q[CONSOLE_MAX_QUERY + 1];
		bool fits = m.blen <= CONSOLE_MAX_QUERY; /* the text and its NUL */
		if (fits) {
			memcpy(q, m.body, m.blen);
			q[m.blen] = '\0';
		}
		client_take(c, &m);
		if (fits)
			run(c, q);
		else
			send_error(c, "54000", "console command longer than %d bytes", CONSOLE_MAX_QUERY);
	}
	if (outer)
		cs->reading = false;
}

/* C's command has answered: its next input is read (by the running console_on_input loop
 * of C if this happens inside it). */
static void read_next(client_t *c)
{
	stream_set_read(&c->st, true);
	if (!session(c)->reading) {
		console_on_input(c);
		if (c->state == CL_CONSOLE)
			stream_input_consumed(&c->st);
	}
}

/* C's wait is over: its command completes and its next input is read. */
static void wait_done(client_t *c, bool ok)
{
	struct console_session *cs = session(c);
	list_del(&waiters, &cs->node);
	cs->wait = CW_NONE;
	if (c->state != CL_CONSOLE)
		return; /* closed meanwhile */
	if (ok)
		complete(c, cs->tag);
	else
		send_error(c, "F0000", "%s failed: the running configuration stays (see the log)",
			   cs->tag);
	read_next(c);
}

/* The SETs that waited for a reload or another SET run, in order, until one has to wait
 * again. */
static void run_queued_sets(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		if (reload_running())
			return;
		if (cs->wait != CW_SET_QUEUED)
			continue;
		list_del(&waiters, &cs->node);
		cs->wait = CW_NONE;
		char *query = cs->arg;
		cs->arg = NULL;
		client_t *c = cs->owner;
		if (c->state == CL_CONSOLE) {
			run_set(c, query);
			if (cs->wait == CW_NONE)
				read_next(c);
		}
		free(query);
	}
}

/* A waiter whose condition holds, or NULL. */
static struct console_session *done_waiter(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		if ((cs->wait == CW_PAUSE && poolctl_pause_done(cs->arg)) ||
		    (cs->wait == CW_WAIT_CLOSE && poolctl_close_done(cs->arg)) ||
		    cs->owner->state != CL_CONSOLE)
			return cs;
	}
	return NULL;
}

void console_poll(void)
{
	static bool polling; /* a completed command may start another wait: no nesting */
	if (polling || list_empty(&waiters))
		return;
	polling = true;
	struct console_session *cs;
	while ((cs = done_waiter()))
		wait_done(cs->owner, true);
	polling = false;
}

void console_reload_done(bool ok)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		if (cs->wait == CW_RELOAD)
			wait_done(cs->owner, ok);
	}
	run_queued_sets();
}

void console_set_done(bool ok, const char *msg)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		struct console_session *cs = list_entry(pos, struct console_session, node);
		if (cs->wait != CW_SET)
			continue;
		client_t *c = cs->owner;
		list_del(&waiters, &cs->node);
		cs->wait = CW_NONE;
		if (c->state == CL_CONSOLE) {
			answer_set(c, ok, msg, ok ? msg : NULL, cs->tag);
			read_next(c);
		}
		break; /* one SET reads files at a time */
	}
	run_queued_sets();
}

void console_forget(client_t *c)
{
	struct console_session *cs = c->console;
	if (!cs)
		return;
	if (cs->wait != CW_NONE)
		list_del(&waiters, &cs->node);
	free(cs->arg);
	free(cs);
	c->console = NULL;
}

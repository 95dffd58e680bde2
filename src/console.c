/* Owns the admin console (see console.h): authorization of console users and their
 * client limits, parsing of console commands and PgBouncer's errors for them (the SHOW
 * results are show.c's), the console's counters, and the commands that wait for a
 * condition (PAUSE, WAIT_CLOSE, RELOAD, SUSPEND, a SET that re-reads files). */
#include "console.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

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
#include "stats.h"
#include "stream.h"
#include "takeover.h"

/* What a console client waits for before its command completes. */
enum console_wait {
	CW_NONE,
	CW_PAUSE,      /* PAUSE: no server left in the paused pools */
	CW_WAIT_CLOSE, /* WAIT_CLOSE: no server of an older generation left */
	CW_RELOAD,     /* RELOAD: the reload running on the executor ended */
	CW_SET,        /* SET: the files it re-reads are read (console_set_done) */
	CW_SET_QUEUED, /* SET (the query in arg): a reload or another SET to end, then it runs */
	CW_SUSPEND,    /* SUSPEND: no server in use outside session mode */
	CW_FDS,        /* SHOW FDS: the pools quiet (takeover_quiet) */
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
static struct event suspend_ev; /* polls while a SUSPEND waits: a server's release is
                                 * no event of the console's */

#define SUSPEND_POLL_USEC 20000

static bool suspend_waits(void)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &waiters)
	{
		enum console_wait w = list_entry(pos, struct console_session, node)->wait;
		if (w == CW_SUSPEND || w == CW_FDS)
			return true;
	}
	return false;
}

static void suspend_cb(evutil_socket_t fd, short what, void *arg)
{
	console_poll();
	if (!suspend_waits())
		event_del(&suspend_ev);
}

void console_init(struct runtime *r)
{
	rt = r;
	pbuf_init(&out);
	list_head_init(&waiters);
	event_assign(&suspend_ev, rt->base, -1, EV_PERSIST, suspend_cb, NULL);
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

/* PgBouncer's answer to what it does not understand. */
static void syntax_error(client_t *c, const char *query)
{
	send_error(c, "08P01", "invalid command '%s', use SHOW HELP;", query);
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
		syntax_error(c, query);
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

/* ---- commands other than SHOW and SET: each gets C, its argument ARG (NULL: none) and
 * the QUERY as sent (for the syntax error). Their errors are PgBouncer's texts, 08P01. */

static bool globally_held(client_t *c)
{
	if (!poolctl_paused(NULL) && !poolctl_suspended())
		return false;
	send_error(c, "08P01", "already suspended/paused");
	return true;
}

/* ARG names a database the command may act on: not the console's own ("cannot WHAT
 * admin db"), and one that exists. */
static bool db_ok(client_t *c, const char *arg, const char *what)
{
	if (console_is_console_db(arg)) {
		send_error(c, "08P01", "cannot %s admin db: %s", what, arg);
		return false;
	}
	return db_known(c, arg);
}

static void cmd_pause(client_t *c, const char *arg, const char *query)
{
	if (globally_held(c) || (arg && !db_ok(c, arg, "pause")))
		return;
	if (!poolctl_pause(arg))
		send_error(c, "53200", "out of memory");
	else
		wait_for(c, CW_PAUSE, arg, "PAUSE");
}

static void cmd_resume(client_t *c, const char *arg, const char *query)
{
	if (rt->shutdown != SHUTDOWN_NONE) {
		send_error(c, "08P01", "pooler is shutting down");
	} else if (!arg) {
		if (!poolctl_suspended() && !poolctl_any_paused()) {
			send_error(c, "08P01", "pooler is not paused/suspended");
			return;
		}
		poolctl_unsuspend();
		poolctl_resume(NULL);
		complete(c, "RESUME");
	} else if (db_known(c, arg)) {
		if (!poolctl_paused(arg)) {
			send_error(c, "08P01", "database %s is not paused", arg);
			return;
		}
		poolctl_resume(arg);
		complete(c, "RESUME");
	}
}

/* Polls the condition a SUSPEND or SHOW FDS waits for. */
static void arm_suspend_poll(const char *what)
{
	struct timeval tv = {0, SUSPEND_POLL_USEC};
	if (suspend_waits() && !event_pending(&suspend_ev, EV_TIMEOUT, NULL) &&
	    event_add(&suspend_ev, &tv) != 0)
		log_warning("%s: cannot arm its timer: answered once a server closes", what);
}

/* SHOW FDS (an online restart, takeover.h): once the pools are quiet, every socket that
 * can move is sent with its row. */
static void cmd_show_fds(client_t *c)
{
	const char *why = session(c)->admin ? takeover_refusal(c) : "admin access needed";
	if (why) {
		send_error(c, "08P01", "%s", why);
		return;
	}
	takeover_quiesce(c);
	wait_for(c, CW_FDS, NULL, "SHOW");
	arm_suspend_poll("SHOW FDS");
}

static void cmd_suspend(client_t *c, const char *arg, const char *query)
{
	if (arg) {
		syntax_error(c, query);
	} else if (globally_held(c)) {
		return;
	} else if (poolctl_any_paused()) {
		send_error(c, "08P01", "cannot suspend with paused databases");
	} else {
		poolctl_suspend();
		wait_for(c, CW_SUSPEND, NULL, "SUSPEND");
		arm_suspend_poll("SUSPEND");
	}
}

static void cmd_enable_disable(client_t *c, const char *arg, bool enable)
{
	if (!arg) {
		send_error(c, "08P01", "a database is required");
		return;
	}
	if (!db_ok(c, arg, enable ? "enable" : "disable"))
		return;
	if (enable)
		poolctl_enable(arg);
	else if (!poolctl_disable(arg)) {
		send_error(c, "53200", "out of memory");
		return;
	}
	complete(c, enable ? "ENABLE" : "DISABLE");
}

static void cmd_enable(client_t *c, const char *arg, const char *query)
{
	cmd_enable_disable(c, arg, true);
}

static void cmd_disable(client_t *c, const char *arg, const char *query)
{
	cmd_enable_disable(c, arg, false);
}

static void cmd_kill(client_t *c, const char *arg, const char *query)
{
	if (globally_held(c) || (arg && !db_ok(c, arg, "kill")))
		return;
	if (!poolctl_kill(arg))
		send_error(c, "53200", "out of memory");
	else
		complete(c, "KILL");
}

static void cmd_kill_client(client_t *c, const char *arg, const char *query)
{
	unsigned long long id;
	if (!arg || sscanf(arg, "%llu", &id) != 1) { /* PgBouncer's reading of the id */
		send_error(c, "08P01", "invalid client pointer supplied");
		return;
	}
	client_t *victim = client_find(id);
	if (!victim) {
		send_error(c, "08P01", "client not found");
		return;
	}
	client_disconnect(victim, "57P01", "admin forced disconnect");
	complete(c, "KILL_CLIENT");
}

static void cmd_reconnect(client_t *c, const char *arg, const char *query)
{
	if (arg && !db_ok(c, arg, "reconnect"))
		return;
	poolctl_reconnect(arg);
	complete(c, "RECONNECT");
}

static void cmd_wait_close(client_t *c, const char *arg, const char *query)
{
	if (arg && console_is_console_db(arg)) {
		send_error(c, "08P01", "cannot wait in admin db: %s", arg);
		return;
	}
	if (arg && !db_known(c, arg))
		return;
	wait_for(c, CW_WAIT_CLOSE, arg, "WAIT_CLOSE");
}

static void cmd_reload(client_t *c, const char *arg, const char *query)
{
	if (arg) {
		syntax_error(c, query);
		return;
	}
	reload_start();
	wait_for(c, CW_RELOAD, NULL, "RELOAD");
}

/* SHUTDOWN: exit now (answered first, unlike PgBouncer, which leaves the question
 * open); WAIT_FOR_SERVERS / WAIT_FOR_CLIENTS: SIGINT's and SIGTERM's orderly stops. */
static void cmd_shutdown(client_t *c, const char *arg, const char *query)
{
	enum rt_shutdown mode = SHUTDOWN_NONE;
	if (arg && strcasecmp(arg, "wait_for_servers") == 0)
		mode = SHUTDOWN_SERVERS;
	else if (arg && strcasecmp(arg, "wait_for_clients") == 0)
		mode = SHUTDOWN_CLIENTS;
	else if (arg) {
		syntax_error(c, query);
		return;
	}
	log_info("SHUTDOWN%s%s by %s", arg ? " " : "", arg ? arg : "", c->user);
	takeover_hand_over(); /* after SHOW FDS: the sockets are the new process's */
	if (mode == SHUTDOWN_NONE)
		shutdown_now("SHUTDOWN"); /* the loop stops after this callback */
	else
		shutdown_begin(mode);     /* TCP closed before the answer goes out */
	complete(c, "SHUTDOWN");
	stream_flush(&c->st);
}

static const struct {
	const char *name;
	void (*fn)(client_t *c, const char *arg, const char *query);
} commands[] = {
    {"pause", cmd_pause},         {"resume", cmd_resume},
    {"suspend", cmd_suspend},     {"enable", cmd_enable},
    {"disable", cmd_disable},     {"kill", cmd_kill},
    {"kill_client", cmd_kill_client}, {"reconnect", cmd_reconnect},
    {"wait_close", cmd_wait_close}, {"reload", cmd_reload},
    {"shutdown", cmd_shutdown},
};

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
		syntax_error(c, query);
		return;
	}
	if (strcasecmp(w[0], "show") == 0) {
		if (n != 2) {
			syntax_error(c, query);
			return;
		}
		if (strcasecmp(w[1], "fds") == 0) {
			cmd_show_fds(c);
			return;
		}
		if (!show_build(&out, w[1])) {
			syntax_error(c, query);
			return;
		}
		proto_build_ready(&out, 'I');
		flush_out(c);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcasecmp(w[0], commands[i].name) != 0)
			continue;
		if (!cs->admin)
			send_error(c, "08P01", "admin access needed");
		else if (n > 2)
			syntax_error(c, query);
		else
			commands[i].fn(c, n == 2 ? w[1] : NULL, query);
		return;
	}
	syntax_error(c, query);
}

/* ---- sessions -------------------------------------------------------------------------- */

/* The client limit a new console session of C would pass, or NULL: the console's
 * sessions count against max_db_client_connections (PgBouncer's admin database), and
 * against max_user_client_connections with the user's sessions in the pools; users in
 * admin_users are not limited here, as PgBouncer's. */
static const char *client_limit(const client_t *c)
{
	const struct config *cfg = rt->cfg;
	if (in_list(cfg->admin_users, c->user))
		return NULL;
	if (cfg->max_db_client_connections > 0 &&
	    client_console_clients()->count >= cfg->max_db_client_connections)
		return "max_db_client_connections";
	const struct cfg_user *u = cfg_find_user(cfg, c->user);
	int max = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections
							   : cfg->max_user_client_connections;
	if (max > 0 && show_user_clients(c->user) >= max)
		return "max_user_client_connections";
	return NULL;
}

void console_login(client_t *c)
{
	const struct config *cfg = rt->cfg;
	bool admin = in_list(cfg->admin_users, c->user) || login_peer_is_self(c);
	/* auth_type any lets every user name in (SHOW only), as PgBouncer */
	if (!admin && !in_list(cfg->stats_users, c->user) && cfg->auth_type != AUTH_ANY) {
		client_disconnect(c, "28000", "not allowed: user \"%s\" is not in admin_users or "
				  "stats_users", c->user);
		return;
	}
	const char *full = client_limit(c);
	if (full) {
		client_disconnect(c, "53300", "client connections exceeded (%s)", full);
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
	stats_console()->client_login_count++;
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
			client_disconnect(c, NULL, "client close request"); /* PgBouncer's words */
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
		stats_console()->query_count++; /* one statement, one transaction */
		stats_console()->xact_count++;
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
	enum console_wait was = cs->wait;
	list_del(&waiters, &cs->node);
	cs->wait = CW_NONE;
	if (c->state != CL_CONSOLE)
		return; /* closed meanwhile */
	if (was == CW_FDS) {
		if (!takeover_show_fds(c))
			return; /* C is closed */
	} else if (ok)
		complete(c, cs->tag);
	else /* PgBouncer's text; the running configuration stays */
		send_error(c, "F0000", "%s failed, see logs for additional details", cs->tag);
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
		    (cs->wait == CW_SUSPEND && poolctl_suspend_done()) ||
		    (cs->wait == CW_FDS && takeover_quiet()) ||
		    (cs->wait == CW_WAIT_CLOSE && poolctl_close_done(cs->arg)) ||
		    cs->owner->state != CL_CONSOLE)
			return cs;
	}
	return NULL;
}

void console_poll(void)
{
	static bool polling; /* a completed command may start another wait: no nesting */
	if (poolctl_suspended() && list_empty(client_console_clients())) {
		log_info("the console left while suspended: RESUME");
		poolctl_unsuspend();
	} else if (takeover_orphaned()) {
		log_info("the console that asked SHOW FDS left before SHUTDOWN: RESUME");
		poolctl_unsuspend();
	}
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

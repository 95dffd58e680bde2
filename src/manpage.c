/* Owns the manual pages pgcoro(8) and pgcoro.ini(5): `make man` runs
 * `pgcoro --man NAME`, so every key of the settings table, with its default and its
 * one-line description, is in pgcoro.ini(5) by construction. */
#include "manpage.h"

#include <string.h>

#include "config.h"

/* TEXT with roff's special characters escaped. */
static void roff(FILE *f, const char *text)
{
	if (*text == '.' || *text == '\'')
		fputs("\\&", f);
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\e", f);
		else if (*p == '-')
			fputs("\\-", f);
		else
			fputc(*p, f);
	}
}

static void header(FILE *f, const char *name, int section, const char *version,
		   const char *what)
{
	fprintf(f, ".TH %s %d \"\" \"pgcoro %s\" \"pgcoro\"\n.SH NAME\n%s \\- %s\n", name, section,
		version, name, what);
}

static void page_ini(FILE *f, const char *version)
{
	header(f, "PGCORO.INI", 5, version, "configuration file of pgcoro");
	fputs(".SH DESCRIPTION\n"
	      "pgcoro reads an ini file: a [pgcoro] section of settings, a [databases] section "
	      "of pools and an optional [users] section. Lines starting with ; or # are "
	      "comments; a line %include FILE reads FILE there. Durations are seconds unless "
	      "suffixed (ms, s, min, h); sizes accept kB, MB, GB. An invalid file is refused with "
	      "\"file:line: reason\": at start pgcoro exits with status 2, on reload (SIGHUP) the "
	      "running configuration stays.\n"
	      ".PP\nPgBouncer's pgbouncer.ini is read as it is: [pgbouncer] is the main section, "
	      "a key or entry set again later wins, [databases] and [users] follow PgBouncer's "
	      "syntax, and every key PgBouncer documents is known: it works, or (where pgcoro "
	      "does the job differently) it is accepted with one warning naming what pgcoro "
	      "does, or (where pgcoro lacks the feature) a value other than its off value is "
	      "refused as not supported yet.\n"
	      ".PP\nThe annotated example /etc/pgcoro/pgcoro.ini explains every key at length.\n"
	      ".SH \"[pgcoro] SETTINGS\"\n", f);
	size_t n;
	const struct cfg_key *keys = cfg_keys(&n);
	for (size_t i = 0; i < n; i++) {
		fputs(".TP\n.B ", f);
		roff(f, keys[i].key);
		fputs("\n", f);
		roff(f, keys[i].help);
		fputs(". Default: ", f);
		if (keys[i].def[0]) {
			fputs("\\fB", f);
			roff(f, keys[i].def);
			fputs("\\fR", f);
		} else {
			fputs("empty", f);
		}
		fputs(".\n", f);
	}
	fputs(".SH \"[databases]\"\n"
	      "Each line NAME = CONNINFO defines the database clients ask for as NAME: CONNINFO is "
	      "a libpq connection string (host, port, dbname, user, password, sslmode, "
	      "target_session_attrs, ...) used for the server connections, plus pgcoro's own "
	      "pool_size, pool_mode, min_pool_size, reserve_pool_size, max_db_connections, "
	      "max_db_client_connections, server_lifetime, query_wait_timeout, connect_query, "
	      "load_balance_hosts and PgBouncer's datestyle and timezone. "
	      "NAME * matches any database. When the conninfo of a database changes on reload, "
	      "its servers are replaced as they become idle.\n"
	      ".SH \"[users]\"\n"
	      "Each line USER = SETTINGS sets pool_mode, pool_size, reserve_pool_size, "
	      "max_user_connections, max_user_client_connections, query_timeout, "
	      "query_wait_timeout, idle_transaction_timeout, transaction_timeout and "
	      "client_idle_timeout for that user (a user's setting wins over the database's "
	      "and the global one).\n"
	      ".SH \"SEE ALSO\"\npgcoro(8)\n",
	      f);
}

static void page_daemon(FILE *f, const char *version)
{
	header(f, "PGCORO", 8, version, "PostgreSQL connection pooler");
	fputs(".SH SYNOPSIS\n.B pgcoro\n[\\fB\\-d\\fR] [\\fB\\-q\\fR] [\\fB\\-v\\fR] "
	      "[\\fB\\-u\\fR \\fIuser\\fR] [\\fB\\-c\\fR] \\fIconfig\\fR\n.br\n.B pgcoro\n"
	      "\\fB\\-\\-check\\-config\\fR \\fIconfig\\fR\n.br\n.B pgcoro\n"
	      "\\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR\n"
	      ".SH DESCRIPTION\n"
	      "pgcoro sits between PostgreSQL clients and servers and shares a few server "
	      "connections among many clients, in session, transaction or statement pooling "
	      "mode. Clients connect to it as to PostgreSQL (TCP or unix socket); every "
	      "protocol feature passes through unchanged. It runs in the foreground, logs to "
	      "standard error or syslog (and a logfile) and talks to systemd "
	      "(Type=notify). It reads PgBouncer's pgbouncer.ini as it is, and takes PgBouncer's "
	      "command line and signals.\n"
	      ".SH OPTIONS\n"
	      ".TP\n[\\fB\\-c\\fR] \\fIconfig\\fR\nRun with the configuration file \\fIconfig\\fR "
	      "(see pgcoro.ini(5)): pgcoro's pgcoro.ini or PgBouncer's pgbouncer.ini.\n"
	      ".TP\n\\fB\\-d\\fR, \\fB\\-\\-daemon\\fR\nRun in the background (needs pidfile, "
	      "and logfile or syslog); nothing is written to standard error.\n"
	      ".TP\n\\fB\\-q\\fR, \\fB\\-\\-quiet\\fR\nLog nothing to standard error (the "
	      "logfile and syslog still).\n"
	      ".TP\n\\fB\\-v\\fR, \\fB\\-\\-verbose\\fR\nLog at level debug.\n"
	      ".TP\n\\fB\\-u\\fR \\fIuser\\fR, \\fB\\-\\-user\\fR=\\fIuser\\fR\nSwitch to the OS "
	      "user \\fIuser\\fR once the configuration is read (when started as root).\n"
	      ".TP\n\\fB\\-R\\fR, \\fB\\-\\-reboot\\fR, \\fB\\-\\-takeover\\fR\nOnline restart, as "
	      "PgBouncer's: take the listening sockets, the idle clients and their servers of the "
	      "pgcoro running with this configuration (over its console's unix socket: SUSPEND, "
	      "SHOW FDS, SHUTDOWN); it exits. TLS connections cannot move: it is refused while "
	      "one is open.\n"
	      ".TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nPrint the version (as SHOW VERSION) and "
	      "exit.\n"
	      ".TP\n\\fB\\-\\-check\\-config\\fR \\fIconfig\\fR\nValidate the file and its "
	      "auth_file, print the result, exit 0 (valid) or 2.\n"
	      ".TP\n\\fB\\-\\-man\\fR \\fIpage\\fR\nWrite the roff source of pgcoro.8 or "
	      "pgcoro.ini.5.\n"
	      ".SH SIGNALS\n"
	      ".TP\n.B SIGHUP\nReload: the configuration file and the auth_file are read and "
	      "validated, then swapped in at once; an invalid file keeps the running "
	      "configuration and the reason is logged. Changed limits and pool sizes apply at "
	      "once; servers whose connection settings changed are replaced as they become "
	      "idle. Listening addresses, executor_threads, pidfile, logfile and the syslog "
	      "settings need a restart (logged).\n"
	      ".TP\n.B SIGTERM\nAs the console's SHUTDOWN WAIT_FOR_CLIENTS: stop accepting "
	      "over TCP; the clients connected are served as before until they leave; exit "
	      "when none is left (console sessions included), or after shutdown_timeout.\n"
	      ".TP\n.B SIGINT\nAs the console's SHUTDOWN WAIT_FOR_SERVERS: stop accepting over "
	      "TCP; clients without a server are told (57P01) and closed; a client holding a "
	      "server is closed when it gives it back (at the end of its transaction; in "
	      "session mode, when it leaves); exit when none is left, or after "
	      "shutdown_timeout. The systemd unit stops pgcoro with it.\n"
	      ".PP\nWhile either waits, the unix socket stays open for the console; other "
	      "logins are refused (57P03) and SIGUSR2 is ignored.\n"
	      ".TP\n.B SIGQUIT\nExit at once: every client and server is closed now.\n"
	      ".TP\n.B SIGUSR1\nPause every database, as PAUSE on the console: idle servers "
	      "are closed, busy ones once released, and clients' queries wait. Logged when "
	      "received and again when no server is left.\n"
	      ".TP\n.B SIGUSR2\nResume every database, as RESUME on the console.\n"
	      ".PP\nA second SIGTERM or SIGINT exits at once. SIGPIPE is ignored.\n"
	      ".SH \"ADMIN CONSOLE\"\n"
	      "Users listed in admin_users (every command) or stats_users (SHOW only) connect to "
	      "the virtual database pgcoro, or pgbouncer, with any client, e.g. psql \\-U admin "
	      "pgcoro. SHOW HELP, VERSION, CONFIG, DATABASES, POOLS, CLIENTS, SERVERS, SOCKETS, "
	      "ACTIVE_SOCKETS, USERS, STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS, LISTS, STATE, "
	      "PEERS, PEER_POOLS, MEM, DNS_HOSTS, DNS_ZONES answer with PgBouncer 1.26's "
	      "columns. PAUSE [db] returns once no server is left (clients wait); RESUME [db]; "
	      "SUSPEND returns once no server is in use outside session mode, then nothing is "
	      "handed out or accepted until RESUME; "
	      "DISABLE db and ENABLE db refuse or admit new logins; RECONNECT [db] replaces the "
	      "servers as they become free and WAIT_CLOSE [db] waits for that; KILL [db] closes "
	      "the connections of db (or of all) and pauses it; KILL_CLIENT id (the id of SHOW "
	      "CLIENTS); RELOAD; SHUTDOWN (exit now), SHUTDOWN WAIT_FOR_SERVERS (as SIGINT), "
	      "SHUTDOWN WAIT_FOR_CLIENTS (as SIGTERM). Over the unix socket, the OS user pgcoro runs as is let in as "
	      "user pgbouncer (or pgcoro) without a password, to every command, as PgBouncer "
	      "does.\n"
	      ".SH SYSTEMD\n"
	      "pgcoro.service runs it as the pgcoro user (sysusers.d) with sd_notify: READY=1 "
	      "once listening, RELOADING=1 and READY=1 around a reload, STOPPING=1, STATUS= "
	      "with live counts, WATCHDOG=1 when the unit sets WatchdogSec. With "
	      "pgcoro.socket enabled the listening sockets come from systemd (socket "
	      "activation) and connections queue in the kernel while pgcoro restarts.\n"
	      ".SH \"EXIT STATUS\"\n0 after an orderly stop, 1 on a runtime failure, 2 on bad "
	      "usage or configuration.\n"
	      ".SH FILES\n/etc/pgcoro/pgcoro.ini, /run/pgcoro/.s.PGSQL.6432\n"
	      ".SH \"SEE ALSO\"\npgcoro.ini(5), systemd.socket(5)\n",
	      f);
}

bool manpage_write(FILE *f, const char *name, const char *version)
{
	if (strcmp(name, "pgcoro.ini.5") == 0)
		page_ini(f, version);
	else if (strcmp(name, "pgcoro.8") == 0)
		page_daemon(f, version);
	else
		return false;
	return true;
}

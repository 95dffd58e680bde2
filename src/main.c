/* The daemon's entry: command line (pgcoro's and PgBouncer's), config, the OS user and
 * the background (-u, -d), the runtime context, signals, the loop, and an orderly
 * shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth.h"
#include "authcache.h"
#include "clientkey.h"
#include "client.h"
#include "config.h"
#include "executor.h"
#include "hba.h"
#include "listener.h"
#include "log.h"
#include "login.h"
#include "manpage.h"
#include "metrics.h"
#include "peers.h"
#include "pool.h"
#include "poolctl.h"
#include "reload.h"
#include "runtime.h"
#include "sdnotify.h"
#include "stats.h"
#include "stream.h"
#include "server.h"
#include "shutdown.h"
#include "signals.h"
#include "takeover.h"
#include "tls.h"


static void usage(FILE *f)
{
	fprintf(f, "pgcoro %s — PostgreSQL connection pooler\n\n"
		   "usage: pgcoro [OPTION]... [-c] CONFIG    run (pgcoro.ini or pgbouncer.ini)\n"
		   "       pgcoro --check-config CONFIG       validate the config (and auth_file), exit\n"
		   "       pgcoro --man pgcoro.8|pgcoro.ini.5 write a manual page (roff)\n"
		   "       pgcoro --version | --help\n\n"
		   "Options (PgBouncer's):\n"
		   "  -d, --daemon         run in the background (needs pidfile, and logfile or syslog)\n"
		   "  -q, --quiet          log nothing to stderr (the logfile and syslog still)\n"
		   "  -u, --user=USER      switch to OS user USER after start (when run as root)\n"
		   "  -v, --verbose        log at level debug\n"
		   "  -R, --reboot, --takeover\n"
		   "                       online restart: take the sockets, clients and servers of\n"
		   "                       the pgcoro (or PgBouncer) running with this config over\n"
		   "                       its console's unix socket, then it exits\n"
		   "  -V, --version        show the version, then exit\n"
		   "  -h, --help           show this help, then exit\n\n"
		   "Exit status: 0 ok, 1 runtime failure, 2 bad usage or config.\n",
		PGCORO_VERSION);
}

/* Loads CONFIG, its auth_file, client TLS files and auth_hba_file into RT; on failure
 * prints the reason and returns false. */
static bool load_all(const char *path, struct runtime *rt)
{
	char err[1280];
	if (reload_load(path, &rt->cfg, &rt->auth, err, sizeof(err))) {
		if (reload_load_tls_hba(rt->cfg, &rt->tls, &rt->hba, err, sizeof(err)))
			return true;
		auth_free(rt->auth);
		cfg_free(rt->cfg);
	}
	fprintf(stderr, "pgcoro: %s\n", err);
	return false;
}

static void free_all(struct runtime *rt)
{
	SSL_CTX_free(rt->tls);
	hba_free(rt->hba);
	auth_free(rt->auth);
	cfg_free(rt->cfg);
	clientkey_clear();
}

/* Raises the soft open-files limit towards what max_client_conn and the pools may need
 * (up to the hard limit), as PgBouncer does, and warns when it stays below. */
static void raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)cfg->max_client_conn + 1024; /* servers, listeners, files */
	for (int i = 0; i < cfg->ndbs; i++)
		want += (rlim_t)(cfg->dbs[i].pool_size > 0 ? cfg->dbs[i].pool_size
							   : cfg->default_pool_size);
	if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("open files limit raised from %llu to %llu", (unsigned long long)was,
				 (unsigned long long)rl.rlim_cur);
		else
			rl.rlim_cur = was;
	}
	if (rl.rlim_cur < want)
		log_warning("open files limit %llu (hard %llu) is below what max_client_conn %d and "
			    "the pools may need (%llu): raise LimitNOFILE / ulimit -n",
			    (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			    cfg->max_client_conn, (unsigned long long)want);
}

static bool write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) == 0;
}

/* -u / user: becomes OS user NAME, as PgBouncer: only when run as root (or already that
 * user). False with the reason on stderr. */
static bool switch_user(const char *name)
{
	struct passwd *pw = getpwnam(name);
	if (!pw) {
		fprintf(stderr, "pgcoro: user \"%s\": no such OS user\n", name);
		return false;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
		return true;
	if (geteuid() != 0) {
		fprintf(stderr, "pgcoro: cannot switch to user \"%s\": not started as root\n", name);
		return false;
	}
	if (setgid(pw->pw_gid) != 0 || initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		fprintf(stderr, "pgcoro: cannot switch to user \"%s\": %s\n", name, strerror(errno));
		return false;
	}
	return true;
}

/* -d: into the background, as PgBouncer does: stdin, stdout and stderr to /dev/null, fork,
 * a new session, fork again; the parent exits 0. Before the loop and the executor exist
 * (threads do not survive fork). False with the reason on stderr. */
static bool daemonize(const struct config *cfg)
{
	if (!cfg->pidfile[0]) {
		fprintf(stderr, "pgcoro: -d (daemon) needs pidfile set\n");
		return false;
	}
	if (!cfg->logfile[0] && !cfg->syslog) {
		fprintf(stderr, "pgcoro: -d (daemon) needs logfile or syslog set\n");
		return false;
	}
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "pgcoro: cannot open /dev/null: %s\n", strerror(errno));
		return false;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "pgcoro: fork: %s\n", strerror(errno));
		close(fd);
		return false;
	}
	if (pid > 0)
		_exit(0);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	if (setsid() < 0)
		_exit(1);
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"check-config", required_argument, NULL, 'C'},
		{"config", required_argument, NULL, 'c'},
		{"version", no_argument, NULL, 'V'},
		{"man", required_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'h'},
		{"daemon", no_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"user", required_argument, NULL, 'u'},
		{"reboot", no_argument, NULL, 'R'},
		{"takeover", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL, *user = NULL;
	bool check_only = false, background = false, quiet = false, reboot = false;
	int verbose = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:C:Vhdqvu:R", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			path = optarg;
			check_only = true;
			break;
		case 'M':
			if (!manpage_write(stdout, optarg, PGCORO_VERSION)) {
				fprintf(stderr, "pgcoro: no manual page %s\n", optarg);
				return 2;
			}
			return fflush(stdout) == 0 ? 0 : 1;
		case 'V':
			printf("pgcoro %s\n", PGCORO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case 'd':
			background = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'u':
			user = optarg;
			break;
		case 'R':
			reboot = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path && optind < argc)
		path = argv[optind++];
	if (!path || optind < argc) {
		usage(stderr);
		return 2;
	}

	struct runtime rt = {.verbose = verbose};
	if (!load_all(path, &rt))
		return 2;
	if (check_only) {
		for (int i = 0; i < rt.cfg->nwarnings; i++)
			fprintf(stderr, "pgcoro: warning: %s\n", rt.cfg->warnings[i]);
		printf("%s: configuration OK (%d databases, %d auth_file users)\n", path,
		       rt.cfg->ndbs, rt.auth ? auth_count(rt.auth) : 0);
		free_all(&rt);
		return 0;
	}

	if (!user && rt.cfg->user[0])
		user = rt.cfg->user;
	if (user && !switch_user(user)) {
		free_all(&rt);
		return 2;
	}
	log_set_quiet(quiet || background);
	enum log_level level = verbose ? LOGL_DEBUG : cfg_log_level(rt.cfg);
	if (!log_init(level, rt.cfg->logfile, rt.cfg->syslog ? rt.cfg->syslog_ident : NULL,
		      rt.cfg->syslog_facility)) {
		fprintf(stderr, "pgcoro: cannot open logfile %s: %s\n", rt.cfg->logfile,
			strerror(errno));
		free_all(&rt);
		return 2;
	}
	if (background && !daemonize(rt.cfg)) {
		free_all(&rt);
		return 2;
	}
	for (int i = 0; i < rt.cfg->nwarnings; i++)
		log_warning("%s", rt.cfg->warnings[i]);
	if (reboot && !takeover_old_running(rt.cfg)) {
		log_info("-R (online restart): no running pgcoro on the unix socket: starting "
			 "normally");
		reboot = false;
	}
	signals_init(&rt);
	raise_nofile(rt.cfg);

	int status = 1;
	/* /metrics before the client sockets: once a client port accepts, all of them do
	 * (after an online restart, once the old process that held its port is gone) */
	if (!runtime_start(&rt, path) || !signals_start() ||
	    (reboot ? !takeover_run(&rt) || !metrics_start()
		    : !metrics_start() || !listener_start(&rt)))
		goto fail;
	if (rt.cfg->pidfile[0] && !write_pidfile(rt.cfg->pidfile)) {
		log_error("cannot write pidfile %s: %s", rt.cfg->pidfile, strerror(errno));
		goto fail;
	}
	log_info("pgcoro %s started: %d databases, pool_mode=%s, auth_type=%s", PGCORO_VERSION,
		 rt.cfg->ndbs, cfg_pool_mode_name(rt.cfg->pool_mode),
		 cfg_auth_type_name(rt.cfg->auth_type));
	sdnotify_init(rt.base);
	sdnotify_ready();
	event_base_dispatch(rt.base);
	status = 0;

fail:
	rt.shutting_down = true;
	listener_stop();
	if (rt.base) {
		client_close_all();
		pool_shutdown_all();
		exec_free(rt.exec);
		peers_free();
		client_reap(true);
		server_reap(true);
		pool_free_all();
		stream_cache_free();
		authcache_clear();
	}
	signals_free();
	shutdown_free();
	stats_free();
	metrics_free();
	poolctl_free();
	sdnotify_free();
	if (rt.cfg->pidfile[0] && status == 0)
		unlink(rt.cfg->pidfile);
	if (rt.base)
		event_base_free(rt.base);
	free_all(&rt);
	log_info("pgcoro stopped");
	log_close();
	return status;
}

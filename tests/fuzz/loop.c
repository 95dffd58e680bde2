/* Owns the harnesses' support (loop.h): the scratch directory and memory files, the
 * runtime built as main.c builds it, the socketpair peers and the loop driver that runs
 * pgcoro's event loop until it has nothing left to do. */
#include "loop.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "client.h"
#include "config.h"
#include "executor.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "poolctl.h"
#include "proto.h"
#include "reload.h"
#include "server.h"
#include "shutdown.h"

static void die(const char *what)
{
	fprintf(stderr, "fuzz harness: %s: %s\n", what, errno ? strerror(errno) : "failed");
	abort();
}

/* ---- files --------------------------------------------------------------------------- */

#define DIR_PREFIX "pgcoro-fuzz-" /* then the process id */
static char dir[64];

/* Removes PATH, a scratch directory (files only, no subdirectories). */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char f[512];
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
			unlink(f);
		}
	}
	if (d)
		closedir(d);
	rmdir(path);
}

static void remove_dir(void) { remove_tree(dir); }

/* A harness that crashed (abort, a sanitizer report, a timeout) left its directory: the
 * next one removes those whose process is gone. */
static void remove_stale(void)
{
	DIR *d = opendir("/tmp");
	struct dirent *e;
	char path[512];
	int pid;
	while (d && (e = readdir(d))) {
		if (sscanf(e->d_name, DIR_PREFIX "%d", &pid) == 1 && pid > 0 &&
		    kill(pid, 0) != 0 && errno == ESRCH) {
			snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
			remove_tree(path);
		}
	}
	if (d)
		closedir(d);
}

const char *fz_dir(void)
{
	if (!dir[0]) {
		remove_stale();
		snprintf(dir, sizeof(dir), "/tmp/" DIR_PREFIX "%d", (int)getpid());
		remove_tree(dir); /* a process of this id that crashed */
		if (mkdir(dir, 0700) != 0)
			die(dir);
		atexit(remove_dir);
	}
	return dir;
}

const char *fz_write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", fz_dir(), name);
	FILE *f = fopen(path, "w");
	if (!f)
		die(path);
	for (const char *p = text; *p;) {
		const char *at = strstr(p, "@DIR@");
		size_t n = at ? (size_t)(at - p) : strlen(p);
		fwrite(p, 1, n, f);
		if (!at)
			break;
		fputs(dir, f);
		p = at + 5;
	}
	if (fclose(f) != 0)
		die(path);
	return path;
}

const char *fz_memfile(const void *data, size_t len)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("pgcoro-fuzz", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len))
		die("writing the memory file");
	return path;
}

/* ---- the runtime --------------------------------------------------------------------- */

static struct runtime rt;
static enum log_level log_level = LOGL_ERROR;
static struct config *base_cfg;  /* what fz_start loaded: kept, never installed */
static struct config *installed; /* the copy fz_set_config installed */

void fz_log_restore(void) { log_set_level(log_level); }

struct runtime *fz_start(const char *config_path)
{
	static char path[256];
	char err[1280];
	snprintf(path, sizeof(path), "%s", config_path);
	if (!reload_load(path, &rt.cfg, &rt.auth, err, sizeof(err)) ||
	    !reload_load_tls_hba(rt.cfg, &rt.tls, &rt.hba, err, sizeof(err))) {
		fprintf(stderr, "fuzz harness: %s\n", err);
		abort();
	}
	const char *want = getenv("PGCORO_FUZZ_LOG"); /* =debug: see what happens */
	if (want && !log_level_parse(want, &log_level))
		die("PGCORO_FUZZ_LOG: not a log level");
	log_set_level(log_level);
	signal(SIGPIPE, SIG_IGN);
	if (!runtime_start(&rt, path) || !metrics_start())
		die("starting the runtime");
	base_cfg = rt.cfg;
	rt.cfg = NULL;
	fz_set_config(base_cfg);
	return &rt;
}

const struct config *fz_base_config(void) { return base_cfg; }

/* A copy of CFG. */
static struct config *copy_config(const struct config *cfg)
{
	char err[1024];
	struct config *c = cfg_with(cfg, "log_level", "error", err, sizeof(err));
	if (!c) {
		fprintf(stderr, "fuzz harness: copying the config: %s\n", err);
		abort();
	}
	return c;
}

void fz_set_config(const struct config *cfg)
{
	struct config *old = rt.cfg;
	rt.cfg = installed = copy_config(cfg);
	cfg_free(old);
}

void fz_undo_commands(const struct config *cfg, bool paused)
{
	shutdown_free();
	rt.shutdown = SHUTDOWN_NONE;
	rt.shutting_down = false;
	poolctl_unsuspend();
	poolctl_resume(NULL);
	poolctl_free();
	if (paused && !poolctl_pause(NULL))
		die("poolctl_pause");
	if (rt.cfg != installed) { /* SET or RELOAD replaced it (and freed ours) */
		installed = copy_config(cfg);
		reload_apply(installed, rt.auth);
	}
	fz_log_restore();
}

void fz_pool_ready(pool_t *pool)
{
	static const char *const reported[][2] = {
		{"application_name", ""},         {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},         {"default_transaction_read_only", "off"},
		{"in_hot_standby", "off"},         {"integer_datetimes", "on"},
		{"IntervalStyle", "postgres"},     {"is_superuser", "off"},
		{"server_encoding", "UTF8"},       {"server_version", "15.0"},
		{"standard_conforming_strings", "on"}, {"TimeZone", "UTC"},
	};
	char *params[SERVER_NPARAMS] = {0};
	for (size_t i = 0; i < sizeof(reported) / sizeof(reported[0]); i++)
		params[server_param_index(reported[i][0])] = (char *)reported[i][1];
	if (!pool_connect_ok(pool, params))
		abort(); /* out of memory in a fuzz run */
}

/* ---- peers --------------------------------------------------------------------------- */

#define MAX_PEERS 8
static struct fz_peer *peers[MAX_PEERS];
static int npeers;

void fz_pair(struct fz_peer *p)
{
	int sv[2];
	struct stat st;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0 ||
	    fstat(sv[0], &st) != 0 || npeers == MAX_PEERS)
		die("socketpair");
	p->pg_fd = sv[0];
	p->fd = sv[1];
	p->pg_dev = st.st_dev;
	p->pg_ino = st.st_ino;
	p->eof = false;
	p->open = true;
	peers[npeers++] = p;
}

void fz_client(struct fz_peer *p)
{
	fz_pair(p);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	client_accept(p->pg_fd, (const struct sockaddr *)&sa, (int)sizeof(sa.sun_family));
}

/* $PGCORO_FUZZ_TRACE set: what P got, on stderr (checking what a seed does). */
static void trace(const struct fz_peer *p, const uint8_t *d, size_t n)
{
	static int on = -1;
	if (on < 0)
		on = getenv("PGCORO_FUZZ_TRACE") != NULL;
	if (!on)
		return;
	fprintf(stderr, "fuzz: pgcoro -> peer %d (%zu bytes): ", p->fd, n);
	for (size_t i = 0; i < n && i < 400; i++)
		fprintf(stderr, d[i] >= 32 && d[i] < 127 && d[i] != '\\' ? "%c" : "\\x%02x", d[i]);
	fputs(n > 400 ? "...\n" : "\n", stderr);
}

/* Reads what pgcoro sent to P; true if anything came (bytes or the end). */
static bool drain(struct fz_peer *p)
{
	static uint8_t buf[65536];
	bool got = false;
	while (p->fd >= 0 && !p->eof) {
		ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			got = true;
			trace(p, buf, (size_t)n);
			if (p->on_output)
				p->on_output(p, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		p->eof = true; /* 0: closed; an error (ECONNRESET): closed as well */
		got = true;
	}
	return got;
}

void fz_settle(void)
{
	/* Two rounds in a row with nothing to do: events activated by a callback run in the
	 * round that activated them, so nothing can be left. The bound only turns a runaway
	 * loop into a harness timeout (reported) rather than a silent hang. */
	for (int quiet = 0, rounds = 0; quiet < 2 && rounds < 100000; rounds++) {
		event_base_loop(rt.base, EVLOOP_NONBLOCK);
		bool moved = false;
		for (int i = 0; i < npeers; i++)
			moved |= drain(peers[i]);
		if (exec_pending(rt.exec) > 0) {
			/* a job on an executor thread (reload, a libpq connect): its completion
			 * wakes the loop (the pool's one-second tick bounds the wait) */
			event_base_loop(rt.base, EVLOOP_ONCE);
			quiet = 0;
			continue;
		}
		if (moved || event_base_get_num_events(rt.base, EVENT_BASE_COUNT_ACTIVE) > 0)
			quiet = 0;
		else
			quiet++;
	}
}

bool fz_send(struct fz_peer *p, const void *data, size_t len)
{
	const uint8_t *d = data;
	int stuck = 0;
	while (len > 0 && p->fd >= 0) {
		ssize_t n = send(p->fd, d, len, MSG_NOSIGNAL);
		if (n > 0) {
			d += n;
			len -= (size_t)n;
			stuck = 0;
			continue;
		}
		if (n < 0 && errno == EAGAIN && stuck++ < 3) {
			fz_settle(); /* pgcoro reads it, unless it stopped reading this side */
			continue;
		}
		return false;
	}
	return len == 0;
}

static void forget(struct fz_peer *p)
{
	for (int i = 0; i < npeers; i++) {
		if (peers[i] == p) {
			peers[i] = peers[--npeers];
			break;
		}
	}
	p->open = false;
}

void fz_close(struct fz_peer *const *ps, int n)
{
	for (int i = 0; i < n; i++) {
		if (ps[i]->fd >= 0)
			close(ps[i]->fd);
		ps[i]->fd = -1;
	}
	fz_settle();
	for (int i = 0; i < n; i++) {
		struct fz_peer *p = ps[i];
		struct stat st;
		forget(p);
		if (fstat(p->pg_fd, &st) == 0 && st.st_dev == p->pg_dev && st.st_ino == p->pg_ino) {
			fprintf(stderr, "fuzz harness: pgcoro still holds socket %d after its peer "
					"closed: a session or server was not freed\n",
				p->pg_fd);
			abort();
		}
	}
}

size_t fz_startup(uint8_t *buf, size_t cap, const char *const *kv)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_begin(&b, 0);
	proto_put_u32(&b, PROTO_V3);
	for (int i = 0; kv[i]; i++)
		proto_put_str(&b, kv[i]);
	proto_put_u8(&b, 0);
	proto_end(&b);
	size_t n = !b.failed && b.len <= cap ? b.len : 0;
	if (n)
		memcpy(buf, b.data, n);
	pbuf_free(&b);
	return n;
}

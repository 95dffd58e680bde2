/* Owns the online restart (see takeover.h), both sides of PgBouncer's protocol for it: in
 * the old process, SHOW FDS (the rows and their sockets, sent by sendmsg with SCM_RIGHTS,
 * exactly PgBouncer's columns so either pooler may take over from the other), the quiesce
 * before it and the hand-over at SHUTDOWN; in the new process (-R), the blocking console
 * dialog and the adoption of listeners, servers and clients. */
#include "takeover.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "auth.h"
#include "authquery.h"
#include "client.h"
#include "clientkey.h"
#include "clock.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "pin.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "scram.h"
#include "server.h"
#include "showfds.h"
#include "srvconnect.h"
#include "stream.h"

static struct runtime *rt;

/* The most parameters a row carries: a client's startup parameters, or a server's
 * reported ones. */
#define MAX_ROW_PARAMS (CLIENT_MAX_PARAMS + SERVER_NPARAMS)

void takeover_init(struct runtime *r)
{
	rt = r;
}

/* Whether FD's peer (a unix socket) runs as this process's effective user: only that
 * user may hand sockets to, or take them from, this process. */
static bool peer_is_us(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred))
		return false;
	*uid = cred.uid;
	return cred.uid == geteuid();
}

/* ---- the old process ------------------------------------------------------------------ */

static double quiesce_since;
static uint64_t *sent_ids; /* the clients' and servers' ids SHOW FDS sent (one sequence) */
static size_t nsent, sent_cap;
static bool sent;         /* SHOW FDS answered: SHUTDOWN hands over */
static uint64_t owner_id; /* the console client that asked SHOW FDS */

const char *takeover_refusal(const client_t *admin)
{
	if (admin->peer_family != AF_UNIX)
		return "SHOW FDS needs the unix socket";
	uid_t uid;
	if (!peer_is_us(admin->st.fd, &uid))
		return "SHOW FDS needs the OS user pgcoro runs as";
	if (!rt->suspended)
		return "SHOW FDS needs SUSPEND first";
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &p->clients)
		{
			if (list_entry(pos, client_t, node)->st.tls)
				return "cannot hand over TLS client connections";
		}
		const struct list_head *lists[] = {&p->sv_idle, &p->sv_active, &p->sv_housekeeping};
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			list_for_each_safe(pos, tmp, lists[i])
			{
				if (list_entry(pos, server_t, node)->st.tls)
					return "cannot hand over TLS server connections";
			}
	}
	return NULL;
}

void takeover_quiesce(const client_t *admin)
{
	owner_id = admin->id;
	rt->quiescing = true;
	quiesce_since = rt_now();
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &p->clients)
		{
			client_t *c = list_entry(pos, client_t, node);
			if (client_at_rest(c))
				client_hold_input(c, true);
		}
		pool_serve_waiting(p);
	}
}

bool takeover_quiet(void)
{
	bool quiet = true;
	for (pool_t *p = pool_next(NULL); p && quiet; p = pool_next(p)) {
		/* a session-mode login waiting while every server is held cannot move: not
		 * waited for */
		bool served = p->pool_mode != POOL_SESSION || p->sv_idle.count > 0 ||
		              p->sv_connecting.count > 0;
		if ((p->waiting.count > 0 && served) || p->sv_housekeeping.count > 0)
			quiet = false;
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &p->sv_active)
		{
			server_t *s = list_entry(pos, server_t, node);
			if (!s->client || !client_at_rest(s->client))
				quiet = false;
		}
	}
	if (quiet)
		return true;
	double limit = rt->cfg->suspend_timeout;
	if (limit > 0 && rt_now() - quiesce_since >= limit) {
		log_warning("SHOW FDS: suspend_timeout (%gs) passed with connections still busy: "
		            "they are not handed over",
		            limit);
		return true;
	}
	return false;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	*out++ = '\\';
	*out++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*out++ = digits[b[i] >> 4];
		*out++ = digits[b[i] & 15];
	}
	*out = 0;
}

/* The whole SHOW FDS answer is sent by this clock_read_us() (0: no deadline): a reader
 * that stops reading holds this process's loop no longer. */
#define SHOW_FDS_SEND_US 10000000u
static uint64_t send_deadline;

/* Sends OUT (one message) on FD with FD_PASS attached (-1: none), blocking (until
 * send_deadline if set). */
static bool send_with_fd(int fd, const struct pbuf *out, int fd_pass)
{
	if (send_deadline) {
		uint64_t now = clock_read_us();
		uint64_t left = send_deadline > now ? send_deadline - now : 0;
		struct timeval tv = {(time_t)(left / 1000000u), (suseconds_t)(left % 1000000u)};
		if (left == 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
			log_error("SHOW FDS: not sent within %u s", SHOW_FDS_SEND_US / 1000000u);
			return false;
		}
	}
	struct iovec iov = {.iov_base = out->data, .iov_len = out->len};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd_pass >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd_pass, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != out->len) {
		log_error("SHOW FDS: sendmsg: %s", n < 0 ? strerror(errno) : "partial write");
		return false;
	}
	return true;
}

/* One row of SHOW FDS. */
struct fd_row {
	int fd;
	const char *task, *user, *db;
	char addr[128];
	int port;
	uint64_t cancel;
	int link;
	const char *params[4];
	const uint8_t *ckey, *skey; /* SCRAM_KEY_LEN bytes each, or NULL */
	const char *all;            /* pgcoro_params */
	const char *password;       /* the secret auth_query found, or NULL */
};

static void put_param(struct pbuf *b, const char *name, const char *value)
{
	if (strpbrk(name, "\x1e\x1f") || strpbrk(value, "\x1e\x1f"))
		b->failed = true; /* not sent: the four of PgBouncer's columns go alone */
	proto_put_bytes(b, name, strlen(name));
	proto_put_u8(b, SHOWFDS_PARAM_US);
	proto_put_bytes(b, value, strlen(value));
	proto_put_u8(b, SHOWFDS_PARAM_RS);
}

static struct pbuf all_params; /* pgcoro_params of the row being sent */

static const char *server_all(const server_t *s)
{
	pbuf_reset(&all_params);
	for (int i = 0; i < SERVER_NPARAMS; i++)
		if (s->params[i])
			put_param(&all_params, server_param_names[i], s->params[i]);
	proto_put_u8(&all_params, 0);
	return all_params.failed ? NULL : (const char *)all_params.data;
}

static const char *client_all(const client_t *c)
{
	pbuf_reset(&all_params);
	bool seen[SERVER_NPARAMS] = {0};
	for (int k = 0; k < c->nparams; k++) {
		int i = c->params[k].report;
		const char *v = c->params[k].value;
		if (i >= 0 && c->session_params && c->session_params[i])
			v = c->session_params[i];
		if (i >= 0)
			seen[i] = true;
		put_param(&all_params, c->params[k].name, v);
	}
	for (int i = 0; c->session_params && i < SERVER_NPARAMS; i++)
		if (!seen[i] && c->session_params[i])
			put_param(&all_params, server_param_names[i], c->session_params[i]);
	/* the settings its session SET (pin.h) go last: the new process applies them as
	 * startup settings, on each server, after those (as the session's values stand) */
	for (int i = 0; c->settings && i < c->settings->n; i++)
		put_param(&all_params, c->settings->kv[2 * i], c->settings->kv[2 * i + 1]);
	proto_put_u8(&all_params, 0);
	return all_params.failed ? NULL : (const char *)all_params.data;
}

static bool send_row(int admin_fd, struct pbuf *out, const struct fd_row *r)
{
	char fd[16], port[16], cancel[24], link[16], ckey[2 * SCRAM_KEY_LEN + 3],
	    skey[2 * SCRAM_KEY_LEN + 3];
	snprintf(fd, sizeof(fd), "%d", r->fd);
	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(cancel, sizeof(cancel), "%" PRIu64, r->cancel);
	snprintf(link, sizeof(link), "%d", r->link);
	if (r->ckey) {
		hex(ckey, r->ckey, SCRAM_KEY_LEN);
		hex(skey, r->skey, SCRAM_KEY_LEN);
	}
	const char *v[SHOWFDS_NCOLS] = {fd,
	                                r->task,
	                                r->user,
	                                r->db,
	                                r->addr,
	                                port,
	                                cancel,
	                                link,
	                                r->params[0],
	                                r->params[1],
	                                r->params[2],
	                                r->params[3],
	                                r->password,
	                                r->ckey ? ckey : NULL,
	                                r->ckey ? skey : NULL,
	                                r->all};
	pbuf_reset(out);
	proto_build_data_row(out, v, SHOWFDS_NCOLS);
	return !out->failed && send_with_fd(admin_fd, out, r->fd);
}

static bool note_sent(uint64_t id)
{
	if (nsent == sent_cap) {
		size_t cap = sent_cap ? sent_cap * 2 : 256;
		uint64_t *n = realloc(sent_ids, cap * sizeof(*n));
		if (!n)
			return false;
		sent_ids = n;
		sent_cap = cap;
	}
	sent_ids[nsent++] = id;
	return true;
}

/* The password column (the new process has no other): THE secret of USER's server logins
 * to DATABASE (srvconnect_secret: the password USER last passed PAM or LDAP with, as
 * PgBouncer's, else what auth_query found), or NULL for a user of auth_file (the new
 * process reads its own) or one not looked up. */
static const char *found_secret(const char *database, const char *user)
{
	const char *s = srvconnect_secret(database, user);
	return s && rt->auth && s == auth_lookup(rt->auth, user) ? NULL : s;
}

/* USER's SCRAM pass-through keys, if a client proved them here: into CKEY and SKEY. */
static bool scram_keys_of(const char *database, const char *user,
                          uint8_t ckey[SCRAM_KEY_LEN], uint8_t skey[SCRAM_KEY_LEN])
{
	const char *secret = authquery_secret(database, user);
	struct scram_keys keys;
	if (!secret || strncmp(secret, "SCRAM-SHA-256$", 14) != 0 ||
	    !scram_parse_verifier(secret, &keys) || !clientkey_find(user, &keys, ckey))
		return false;
	memcpy(skey, keys.server_key, SCRAM_KEY_LEN);
	return true;
}

struct row_ctx {
	int admin_fd;
	struct pbuf *out;
};

static bool listener_row(int fd, const struct sockaddr *sa, void *arg)
{
	struct row_ctx *x = arg;
	struct fd_row r = {.fd = fd, .task = "pooler"};
	if (sa->sa_family == AF_UNIX) {
		snprintf(r.addr, sizeof(r.addr), "unix");
		r.port = rt->cfg->listen_port;
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, r.addr, sizeof(r.addr));
		r.port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, r.addr, sizeof(r.addr));
		r.port = ntohs(in6->sin6_port);
	}
	return send_row(x->admin_fd, x->out, &r);
}

/* The value of reported parameter NAME a client of C's session expects. */
static const char *client_value(const client_t *c, const char *name)
{
	int i = server_param_index(name);
	if (c->session_params && i >= 0 && c->session_params[i])
		return c->session_params[i];
	for (int k = 0; k < c->nparams; k++)
		if (strcasecmp(c->params[k].name, name) == 0)
			return c->params[k].value;
	if (c->server && i >= 0)
		return c->server->params[i];
	return i >= 0 ? pool_param(c->pool, i) : NULL;
}

static bool server_row(struct row_ctx *x, server_t *s, uint8_t *ckey, uint8_t *skey)
{
	struct fd_row r = {.fd = s->st.fd,
	                   .task = "server",
	                   .user = s->pool->user,
	                   .db = s->pool->dbname,
	                   .link = s->client ? s->client->st.fd : 0};
	r.port = server_peer(s, r.addr, sizeof(r.addr));
	if (!r.addr[0])
		snprintf(r.addr, sizeof(r.addr), "unix");
	r.cancel = (uint64_t)s->backend_pid << 32 | (s->cancel_key_known ? s->cancel_key : 0);
	for (int i = 0; i < 4; i++) {
		int k = server_param_index(showfds_reported[i]);
		r.params[i] = k >= 0 ? s->params[k] : NULL;
	}
	r.all = server_all(s);
	r.password = found_secret(s->pool->dbname, s->pool->user);
	if (scram_keys_of(s->pool->dbname, s->pool->user, ckey, skey)) {
		r.ckey = ckey;
		r.skey = skey;
	}
	return note_sent(s->id) && send_row(x->admin_fd, x->out, &r);
}

static bool client_row(struct row_ctx *x, client_t *c, uint8_t *ckey, uint8_t *skey)
{
	struct fd_row r = {.fd = c->st.fd,
	                   .task = "client",
	                   .user = c->user,
	                   .db = c->database,
	                   .link = c->server ? c->server->st.fd : 0,
	                   .port = c->peer_port};
	if (c->peer_family == AF_INET || c->peer_family == AF_INET6)
		inet_ntop(c->peer_family, c->peer_ip, r.addr, sizeof(r.addr));
	else
		snprintf(r.addr, sizeof(r.addr), "unix");
	r.cancel = (uint64_t)c->cancel_pid << 32 | c->cancel_key;
	for (int i = 0; i < 4; i++)
		r.params[i] = client_value(c, showfds_reported[i]);
	r.all = client_all(c);
	r.password = found_secret(c->pool->dbname, c->pool->user);
	if (scram_keys_of(c->pool->dbname, c->pool->user, ckey, skey)) {
		r.ckey = ckey;
		r.skey = skey;
	}
	return note_sent(c->id) && send_row(x->admin_fd, x->out, &r);
}

/* Every server and client of P that can move: sent, and held. */
static bool pool_rows(struct row_ctx *x, pool_t *p)
{
	uint8_t ckey[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN];
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->sv_idle)
	{
		server_t *s = list_entry(pos, server_t, node);
		if (stream_input_len(&s->st) > 0 || stream_output_len(&s->st) > 0 || s->st.tls)
			continue;
		if (!server_row(x, s, ckey, skey))
			return false;
		stream_set_read(&s->st, false);
	}
	list_for_each_safe(pos, tmp, &p->clients)
	{
		client_t *c = list_entry(pos, client_t, node);
		if (!client_at_rest(c))
			continue;
		if (c->server) {
			if (!server_row(x, c->server, ckey, skey))
				return false;
			stream_set_read(&c->server->st, false);
		}
		if (!client_row(x, c, ckey, skey))
			return false;
		stream_set_read(&c->st, false);
		if (c->timer) /* no timeout of this process's ends it now (a thaw rearms none: */
			evtimer_del(c->timer); /* its next request does) */
		if (c->xact_timer)
			evtimer_del(c->xact_timer);
	}
	return true;
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

bool takeover_show_fds(client_t *admin)
{
	int fd = admin->st.fd;
	struct pbuf out;
	pbuf_init(&out);
	nsent = 0;
	int flags = fcntl(fd, F_GETFL);
	send_deadline = clock_read_us() + SHOW_FDS_SEND_US;
	bool ok = stream_output_len(&admin->st) == 0 && flags >= 0 &&
	          fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
	if (ok) {
		proto_build_row_description(&out, showfds_cols, SHOWFDS_NCOLS);
		ok = !out.failed && send_with_fd(fd, &out, -1);
	}
	struct row_ctx x = {.admin_fd = fd, .out = &out};
	ok = ok && listener_each(listener_row, &x);
	for (pool_t *p = pool_next(NULL); p && ok; p = pool_next(p))
		ok = pool_rows(&x, p);
	if (ok) {
		pbuf_reset(&out);
		proto_build_command_complete(&out, "SHOW");
		proto_build_ready(&out, 'I');
		ok = !out.failed && send_with_fd(fd, &out, -1);
	}
	send_deadline = 0;
	struct timeval none = {0, 0};
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	if (flags >= 0)
		(void)fcntl(fd, F_SETFL, flags);
	pbuf_free(&out);
	pbuf_free(&all_params);
	if (!ok) {
		client_disconnect(admin, NULL, "SHOW FDS could not be sent");
		takeover_thaw();
		return false;
	}
	qsort(sent_ids, nsent, sizeof(*sent_ids), cmp_id);
	sent = true;
	rt->quiescing = false; /* no hand-out until SHUTDOWN or RESUME: the idle servers sent
	                        * are the new process's already */
	log_info("SHOW FDS: %zu clients and servers handed over on SHUTDOWN", nsent);
	return true;
}

bool takeover_orphaned(void)
{
	if (!rt->quiescing && !sent)
		return false;
	const client_t *c = client_find(owner_id);
	return !c || c->state != CL_CONSOLE;
}

static bool was_sent(uint64_t id)
{
	return bsearch(&id, sent_ids, nsent, sizeof(*sent_ids), cmp_id) != NULL;
}

/* FD is the new process's: this one's descriptor now points at a socket connected to
 * nothing, so whatever closes it later (a Terminate, a 57P01, shutdown) reaches nobody. */
static void blind(struct stream *st)
{
	stream_set_read(st, false);
	int dead = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dead < 0 || dup2(dead, st->fd) < 0)
		fatal("online restart: cannot drop a socket handed over: %s", strerror(errno));
	close(dead);
}

void takeover_hand_over(void)
{
	if (!sent)
		return;
	size_t n = 0;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		const struct list_head *lists[] = {&p->sv_idle, &p->sv_active, &p->sv_housekeeping};
		struct list *pos, *tmp;
		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			list_for_each_safe(pos, tmp, lists[i])
			{
				server_t *s = list_entry(pos, server_t, node);
				if (was_sent(s->id)) {
					blind(&s->st);
					n++;
				}
			}
		const struct list_head *cls[] = {&p->clients, &p->waiting};
		for (size_t i = 0; i < 2; i++)
			list_for_each_safe(pos, tmp, cls[i])
			{
				client_t *c = list_entry(pos, client_t, node);
				if (was_sent(c->id)) {
					blind(&c->st);
					n++;
				}
			}
	}
	listener_hand_over();
	log_info("online restart: %zu clients and servers and the listeners handed over", n);
	sent = false;
	nsent = 0;
}

void takeover_thaw(void)
{
	if (!rt->quiescing && !sent)
		return;
	log_info("online restart abandoned: clients read again");
	rt->quiescing = false;
	for (pool_t *p = pool_next(NULL); p; p = pool_next(p)) {
		struct list *pos, *tmp;
		const struct list_head *lists[] = {&p->sv_idle, &p->sv_active};
		for (size_t i = 0; sent && i < 2; i++)
			list_for_each_safe(pos, tmp, lists[i])
			{
				server_t *s = list_entry(pos, server_t, node);
				if (was_sent(s->id))
					stream_set_read(&s->st, true);
			}
		list_for_each_safe(pos, tmp, &p->clients)
		{
			client_hold_input(list_entry(pos, client_t, node), false);
		}
	}
	sent = false;
	nsent = 0;
}

/* ---- the new process ------------------------------------------------------------------ */

#define MAX_FDS_PER_READ 64
/* What the old process may send, whoever it is: one message (a row with every parameter
 * of a client's startup packet fits many times), the bytes of one row on average, and
 * messages other than rows in one answer. */
#define OLD_MSG_MAX (1u << 20)
#define OLD_ROW_BYTES 16384u
#define OLD_OTHER_MAX 1024u

/* The console connection to the old process: its input (whole messages from OFF on),
 * and the sockets received with it that no row has taken yet. */
struct old_conn {
	int fd;
	uint8_t *buf;
	size_t off, len, cap;
	size_t total, total_max; /* bytes read, and the most allowed */
	size_t rows_max;
	int *fds;
	size_t nfds, fds_cap, fds_used;
};

/* One SHOW FDS row with the socket that came with it. */
struct got_row {
	struct showfds_row v; /* its strings in MEM */
	int fd;
	server_t *server; /* adopted */
	char *mem;        /* the row's message (kept) */
};

static bool send_query(struct old_conn *o, const char *sql)
{
	struct pbuf b;
	pbuf_init(&b);
	proto_build_query(&b, sql);
	bool ok = !b.failed && send_with_fd(o->fd, &b, -1);
	pbuf_free(&b);
	return ok;
}

/* Reads more from the old process, keeping the sockets that come with it. */
static bool read_more(struct old_conn *o)
{
	if (o->off > 0) { /* once per read: the messages taken leave */
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	if (o->cap - o->len < 65536) {
		if (o->cap >= OLD_MSG_MAX + 131072) { /* proto_next refuses what does not fit */
			log_error("online restart: a message from the old process is too long");
			return false;
		}
		uint8_t *n = realloc(o->buf, o->cap + 131072);
		if (!n)
			return false;
		o->buf = n;
		o->cap += 131072;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_READ)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = o->buf + o->len, .iov_len = o->cap - o->len};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = ctl.buf,
	                     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;
	do
		n = recvmsg(o->fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		log_error("online restart: the old process %s",
		          n == 0 ? "closed the connection" : strerror(errno));
		return false;
	}
	o->len += (size_t)n;
	o->total += (size_t)n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			if (o->nfds == o->fds_cap) {
				size_t cap = o->fds_cap ? o->fds_cap * 2 : 64;
				int *f = realloc(o->fds, cap * sizeof(int));
				if (!f)
					return false;
				o->fds = f;
				o->fds_cap = cap;
			}
			memcpy(&o->fds[o->nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
		}
	}
	if (msg.msg_flags & MSG_CTRUNC) {
		log_error("online restart: sockets were lost in transit (MSG_CTRUNC)");
		return false;
	}
	if (o->total > o->total_max) { /* the sockets taken are closed with the connection */
		log_error("online restart: the old process sent more than %zu bytes", o->total_max);
		return false;
	}
	return true;
}

/* The next whole message into M (a copy of it in *COPY, the caller's), reading as needed. */
static bool next_msg(struct old_conn *o, struct proto_msg *m, uint8_t **copy)
{
	for (;;) {
		enum proto_frame f = proto_next(o->buf + o->off, o->len - o->off, OLD_MSG_MAX, m);
		if (f == PROTO_BAD) {
			log_error("online restart: a malformed message from the old process");
			return false;
		}
		if (f == PROTO_OK) {
			*copy = malloc(m->size);
			if (!*copy)
				return false;
			memcpy(*copy, m->data, m->size);
			o->off += m->size;
			m->data = *copy;
			m->body = *copy + PROTO_HDR;
			return true;
		}
		if (!read_more(o))
			return false;
	}
}

/* Reads up to ReadyForQuery, failing on an ErrorResponse; rows (SHOW FDS) go to ON_ROW. */
static bool until_ready(struct old_conn *o,
                        bool (*on_row)(struct old_conn *, struct proto_msg *, uint8_t *, void *),
                        void *arg)
{
	bool ok = true;
	for (size_t others = 0;;) {
		struct proto_msg m;
		uint8_t *copy;
		if (!next_msg(o, &m, &copy))
			return false;
		const char *text = NULL;
		enum showfds_msg kind = showfds_msg_kind(&m, &text);
		if (kind != SHOWFDS_ROW && ++others > OLD_OTHER_MAX) {
			log_error("online restart: too many messages from the old process");
			free(copy);
			return false;
		}
		bool keep = false;
		if (kind == SHOWFDS_ERROR) {
			log_error("online restart: the old process answered: %s", text);
			ok = false;
		} else if (kind == SHOWFDS_ROW) {
			if (!on_row || !on_row(o, &m, copy, arg))
				ok = false;
			else
				keep = true;
		} else if (kind == SHOWFDS_PASSWORD) {
			log_error(
			    "online restart: the old process asks for a password: run as the OS "
			    "user it runs as");
			free(copy);
			return false;
		}
		if (!keep)
			free(copy);
		if (kind == SHOWFDS_READY)
			return ok;
	}
}

struct rows {
	struct got_row *r;
	size_t n, cap;
};

/* Whether FD, the socket of a SHOW FDS row of TASK (its old fd OLDFD), is what the task
 * needs: a stream socket, listening for a "pooler" row and connected for the others
 * (logged if not). */
static bool socket_fits(int fd, const char *task, int oldfd)
{
	bool pooler = strcmp(task, "pooler") == 0;
	if (!pooler && strcmp(task, "client") != 0 && strcmp(task, "server") != 0) {
		log_error("online restart: a SHOW FDS row of an unknown task \"%.32s\"", task);
		return false;
	}
	struct stat st;
	int type = 0, domain = 0, listening = 0;
	socklen_t a = sizeof(type), b = sizeof(domain), c = sizeof(listening);
	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &a) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &b) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &c) != 0 ||
	    type != SOCK_STREAM ||
	    (domain != AF_UNIX && domain != AF_INET && domain != AF_INET6) ||
	    (listening != 0) != pooler) {
		log_error("online restart: the socket of %s fd %d is not a %s stream socket",
		          task, oldfd, pooler ? "listening" : "connected");
		return false;
	}
	return true;
}

/* A DataRow of SHOW FDS (M, in COPY): its values NUL-terminated in place (each value's
 * length field is overwritten), the socket that came with it taken. True: the row keeps
 * COPY; false: COPY stays the caller's. */
static bool on_fd_row(struct old_conn *o, struct proto_msg *m, uint8_t *copy, void *arg)
{
	struct rows *rows = arg;
	if (o->fds_used == o->nfds) {
		log_error("online restart: a SHOW FDS row without its socket");
		return false;
	}
	int fd = o->fds[o->fds_used++];
	if (rows->n >= o->rows_max) {
		log_error("online restart: more than %zu SHOW FDS rows (max_client_conn allows no "
		          "more)",
		          o->rows_max);
		close(fd);
		return false;
	}
	uint8_t *body = (uint8_t *)m->body;
	struct showfds_row v;
	bool ok = showfds_parse_row(body, m->blen, &v);
	if (ok && rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 64;
		struct got_row *n = realloc(rows->r, cap * sizeof(*n));
		if (n) {
			rows->r = n;
			rows->cap = cap;
		}
		ok = n != NULL;
	}
	if (!ok) {
		log_error("online restart: a malformed SHOW FDS row (or out of memory)");
		close(fd);
		return false;
	}
	if (!socket_fits(fd, v.task, v.oldfd)) {
		close(fd);
		return false;
	}
	rows->r[rows->n++] = (struct got_row){.v = v, .fd = fd, .mem = (char *)copy};
	return true;
}

static pool_t *pool_of(const struct showfds_row *r)
{
	const struct cfg_db *db = r->db && r->user ? cfg_find_db(rt->cfg, r->db) : NULL;
	if (!db) {
		log_error("online restart: database \"%s\" is not configured here",
		          r->db ? r->db : "(none)");
		return NULL;
	}
	return pool_get(r->db, r->user, db);
}

/* The secret the old process's auth_query found for the row's user (the old process is
 * this OS user's: connect_old), kept as a look-up here would: a server login of the user
 * needs it. A user of this auth_file keeps that one's. Under auth_type pam or ldap it is
 * the password the user passed PAM or LDAP with (PgBouncer's), kept as a login here would
 * (srvconnect_keep_password), for the pools already made too. */
static void keep_found_secret(const struct showfds_row *r)
{
	if (!r->password || !r->user)
		return;
	bool ok = true;
	if (rt->cfg->auth_type == AUTH_PAM || rt->cfg->auth_type == AUTH_LDAP)
		ok = srvconnect_keep_password(r->user, r->password);
	else if (!rt->auth || !auth_lookup(rt->auth, r->user))
		ok = authquery_keep(r->db, r->user, r->password);
	if (!ok)
		log_warning("online restart: out of memory for the secret of user \"%s\"", r->user);
}

/* The row's SCRAM keys, when they are for the verifier this process has for its user
 * (auth_file's, else auth_query's). */
static void keep_scram_key(const struct showfds_row *r)
{
	keep_found_secret(r);
	const char *secret = r->keys && r->user ? authquery_secret(r->db, r->user) : NULL;
	struct scram_keys keys;
	if (secret && strncmp(secret, "SCRAM-SHA-256$", 14) == 0 &&
	    scram_parse_verifier(secret, &keys) &&
	    memcmp(keys.server_key, r->skey, SCRAM_KEY_LEN) == 0)
		clientkey_store(r->user, &keys, r->ckey);
}

static bool adopt_server(struct got_row *r)
{
	pool_t *p = pool_of(&r->v);
	const char *names[MAX_ROW_PARAMS], *values[MAX_ROW_PARAMS];
	int n = showfds_row_params(&r->v, names, values, MAX_ROW_PARAMS);
	struct server_conn sc = {.fd = r->fd,
	                         .backend_pid = (uint32_t)(r->v.cancel >> 32),
	                         .cancel_key = (uint32_t)r->v.cancel,
	                         .have_key = (uint32_t)r->v.cancel != 0,
	                         .nparams = n,
	                         .names = names,
	                         .values = values};
	evutil_make_socket_nonblocking(r->fd);
	server_t *s = r->server = p ? server_adopt_conn(p, &sc) : NULL;
	keep_scram_key(&r->v);
	int version = server_param_index("server_version");
	if (s && !p->params_known && !r->v.link && version >= 0 && s->params[version]) {
		/* the welcome of its pool's new clients, as from a new server's: this one's
		 * reported parameters but the application_name a client left */
		char *params[SERVER_NPARAMS];
		int app = server_param_index("application_name");
		memcpy(params, s->params, sizeof(params));
		if (app >= 0)
			params[app] = "";
		if (!pool_connect_ok(p, params))
			log_warning("online restart: out of memory for pool %s/%s", p->dbname,
			            p->user);
	}
	return s != NULL;
}

static bool adopt_client(struct got_row *r, struct rows *rows)
{
	server_t *s = NULL;
	for (size_t i = 0; r->v.link && i < rows->n && !s; i++)
		if (rows->r[i].server && rows->r[i].v.oldfd == r->v.link)
			s = rows->r[i].server;
	if (r->v.link && !s) {
		log_error("online restart: client fd %d: its server fd %d was not handed over",
		          r->v.oldfd, r->v.link);
		return false;
	}
	if (!r->v.user || !r->v.db)
		return false;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(r->fd, (struct sockaddr *)&ss, &len) != 0) {
		memset(&ss, 0, sizeof(ss)); /* gone meanwhile: it fails at its first read */
		ss.ss_family = AF_UNIX;
	}
	const char *names[MAX_ROW_PARAMS], *values[MAX_ROW_PARAMS];
	int n = showfds_row_params(&r->v, names, values, MAX_ROW_PARAMS);
	struct client_adopt a = {.fd = r->fd,
	                         .sa = (struct sockaddr *)&ss,
	                         .user = r->v.user,
	                         .database = r->v.db,
	                         .nparams = n,
	                         .names = names,
	                         .values = values,
	                         .cancel_pid = (uint32_t)(r->v.cancel >> 32),
	                         .cancel_key = (uint32_t)r->v.cancel,
	                         .server = s};
	evutil_make_socket_nonblocking(r->fd);
	keep_scram_key(&r->v);
	return client_adopt(&a) != NULL;
}

/* The old process's console socket into SUN; false (logged) without unix_socket_dir. */
static bool old_path(const struct config *cfg, struct sockaddr_un *sun)
{
	*sun = (struct sockaddr_un){.sun_family = AF_UNIX};
	if (!cfg->unix_socket_dir[0]) {
		log_error("online restart: needs unix_socket_dir (the old process's console)");
		return false;
	}
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/.s.PGSQL.%d", cfg->unix_socket_dir,
	         cfg->listen_port);
	return true;
}

bool takeover_old_running(const struct config *cfg)
{
	struct sockaddr_un sun;
	if (!old_path(cfg, &sun))
		return true; /* takeover_run says why it cannot */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool up = fd >= 0 && (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
	                      (errno != ECONNREFUSED && errno != ENOENT));
	if (fd >= 0)
		close(fd);
	return up;
}

static bool connect_old(struct old_conn *o)
{
	const struct config *cfg = rt->cfg;
	struct sockaddr_un sun;
	if (!old_path(cfg, &sun))
		return false;
	o->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	double wait = 2 * cfg->suspend_timeout + 30; /* SUSPEND and SHOW FDS may each wait */
	struct timeval tv = {(time_t)wait, 0};
	if (o->fd < 0 || connect(o->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_error("online restart: cannot connect to %s: %s", sun.sun_path,
		          strerror(errno));
		return false;
	}
	uid_t uid = (uid_t)-1;
	if (!peer_is_us(o->fd, &uid)) {
		log_error("online restart: %s is not pgcoro's: its process runs as uid %ld, this "
		          "one as uid %ld: refused",
		          sun.sun_path, (long)uid, (long)geteuid());
		return false;
	}
	setsockopt(o->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(o->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	log_info("online restart: connected to %s", sun.sun_path);
	struct pbuf b;
	pbuf_init(&b);
	proto_begin(&b, 0);
	proto_put_u32(&b, 3u << 16);
	const char *kv[] = {"user", "pgbouncer", "database", "pgbouncer"};
	for (int i = 0; i < 4; i++)
		proto_put_str(&b, kv[i]);
	proto_put_u8(&b, 0);
	proto_end(&b);
	bool ok = !b.failed && send_with_fd(o->fd, &b, -1);
	pbuf_free(&b);
	return ok && until_ready(o, NULL, NULL);
}

/* Test hook: PGCORO_TEST_TAKEOVER_SLEEP seconds between the adoption and SHUTDOWN, so a
 * test can kill the new process there. */
static void test_pause(void)
{
	const char *s = getenv("PGCORO_TEST_TAKEOVER_SLEEP");
	if (s && atoi(s) > 0) {
		log_info("online restart: test hook: sleeping %d s before SHUTDOWN", atoi(s));
		sleep((unsigned)atoi(s));
	}
}

/* SHUTDOWN sent: waits for the old process's connection to end, then its pidfile. */
static void wait_old_gone(struct old_conn *o)
{
	char b[4096];
	ssize_t n;
	while ((n = recv(o->fd, b, sizeof(b), 0)) > 0 || (n < 0 && errno == EINTR))
		;
	const char *pidfile = rt->cfg->pidfile;
	struct stat st;
	for (int i = 0; pidfile[0] && i < 100 && stat(pidfile, &st) == 0; i++)
		usleep(100000);
	if (pidfile[0] && stat(pidfile, &st) == 0)
		log_warning("online restart: the old process's pidfile %s is still there", pidfile);
}

static void old_conn_free(struct old_conn *o)
{
	for (size_t i = o->fds_used; i < o->nfds; i++)
		close(o->fds[i]);
	free(o->fds);
	free(o->buf);
	if (o->fd >= 0)
		close(o->fd);
}

static void rows_free(struct rows *rows, bool close_fds)
{
	for (size_t i = 0; i < rows->n; i++) {
		if (close_fds)
			close(rows->r[i].fd);
		free(rows->r[i].mem);
	}
	free(rows->r);
}

bool takeover_run(struct runtime *r)
{
	rt = r;
	/* every row needs its own socket: clients, their servers and idle servers (no more
	 * than the clients' plus what the pools keep), the listeners */
	size_t rows_max = 2 * (size_t)r->cfg->max_client_conn + 1024;
	struct old_conn o = {.fd = -1,
	                     .rows_max = rows_max,
	                     .total_max = (rows_max + 64) * OLD_ROW_BYTES + OLD_MSG_MAX};
	struct rows rows = {0};
	log_info("online restart: taking over from the running process");
	if (!connect_old(&o) || !send_query(&o, "SUSPEND;") || !until_ready(&o, NULL, NULL) ||
	    !send_query(&o, "SHOW FDS;") || !until_ready(&o, on_fd_row, &rows)) {
		rows_free(&rows, true);
		old_conn_free(&o);
		log_error("online restart failed: the old process goes on (it resumes when this "
		          "connection closes)");
		return false;
	}
	/* from here every socket is adopted; a failure exits at once, writing nothing to
	 * them, and the old process resumes */
	size_t nl = 0, ns = 0, nc = 0;
	bool ok = true;
	for (size_t i = 0; i < rows.n && ok; i++)
		if (strcmp(rows.r[i].v.task, "pooler") == 0) {
			ok = listener_adopt(rt, rows.r[i].fd);
			nl++;
		}
	for (size_t i = 0; i < rows.n && ok; i++)
		if (strcmp(rows.r[i].v.task, "server") == 0) {
			ok = adopt_server(&rows.r[i]);
			ns++;
		}
	for (size_t i = 0; i < rows.n && ok; i++)
		if (strcmp(rows.r[i].v.task, "client") == 0) {
			ok = adopt_client(&rows.r[i], &rows);
			nc++;
		}
	if (!ok || nl == 0) {
		log_error("online restart failed while adopting%s: exiting, the old process "
		          "resumes",
		          nl == 0 ? " (no listener handed over)" : "");
		_exit(1);
	}
	test_pause();
	if (!send_query(&o, "SHUTDOWN;")) {
		log_error("online restart: SHUTDOWN could not be sent: exiting, the old process "
		          "resumes");
		_exit(1);
	}
	wait_old_gone(&o);
	rows_free(&rows, false);
	old_conn_free(&o);
	log_info("online restart: %zu listeners, %zu servers and %zu clients taken over; the "
	         "old process is gone",
	         nl, ns, nc);
	return true;
}

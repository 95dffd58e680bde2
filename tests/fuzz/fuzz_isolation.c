/* Fuzzes what transaction pooling must never do: give one client's answers to another.
 * Two clients, A and B, share the pool's one server; the server is not played by the
 * input (as in fuzz_relay) but by a small model of a PostgreSQL backend that answers what
 * pgcoro sends it the way PostgreSQL would (simple and extended protocol, named
 * statements and portals, errors and the skip to Sync, COPY FROM STDIN in both protocols
 * with Sync/Flush ignored inside it, a FATAL for anything else there), and tags what it
 * returns with the client it came from: every SQL text a client sends begins with its
 * letter, and the model's DataRow and ErrorResponse carry the text of the request they
 * answer. The oracle: a client never receives a row or a model error tagged with the
 * other client's letter. (The model drops the unnamed statement with the transaction, as
 * it does portals: what a client Binds without parsing it in the same transaction is no
 * pooler's to isolate.)
 *
 * The input is a sequence of operations, each followed by the loop until it has nothing
 * left to do:
 *   0-1  client A / B appends a message built from the next bytes to what it will send
 *   2-3  client A / B sends the next (byte + 1) bytes of that (messages split anywhere)
 *   4    the model reads and answers the next (byte % 8 + 1) whole messages
 *   5    the model reads and answers all it has
 * so the hand-over of the server between A and B happens at every point the input makes
 * possible. Texts: "<letter><kind>..." with kind S (a row), E (an error at Execute or
 * Query), X (an error at Parse), C (COPY FROM STDIN), B (BEGIN), K (COMMIT; ROLLBACK in a
 * failed block, where everything else is refused); with $FUZZ_ISOLATION_NO_COPY set, no
 * COPY (to look for other defects while one in COPY is not fixed). Byte 0 picks the user ("tx" or "st":
 * transaction or statement mode); max_prepared_statements is 2 (tracking, the LRU). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

static const char ini[] = FZ_INI_PGCORO
			  "auth_type = trust\n"
			  "pool_mode = transaction\n"
			  "max_prepared_statements = 2\n"
			  "server_login_retry = 0\n"
			  "default_pool_size = 1\n"
			  "[databases]\n"
			  "db = host=@DIR@/no-server port=5432\n"
			  "[users]\n"
			  "st = pool_mode=statement\n";

static const char *const users[] = {"tx", "st"};
#define NUSERS 2

static struct runtime *rt;
static pool_t *pools[NUSERS];

/* ---- a growable byte buffer ------------------------------------------------------------ */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_drop(struct buf *b, size_t n)
{
	if (!n)
		return;
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- the clients and the oracle ------------------------------------------------------- */

struct fclient {
	struct fz_peer peer;
	char tag;            /* 'A' or 'B': the first letter of every text it sends */
	struct buf pending;  /* messages built, not sent yet */
	struct buf got;      /* what pgcoro sent it, not yet framed */
};

static struct fclient clients[2];

/* Fails the run when C received something answering the other client's request. */
static void check_output(struct fz_peer *p, const uint8_t *d, size_t n)
{
	struct fclient *c = p->arg;
	char other = c->tag == 'A' ? 'B' : 'A';
	buf_add(&c->got, d, n);
	while (c->got.len >= 5) {
		uint32_t len = be32(c->got.p + 1);
		if (len < 4) {
			fprintf(stderr, "fuzz_isolation: client %c got a message of length %u\n",
				c->tag, len);
			abort();
		}
		if (c->got.len < (size_t)len + 1)
			break;
		const uint8_t *m = c->got.p;
		const uint8_t *body = m + 5;
		uint32_t blen = len - 4;
		/* DataRow of one column: int16 1, int32 n, the text */
		if (m[0] == 'D' && blen >= 7 && be32(body + 2) > 0 && body[6] == (uint8_t)other) {
			fprintf(stderr, "fuzz_isolation: client %c received a row of client %c's "
					"request: \"%.*s\"\n",
				c->tag, other, (int)(blen - 6), (const char *)body + 6);
			abort();
		}
		if (m[0] == 'E') {
			const char *msg = proto_error_field(body, blen, 'M');
			if (msg && strncmp(msg, "model error ", 12) == 0 && msg[12] == other) {
				fprintf(stderr, "fuzz_isolation: client %c received the error of client "
						"%c's request: \"%s\"\n",
					c->tag, other, msg);
				abort();
			}
		}
		buf_drop(&c->got, (size_t)len + 1);
	}
}

/* A message of TYPE with BODY (N bytes) appended to B. */
static void msg(struct buf *b, uint8_t type, const void *body, size_t n)
{
	uint8_t h[5] = {type, (uint8_t)((n + 4) >> 24), (uint8_t)((n + 4) >> 16),
			(uint8_t)((n + 4) >> 8), (uint8_t)(n + 4)};
	buf_add(b, h, 5);
	if (n)
		buf_add(b, body, n);
}

static const char *const stmt_names[] = {"", "s1", "s2"};
static const char *const portal_names[] = {"", "p1"};
static const char kinds[] = {'S', 'E', 'X', 'C', 'B', 'K'};
static bool no_copy; /* $FUZZ_ISOLATION_NO_COPY: no COPY (to look past a COPY defect) */

/* Client C appends one message built from the input. */
static void build(struct fclient *c, struct fz_in *in)
{
	uint8_t t = fz_u8(in), a = fz_u8(in);
	struct buf body = {0};
	char text[8] = {c->tag, kinds[a % 6], (char)('0' + (a >> 2) % 4), 0};
	if (no_copy && text[1] == 'C')
		text[1] = 'S';
	const char *sname = stmt_names[(a >> 4) % 3];
	const char *pname = portal_names[(a >> 6) % 2];
	uint8_t type;
	switch (t % 14) {
	case 0: /* Query */
		type = 'Q';
		buf_add(&body, text, strlen(text) + 1);
		break;
	case 1: /* Parse: name, text, no parameter types */
		type = 'P';
		buf_add(&body, sname, strlen(sname) + 1);
		buf_add(&body, text, strlen(text) + 1);
		buf_add(&body, "\0\0", 2);
		break;
	case 2: /* Bind: portal, statement, no formats, no parameters, no result formats */
		type = 'B';
		buf_add(&body, pname, strlen(pname) + 1);
		buf_add(&body, sname, strlen(sname) + 1);
		buf_add(&body, "\0\0\0\0\0\0", 6);
		break;
	case 3: /* Describe */
	case 4: /* Close */
		type = t % 14 == 3 ? 'D' : 'C';
		buf_add(&body, a & 1 ? "P" : "S", 1);
		buf_add(&body, a & 1 ? pname : sname, strlen(a & 1 ? pname : sname) + 1);
		break;
	case 5: /* Execute, all rows */
		type = 'E';
		buf_add(&body, pname, strlen(pname) + 1);
		buf_add(&body, "\0\0\0\0", 4);
		break;
	case 6:
	case 7:
		type = 'S';
		break;
	case 8:
		type = 'H';
		break;
	case 9: /* CopyData: a row the model takes, or one it refuses */
		type = 'd';
		buf_add(&body, a & 1 ? "bad\n" : "1\n", a & 1 ? 4 : 2);
		break;
	case 10:
		type = 'c';
		break;
	case 11: /* CopyFail */
		type = 'f';
		buf_add(&body, "no", 3);
		break;
	case 12: /* FunctionCall: oid, no argument formats, no arguments, text result */
		type = 'F';
		buf_add(&body, "\0\0\0\1\0\0\0\0\0\0", 10);
		break;
	default: /* Query of several statements: a row, then a COPY */
		type = 'Q';
		text[1] = no_copy ? 'S' : 'M';
		buf_add(&body, text, strlen(text) + 1);
		break;
	}
	msg(&c->pending, type, body.p, body.len);
	free(body.p);
}

/* ---- the model backend ----------------------------------------------------------------- */

#define MODEL_NAMES 16

struct named {
	char name[40];
	char text[40];
	bool used;
};

static struct model {
	struct fz_peer peer;
	struct buf in;        /* what pgcoro sent, not answered yet */
	struct buf out;       /* answers being built */
	bool in_copy, copy_ext, skip, closed;
	char tx;              /* 'I' idle, 'T' in a block, 'E' in a failed block */
	struct named stmts[MODEL_NAMES], portals[MODEL_NAMES];
} mdl;

static void model_take(struct fz_peer *p, const uint8_t *d, size_t n) { buf_add(&mdl.in, d, n); }

static struct named *find(struct named *set, const char *name)
{
	for (int i = 0; i < MODEL_NAMES; i++)
		if (set[i].used && strcmp(set[i].name, name) == 0)
			return &set[i];
	return NULL;
}

/* Enters NAME -> TEXT (replacing; an unnamed entry always is). False when full. */
static bool put(struct named *set, const char *name, const char *text)
{
	struct named *e = find(set, name);
	for (int i = 0; !e && i < MODEL_NAMES; i++)
		if (!set[i].used)
			e = &set[i];
	if (!e)
		return false;
	e->used = true;
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->text, sizeof(e->text), "%s", text);
	return true;
}


static void reply(uint8_t type, const void *body, size_t n) { msg(&mdl.out, type, body, n); }

/* ReadyForQuery: the (implicit) transaction ended, and its portals with it. The unnamed
 * statement goes too, unlike in PostgreSQL, where it lasts until the next unnamed Parse:
 * a client that Binds it in a later transaction without parsing it again runs whatever a
 * previous client of that server left there, which transaction pooling cannot help. */
static void ready(void)
{
	reply('Z', &mdl.tx, 1);
	if (mdl.tx != 'I')
		return;
	for (int i = 0; i < MODEL_NAMES; i++) {
		mdl.portals[i].used = false;
		if (!mdl.stmts[i].name[0])
			mdl.stmts[i].used = false;
	}
}

static void complete(const char *tag) { reply('C', tag, strlen(tag) + 1); }

/* An ErrorResponse of SEVERITY tagged with TEXT (the request it answers). */
static void error(const char *severity, const char *code, const char *text)
{
	char m[80];
	snprintf(m, sizeof(m), "model error %s", text);
	struct buf b = {0};
	const char *f[][2] = {{"S", severity}, {"V", severity}, {"C", code}, {"M", m}};
	for (int i = 0; i < 4; i++) {
		buf_add(&b, f[i][0], 1);
		buf_add(&b, f[i][1], strlen(f[i][1]) + 1);
	}
	buf_add(&b, "", 1);
	reply('E', b.p, b.len);
	free(b.p);
	if (mdl.tx == 'T')
		mdl.tx = 'E'; /* the block is failed until its end */
}

/* BEGIN (K false) or COMMIT (K true) of TEXT, a transaction-control statement. */
static void control(bool k)
{
	if (!k) {
		if (mdl.tx == 'I')
			mdl.tx = 'T';
		complete("BEGIN");
		return;
	}
	complete(mdl.tx == 'E' ? "ROLLBACK" : "COMMIT");
	mdl.tx = 'I';
}

/* In a failed block everything but the end of the block is refused. */
static bool refused(const char *text)
{
	if (mdl.tx != 'E' || (text[0] && text[1] == 'K'))
		return false;
	error("ERROR", "25P02", text);
	return true;
}

/* A row of one text column holding TEXT, then its CommandComplete. */
static void row(const char *text)
{
	size_t n = strlen(text);
	uint8_t b[64] = {0, 1, 0, 0, 0, (uint8_t)n};
	memcpy(b + 6, text, n);
	reply('D', b, 6 + n);
	complete("SELECT 1");
}

static void row_description(void)
{
	static const uint8_t t[] = {0, 1, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff,
				    0xff, 0xff, 0xff, 0xff, 0, 0};
	reply('T', t, sizeof(t));
}

/* An error in the extended protocol: PostgreSQL skips to the Sync. */
static void ext_error(const char *code, const char *text)
{
	error("ERROR", code, text);
	mdl.skip = true;
}

static void fatal_close(const char *why)
{
	error("FATAL", "08P01", why);
	mdl.closed = true;
}

static void copy_begin(bool ext)
{
	static const uint8_t g[] = {0, 0, 1, 0, 0};
	reply('G', g, sizeof(g));
	mdl.in_copy = true;
	mdl.copy_ext = ext;
}

/* The end of a COPY: with an error (TEXT its tag) or done. */
static void copy_end(bool failed, const char *text)
{
	mdl.in_copy = false;
	if (failed) {
		error("ERROR", "22P02", text);
		if (mdl.copy_ext) {
			mdl.skip = true;
			return;
		}
	} else {
		complete("COPY 1");
	}
	if (!mdl.copy_ext)
		ready();
}

/* The NUL-terminated string at *P (before END), or NULL. */
static const char *str_at(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	if (!nul)
		return NULL;
	const char *s = (const char *)*p;
	*p = nul + 1;
	return s;
}

static void simple_query(const char *text)
{
	if (!text[0]) {
		reply('I', NULL, 0);
		ready();
		return;
	}
	if (refused(text)) {
		ready();
		return;
	}
	switch (text[1]) {
	case 'S':
		row_description();
		row(text);
		break;
	case 'B':
	case 'K':
		control(text[1] == 'K');
		break;
	case 'E':
		error("ERROR", "42000", text);
		break;
	case 'C':
		copy_begin(false);
		return; /* ReadyForQuery at its end */
	case 'M':
		row_description();
		row(text);
		copy_begin(false);
		return;
	default: /* pgcoro's own ("PREPARE x AS SELECT; DEALLOCATE x", ...) */
		if (strncmp(text, "PREPARE", 7) == 0)
			complete("PREPARE");
		complete(strncmp(text, "PREPARE", 7) == 0 ? "DEALLOCATE" : "SET");
		break;
	}
	ready();
}

/* Answers the whole message M (type, then BODY of BLEN bytes) as PostgreSQL would. */
static void answer(uint8_t type, const uint8_t *body, uint32_t blen)
{
	const uint8_t *p = body, *end = body + blen;
	if (mdl.in_copy) {
		switch (type) {
		case 'd':
			if (blen >= 3 && memcmp(body, "bad", 3) == 0)
				copy_end(true, "copy data");
			return;
		case 'c':
			copy_end(false, NULL);
			return;
		case 'f':
			copy_end(true, "copy fail");
			return;
		case 'S':
		case 'H':
			return;
		default:
			fatal_close("protocol synchronization was lost");
			return;
		}
	}
	if (mdl.skip) {
		if (type == 'S') {
			mdl.skip = false;
			ready();
		}
		return;
	}
	switch (type) {
	case 'Q': {
		const char *text = str_at(&p, end);
		if (!text)
			fatal_close("bad Query");
		else
			simple_query(text);
		return;
	}
	case 'P': {
		const char *name = str_at(&p, end), *text = name ? str_at(&p, end) : NULL;
		if (!text) {
			fatal_close("bad Parse");
		} else if (mdl.tx == 'E' && !(text[0] && text[1] == 'K')) {
			ext_error("25P02", text);
		} else if (text[0] && text[1] == 'X') {
			ext_error("42601", text);
		} else if (name[0] && find(mdl.stmts, name)) {
			ext_error("42P05", text);
		} else if (!put(mdl.stmts, name, text)) {
			ext_error("53200", text);
		} else {
			reply('1', NULL, 0);
		}
		return;
	}
	case 'B': {
		const char *portal = str_at(&p, end), *stmt = portal ? str_at(&p, end) : NULL;
		struct named *st = stmt ? find(mdl.stmts, stmt) : NULL;
		if (!stmt)
			fatal_close("bad Bind");
		else if (!st)
			ext_error("26000", stmt);
		else if (!put(mdl.portals, portal, st->text))
			ext_error("53200", st->text);
		else
			reply('2', NULL, 0);
		return;
	}
	case 'D': {
		const char *name = blen > 1 ? (p++, str_at(&p, end)) : NULL;
		struct named *e = !name ? NULL : find(body[0] == 'S' ? mdl.stmts : mdl.portals, name);
		if (!name) {
			fatal_close("bad Describe");
			return;
		}
		if (!e) {
			ext_error(body[0] == 'S' ? "26000" : "34000", name);
			return;
		}
		if (body[0] == 'S')
			reply('t', "\0\0", 2);
		if (e->text[1] == 'S')
			row_description();
		else
			reply('n', NULL, 0);
		return;
	}
	case 'E': {
		const char *portal = str_at(&p, end);
		struct named *e = portal ? find(mdl.portals, portal) : NULL;
		if (!portal) {
			fatal_close("bad Execute");
		} else if (!e) {
			ext_error("34000", portal);
		} else if (mdl.tx == 'E' && e->text[1] != 'K') {
			ext_error("25P02", e->text);
		} else if (e->text[1] == 'B' || e->text[1] == 'K') {
			control(e->text[1] == 'K');
		} else if (e->text[1] == 'S' || e->text[1] == 'X') {
			row(e->text);
		} else if (e->text[1] == 'E') {
			ext_error("42000", e->text);
		} else if (e->text[1] == 'C') {
			copy_begin(true);
		} else {
			complete(strncmp(e->text, "DEALLOCATE", 10) == 0 ? "DEALLOCATE" : "SELECT 0");
		}
		return;
	}
	case 'C': {
		const char *name = blen > 1 ? (p++, str_at(&p, end)) : NULL;
		struct named *e = !name ? NULL : find(body[0] == 'S' ? mdl.stmts : mdl.portals, name);
		if (!name) {
			fatal_close("bad Close");
			return;
		}
		if (e)
			e->used = false;
		reply('3', NULL, 0);
		return;
	}
	case 'S':
		ready();
		return;
	case 'H':
	case 'd':
	case 'c':
	case 'f':
		return; /* outside COPY: ignored */
	case 'F':
		reply('V', "\xff\xff\xff\xff", 4);
		ready();
		return;
	default:
		fatal_close("invalid frontend message type");
		return;
	}
}

/* The model reads and answers up to MAX whole messages. */
static void model_run(int max)
{
	while (max-- > 0 && !mdl.closed && mdl.in.len >= 5) {
		uint32_t len = be32(mdl.in.p + 1);
		if (len < 4) {
			fatal_close("invalid message length");
			break;
		}
		if (mdl.in.len < (size_t)len + 1)
			break;
		answer(mdl.in.p[0], mdl.in.p + 5, len - 4);
		buf_drop(&mdl.in, (size_t)len + 1);
	}
	if (mdl.out.len) {
		(void)fz_send(&mdl.peer, mdl.out.p, mdl.out.len);
		mdl.out.len = 0;
	}
	if (mdl.closed && mdl.peer.fd >= 0) {
		close(mdl.peer.fd);
		mdl.peer.fd = -1;
	}
}

/* ---- the harness ------------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	no_copy = getenv("FUZZ_ISOLATION_NO_COPY") != NULL;
	rt = fz_start(fz_write_file("pgcoro.ini", ini));
	for (size_t u = 0; u < NUSERS; u++) {
		pools[u] = pool_get("db", users[u], cfg_find_db(rt->cfg, "db"));
		if (!pools[u])
			abort();
		fz_pool_ready(pools[u]);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	unsigned u = fz_u8(&in) % NUSERS;
	mdl = (struct model){.tx = 'I'};
	fz_pair(&mdl.peer);
	mdl.peer.on_output = model_take;
	if (!server_adopt(pools[u], mdl.peer.pg_fd))
		abort();
	uint8_t packet[128];
	const char *kv[] = {"user", users[u], "database", "db", NULL};
	size_t plen = fz_startup(packet, sizeof(packet), kv);
	for (int i = 0; i < 2; i++) {
		clients[i] = (struct fclient){.tag = (char)('A' + i)};
		clients[i].peer.on_output = check_output;
		clients[i].peer.arg = &clients[i];
		fz_client(&clients[i].peer);
		if (!fz_send(&clients[i].peer, packet, plen))
			abort();
	}
	fz_settle();
	while (in.n > 0) {
		uint8_t op = fz_u8(&in);
		struct fclient *c = &clients[op & 1];
		switch ((op >> 1) % 6) {
		case 0:
		case 1:
			build(c, &in);
			break;
		case 2:
		case 3: {
			size_t n = (size_t)fz_u8(&in) + 1;
			if (n > c->pending.len)
				n = c->pending.len;
			if (!n)
				break;
			(void)fz_send(&c->peer, c->pending.p, n); /* a closed client drops it */
			buf_drop(&c->pending, n);
			break;
		}
		case 4:
			model_run(fz_u8(&in) % 8 + 1);
			break;
		default:
			model_run(1 << 30);
			break;
		}
		fz_settle();
	}
	struct fz_peer *peers[] = {&clients[0].peer, &clients[1].peer, &mdl.peer};
	fz_close(peers, 3);
	for (int i = 0; i < 2; i++) {
		free(clients[i].pending.p);
		free(clients[i].got.p);
	}
	free(mdl.in.p);
	free(mdl.out.p);
	int servers = 0;
	for (size_t i = 0; i < NUSERS; i++)
		servers += pool_server_count(pools[i]);
	if (client_count() != 0 || servers != 0) {
		fprintf(stderr, "fuzz_isolation: %d client(s), %d server(s) left after the input\n",
			client_count(), servers);
		abort();
	}
	return 0;
}

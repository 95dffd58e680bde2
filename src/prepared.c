/* Owns protocol-level prepared statements in transaction and statement mode: the
 * pgcoro-wide statement registry, each client's statement names, each server's prepared
 * statements (an LRU bounded by max_prepared_statements) and the queue of answers each
 * server owes.
 *
 * DESIGN. A client's named Parse is never sent under its own name: the statement (its
 * query text and parameter types) is looked up in a registry shared by every client, and
 * prepared on servers under names of pgcoro's, so identical statements from many clients
 * are prepared once per server. The client's name maps to the registry entry. Each time
 * a server prepares one it gets a new name, "PGCORO_<n>_<r>": n counts every name made,
 * r is random, so no name is used twice and a client that reads pg_prepared_statements
 * on its server cannot foretell the next one (and PREPARE it first). Bind and
 * Describe of a named statement are rewritten to the server name; when the server the
 * client holds has not prepared it, a Parse is injected just before. Close of a named
 * statement only drops the client's name (others may use the server statement) and is
 * answered by pgcoro. Unnamed statements and portals pass unchanged.
 * What one client's names hold is bounded (max_client_prepared_statements names,
 * max_client_prepared_bytes of their statements, each name charged its statement in
 * full): a Parse past either is answered with pgcoro's 53400 like any error it detects;
 * a Close (or DISCARD ALL) gives the room back when it drops the name.
 * A server tracks from the hand-out when its client has named statements, else from
 * the client's first message that may name one; requests outstanding then were not
 * recorded, so their answers pass up to a marker (a Close of a portal that does not
 * exist) whose CloseComplete is swallowed (RQ_BARRIER). Clients that never name a
 * statement cost nothing.
 * Each tracking server keeps a queue with one entry per request that gets an answer, in
 * wire order (kind bytes in the server's prep_ring, read and popped inline by the relay
 * for plain entries; the rest in ps->extra): the server's completion messages
 * (ParseComplete, BindComplete, the end of a Describe or Execute, CloseComplete,
 * ReadyForQuery) pop it. An entry for pgcoro's own request swallows its completion; an
 * entry that pgcoro answers itself (the client's Close, a Parse of a statement the server
 * already has) is emitted when it reaches the head, so the client sees answers in its own
 * order. In a failed transaction block PostgreSQL refuses a Parse with 25P02, so when
 * the block may be failed (the last ReadyForQuery said 'E', or one is still due) such a
 * Parse goes to the server as a probe, the text parsed under PROBE_STMT and closed at
 * once: its answer is the client's. An error pgcoro detects (a duplicate or unknown
 * name, a limit) is answered in its place too, but the server is made to fail there as
 * well, its error replaced with pgcoro's: PostgreSQL would abort the transaction at that
 * error, so the server's does too (an explicit block fails, a pipeline's implicit
 * transaction is rolled back at Sync). Where PostgreSQL checks for a failed block first
 * (a Parse; a Bind of a statement it has) the failing request is a Parse that parse
 * analysis refuses, whose 25P02 in a failed block passes; where it looks the name up
 * first (a Bind or Describe of an unknown name), an Execute of a portal that does not
 * exist.
 * An ErrorResponse pops every entry up to the next Sync, as PostgreSQL skips those
 * messages; their effects are undone (a client name or server statement whose Parse never
 * ran is forgotten), and client messages until that Sync are dropped. Effects are
 * committed when the answer arrives, never when the request is sent.
 * The server's statements are the truth only while nothing else touches them. In
 * transaction mode another client of the pool may get the server next and run SQL on
 * them: pgcoro looks at the CommandComplete tags of every hand-out of a server that holds
 * its statements (tracking or not: prep_server_tag). A DISCARD ALL or DEALLOCATE ALL
 * forgets them (and the names of the client that ran it), housekeeping's DISCARD ALL
 * too; a PREPARE or DEALLOCATE pgcoro did not cause (tag_seen) leaves them unknown, as
 * it may have dropped or replaced one of them: they are forgotten and prepared again,
 * under new names, at their next use. Those that may remain on the server count as
 * orphans; past max_prepared_statements of them the server is closed when released.
 * Dynamic SQL (plpgsql EXECUTE) shows pgcoro no tag: a client that can run it can still
 * swap a statement (README: the clients of a pool trust each other in transaction mode).
 * A "does not exist" for one of ours forgets it on that server (prepared again at its
 * next use), told with the client's name when something ran before it in the batch. (Behind such a command in the same batch, a Bind
 * of a statement named before it may still run — prepared again — where PostgreSQL says
 * it does not exist, and a Parse of such a name gets 42P05 where PostgreSQL makes it.)
 * Validity: a server statement keeps the result type of its Parse; after a schema change
 * PostgreSQL answers its use with 0A000 (RevalidateCachedQuery: "cached plan must not
 * change result type") or XX000 "cache lookup failed for type N", until the client
 * prepares the statement again. Such an error answering a Bind or Describe retires the
 * registry entry (stmt_retire): the next Parse of that text, under any name, makes a new
 * entry prepared afresh; the client names that map to the old one get that error from
 * pgcoro at each use, as from PostgreSQL, until the client prepares again — which asyncpg
 * and pgjdbc do at once. So one error per statement and connection, as with PostgreSQL,
 * not one per server for ever. (A client that prepared the text after the change but
 * before any client met the error was mapped to the stale entry: it gets the error once.)
 * SQL `DEALLOCATE [PREPARE] name` of a client's statement (a Query, or a Parse of the
 * unnamed statement: psycopg 3 with libpq < 17) drops the name as a Close does; the
 * server runs a DEALLOCATE of a statement made for the purpose, so the answers and the
 * transaction are PostgreSQL's (on_deallocate). SQL-level PREPARE/EXECUTE are not
 * translated (as with PgBouncer).
 * Counters (PgBouncer's, SHOW STATS): the named Parses clients make (client_parse_count),
 * the Parses pgcoro sends servers for them (server_parse_count), the Binds of named
 * statements it forwards (bind_count); refused ones count nothing. */
#include "prepared.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proto.h"
#include "rand.h"
#include "runtime.h"
#include "server.h"
#include "stream.h"

static struct runtime *rt;

/* A message that must be read whole to be rewritten may be at most this long: the
 * client's input stops being read beyond it. */
#define WHOLE_MAX STREAM_READ_HIGH
#define NAME_MAX_LEN 48 /* "PGCORO_", a 64-bit number, "_", 16 hex digits */

/* ---- the registry: one entry per distinct statement --------------------------------- */

struct prep_stmt {
	struct prep_stmt *next; /* hash chain */
	uint64_t hash;
	uint64_t id;            /* prepared on servers as PGCORO_<id> */
	uint32_t refs;          /* client names and server statements using it */
	bool parsed;            /* a server parsed it without error at least once */
	bool retired;           /* stale on servers: out of the registry (stmt_retire) */
	uint8_t *stale;         /* retired: the server's ErrorResponse that said so, or NULL */
	uint32_t stale_len;
	uint32_t rlen;
	uint8_t rest[];         /* the Parse after its name: query, parameter types */
};

static struct {
	struct prep_stmt **buckets;
	size_t nbuckets, count;
	uint64_t next_id;
	uint64_t next_name;   /* numbers the server statements: never one name twice */
	uint64_t dealloc_seq; /* numbers the statements a Query's DEALLOCATE makes and drops */
	struct pbuf scratch;  /* answers built before they are sent or copied */
} reg;

/* pgcoro's own names that a client must not be able to take first on a server (the
 * portal of a refused request, the probe): a per-process secret part, chosen at start,
 * that no server statement or error shows. */
#define SECRET_LEN 16
static char fail_portal[48], probe_stmt[48], dealloc_stmt_q[48];

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

void prep_init(struct runtime *r)
{
	rt = r;
	uint8_t b[SECRET_LEN / 2];
	char secret[SECRET_LEN + 1];
	if (!rand_bytes(b, sizeof(b)))
		fatal("no random bytes for pgcoro's prepared statement names");
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(secret + 2 * i, 3, "%02x", b[i]);
	snprintf(fail_portal, sizeof(fail_portal), "PGCORO_FAIL_%s", secret);
	snprintf(probe_stmt, sizeof(probe_stmt), "PGCORO_PROBE_%s", secret);
	snprintf(dealloc_stmt_q, sizeof(dealloc_stmt_q), "PGCORO_DEALLOCATE_%s", secret);
}

size_t prep_statement_count(void) { return reg.count; }

static bool reg_grow(void)
{
	size_t nb = reg.nbuckets ? reg.nbuckets * 2 : 256;
	struct prep_stmt **b = calloc(nb, sizeof(*b));
	if (!b)
		return false;
	for (size_t i = 0; i < reg.nbuckets; i++) {
		struct prep_stmt *st = reg.buckets[i];
		while (st) {
			struct prep_stmt *next = st->next;
			st->next = b[st->hash & (nb - 1)];
			b[st->hash & (nb - 1)] = st;
			st = next;
		}
	}
	free(reg.buckets);
	reg.buckets = b;
	reg.nbuckets = nb;
	return true;
}

static struct prep_stmt *stmt_find(const uint8_t *rest, uint32_t rlen, uint64_t h)
{
	if (reg.nbuckets)
		for (struct prep_stmt *st = reg.buckets[h & (reg.nbuckets - 1)]; st; st = st->next)
			if (st->hash == h && st->rlen == rlen && memcmp(st->rest, rest, rlen) == 0)
				return st;
	return NULL;
}

/* The registry entry for REST (a reference taken), created if new. NULL without memory. */
static struct prep_stmt *stmt_get(const uint8_t *rest, uint32_t rlen)
{
	uint64_t h = fnv(rest, rlen, FNV_INIT);
	struct prep_stmt *found = stmt_find(rest, rlen, h);
	if (found) {
		found->refs++;
		return found;
	}
	if (reg.count >= reg.nbuckets && !reg_grow() && !reg.nbuckets)
		return NULL;
	struct prep_stmt *st = malloc(sizeof(*st) + rlen);
	if (!st)
		return NULL;
	st->hash = h;
	st->id = ++reg.next_id;
	st->refs = 1;
	st->parsed = false;
	st->retired = false;
	st->stale = NULL;
	st->rlen = rlen;
	memcpy(st->rest, rest, rlen);
	struct prep_stmt **head = &reg.buckets[h & (reg.nbuckets - 1)];
	st->next = *head;
	*head = st;
	reg.count++;
	return st;
}

/* The N bytes at P, copied (NULL without memory). */
static uint8_t *copy_of(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n);
	if (c)
		memcpy(c, p, n);
	return c;
}

/* Takes ST out of the registry's hash table. */
static void stmt_unlink(struct prep_stmt *st)
{
	struct prep_stmt **pp = &reg.buckets[st->hash & (reg.nbuckets - 1)];
	while (*pp != st)
		pp = &(*pp)->next;
	*pp = st->next;
	reg.count--;
}

static void stmt_unref(struct prep_stmt *st)
{
	if (--st->refs)
		return;
	if (!st->retired)
		stmt_unlink(st);
	free(st->stale);
	free(st);
}

/* The server-side statements of ST are stale: a server answered a use of one with ERR
 * (a whole ErrorResponse of LEN bytes). ST leaves the registry, so the next Parse of its
 * text makes a new statement, prepared afresh on each server; the client names that map
 * to ST keep it and get ERR from pgcoro at each use, as PostgreSQL answers a statement
 * prepared before a schema change until the client prepares it again. Its server-side
 * statements are not used again and go with the LRU. */
static void stmt_retire(struct prep_stmt *st, const uint8_t *err, size_t len)
{
	if (st->retired)
		return;
	stmt_unlink(st);
	st->retired = true;
	st->stale = copy_of(err, len);
	st->stale_len = (uint32_t)len;
	const char *code = proto_error_field(err + PROTO_HDR, (uint32_t)len - PROTO_HDR, 'C');
	const char *m = proto_error_field(err + PROTO_HDR, (uint32_t)len - PROTO_HDR, 'M');
	log_info("prepared statement %" PRIu64 " retired (%s %.200s): its text is "
		 "prepared anew from now on",
		 st->id, code ? code : "", m ? m : "");
}

/* A new server statement name in BUF (NAME_MAX_LEN): "PGCORO_<n>_<r>", n counting every
 * name pgcoro makes (so none is ever used twice), r 64 random bits (so a client that
 * reads the names on its server in pg_prepared_statements cannot foretell the next one
 * and PREPARE it first). False if no random bytes could be had. */
static bool server_name(char *buf)
{
	uint64_t r;
	if (!rand_bytes(&r, sizeof(r)))
		return false;
	snprintf(buf, NAME_MAX_LEN, "PGCORO_%" PRIu64 "_%016" PRIx64, ++reg.next_name, r);
	return true;
}

/* ---- a client's statement names ------------------------------------------------------ */

struct centry {
	struct centry *next;    /* hash chain */
	struct prep_client *map; /* its client's map (alive while a queue entry holds it) */
	struct prep_stmt *stmt; /* a reference */
	uint64_t hash;
	uint32_t refs;          /* the map, and queue entries of its pending Parse */
	bool in_map;
	bool pending;           /* its Parse is not answered yet */
	bool failed;            /* its Parse failed or was skipped */
	char name[];
};

struct prep_client {
	struct centry **buckets;
	size_t nbuckets, count;
	size_t bytes;      /* charged to max_client_prepared_bytes (charge()) */
	double logged_at;  /* the last refusal logged (0: none yet) */
	uint64_t unlogged; /* refusals since */
};

/* What a name costs against max_client_prepared_bytes: its statement (the Parse after
 * the name) and the name. A statement several names or clients share counts for each, so
 * a client's room never depends on what others do. */
static size_t charge(const char *name, uint32_t rlen) { return strlen(name) + rlen; }

static void centry_unref(struct centry *ce)
{
	if (--ce->refs)
		return;
	stmt_unref(ce->stmt);
	free(ce);
}

static struct centry *map_find(struct prep_client *pc, const char *name)
{
	if (!pc)
		return NULL;
	uint64_t h = fnv(name, strlen(name), FNV_INIT);
	for (struct centry *ce = pc->buckets[h & (pc->nbuckets - 1)]; ce; ce = ce->next)
		if (ce->hash == h && strcmp(ce->name, name) == 0)
			return ce;
	return NULL;
}

static bool map_grow(struct prep_client *pc)
{
	size_t nb = pc->nbuckets ? pc->nbuckets * 2 : 16;
	struct centry **b = calloc(nb, sizeof(*b));
	if (!b)
		return false;
	for (size_t i = 0; i < pc->nbuckets; i++) {
		struct centry *ce = pc->buckets[i];
		while (ce) {
			struct centry *next = ce->next;
			ce->next = b[ce->hash & (nb - 1)];
			b[ce->hash & (nb - 1)] = ce;
			ce = next;
		}
	}
	free(pc->buckets);
	pc->buckets = b;
	pc->nbuckets = nb;
	return true;
}

static void map_remove(struct prep_client *pc, struct centry *ce)
{
	struct centry **pp = &pc->buckets[ce->hash & (pc->nbuckets - 1)];
	while (*pp != ce)
		pp = &(*pp)->next;
	*pp = ce->next;
	ce->in_map = false;
	pc->count--;
	pc->bytes -= charge(ce->name, ce->stmt->rlen);
	centry_unref(ce);
}

/* Puts CE (out of the map, a reference held by the caller) back into PC. */
static void map_insert(struct prep_client *pc, struct centry *ce)
{
	struct centry **head = &pc->buckets[ce->hash & (pc->nbuckets - 1)];
	ce->next = *head;
	*head = ce;
	ce->in_map = true;
	ce->refs++;
	pc->count++;
	pc->bytes += charge(ce->name, ce->stmt->rlen);
}

/* C's map, created empty if it has none. NULL without memory. */
static struct prep_client *map_of(client_t *c)
{
	if (!c->prep) {
		c->prep = calloc(1, sizeof(*c->prep));
		if (!c->prep || !map_grow(c->prep)) {
			free(c->prep);
			c->prep = NULL;
		}
	}
	return c->prep;
}

/* Enters NAME -> ST (a reference taken) in C's map, pending. NULL without memory. */
static struct centry *map_add(client_t *c, const char *name, struct prep_stmt *st)
{
	struct prep_client *pc = map_of(c);
	if (!pc || (pc->count >= pc->nbuckets * 2 && !map_grow(pc)))
		return NULL;
	size_t n = strlen(name) + 1;
	struct centry *ce = malloc(sizeof(*ce) + n);
	if (!ce)
		return NULL;
	memcpy(ce->name, name, n);
	ce->hash = fnv(name, n - 1, FNV_INIT);
	ce->stmt = st;
	st->refs++;
	ce->refs = 0;
	ce->map = pc;
	ce->pending = true;
	ce->failed = false;
	map_insert(pc, ce);
	return ce;
}

/* Drops C's names whose Parse has been answered (ALL: every name). */
static void map_clear(struct prep_client *pc, bool all)
{
	if (!pc)
		return;
	for (size_t i = 0; i < pc->nbuckets; i++) {
		struct centry *ce = pc->buckets[i];
		while (ce) {
			struct centry *next = ce->next;
			if (all || !ce->pending)
				map_remove(pc, ce);
			ce = next;
		}
	}
}

#define REFUSAL_LOG_SEC 10.0 /* at most one refusal line per client this often */

/* Logs (log_pooler_errors) that pgcoro answered C's request itself with error SQLSTATE,
 * WHAT saying why: at most one line per client every REFUSAL_LOG_SEC, the next one
 * counting those left out. */
static void log_refusal(client_t *c, const char *sqlstate, const char *what)
{
	const struct config *cfg = rt->cfg;
	struct prep_client *pc = map_of(c);
	double now = rt_now();
	if (pc && pc->logged_at > 0 && now - pc->logged_at < REFUSAL_LOG_SEC) {
		pc->unlogged++;
		return;
	}
	char more[64] = "";
	if (pc && pc->unlogged)
		snprintf(more, sizeof(more), " (and %llu more since the last such line)",
			 (unsigned long long)pc->unlogged);
	if (cfg->log_pooler_errors)
		log_warning("client %llu %s (%s@%s): pooler error %s: %s%s",
			    (unsigned long long)c->id, client_peer(c), c->user ? c->user : "-",
			    c->database ? c->database : "-", sqlstate, what, more);
	if (pc) {
		pc->logged_at = now;
		pc->unlogged = 0;
	}
}

/* False when one more name NAME, for a statement of RLEN bytes, would pass C's limits:
 * MSG (N bytes) then says which, and the refusal is logged (log_refusal). */
static bool within_limits(client_t *c, const char *name, uint32_t rlen, char *msg, size_t n)
{
	const struct config *cfg = rt->cfg;
	struct prep_client *pc = c->prep;
	size_t count = pc ? pc->count : 0, bytes = pc ? pc->bytes : 0;
	size_t add = charge(name, rlen);
	if (cfg->max_client_prepared_statements > 0 &&
	    count >= (size_t)cfg->max_client_prepared_statements)
		snprintf(msg, n,
			 "prepared statement \"%.64s\" not created: this client already has %zu named "
			 "prepared statements, max_client_prepared_statements is %d",
			 name, count, cfg->max_client_prepared_statements);
	else if (cfg->max_client_prepared_bytes > 0 &&
		 bytes + add > (size_t)cfg->max_client_prepared_bytes)
		snprintf(msg, n,
			 "prepared statement \"%.64s\" not created: its %zu bytes and the %zu of this "
			 "client's named prepared statements would pass max_client_prepared_bytes (%d)",
			 name, add, bytes, cfg->max_client_prepared_bytes);
	else
		return true;
	metrics_error(c->pool, "53400");
	log_refusal(c, "53400", msg);
	return false;
}

/* The refusal of a name C's statements have already (42P05) or do not have (26000),
 * logged in PgBouncer's words, which its users' log watches know. */
static void log_name_refusal(client_t *c, const char *sqlstate, const char *name)
{
	char what[128];
	snprintf(what, sizeof(what), "prepared statement '%.64s' %s", name,
		 sqlstate[0] == '4' ? "was already prepared" : "not found");
	log_refusal(c, sqlstate, what);
}

#define LIMIT_HINT                                                                       \
	"Close the prepared statements no longer used (protocol-level Close, or DEALLOCATE " \
	"ALL), or raise the limit in pgcoro's configuration."

void prep_client_free(client_t *c)
{
	if (!c->prep)
		return;
	map_clear(c->prep, true);
	free(c->prep->buckets);
	free(c->prep);
	c->prep = NULL;
}

/* ---- a server's statements and expected answers -------------------------------------- */

struct sentry {
	struct sentry *next;    /* hash chain */
	struct list lru;        /* in ps->lru, most recently used last */
	struct prep_stmt *stmt; /* a reference */
	bool pending;           /* its Parse is not answered yet */
	uint32_t epoch;         /* evicted: ps->epoch then */
	char name[NAME_MAX_LEN]; /* its name on this server (server_name) */
};

/* Kinds of answers (enum prep_kind, prepared.h). */
#define RQ_SIMPLE PK_SIMPLE
#define RQ_SYNC PK_SYNC
#define RQ_PARSE PK_PARSE
#define RQ_BIND PK_BIND
#define RQ_DESCRIBE PK_DESCRIBE
#define RQ_EXECUTE PK_EXECUTE
#define RQ_CLOSE PK_CLOSE

#define RQ_SWALLOW 1 /* pgcoro's own request: its completion is not passed on */
#define RQ_ANSWER 2  /* pgcoro answers it when it reaches the head; nothing was sent */
#define RQ_DEPENDS 4 /* a Bind or Describe sent when its statement may be gone by the time
                      * it runs (its Parse not answered yet, or other requests before it,
                      * a DISCARD ALL perhaps): an error naming our statement names the
                      * client's (ce) */
#define RQ_BARRIER 8 /* tracking began mid-way: unrecorded answers pass up to this marker's
                      * CloseComplete (sid: how many other CloseCompletes come first) */
#define RQ_FAIL 16   /* an error pgcoro detects (err): the server was sent a failing request
                      * in the refused one's place, its error is replaced with err */
#define RQ_DEALLOC 32 /* the client's DEALLOCATE of name ce, dropped when sent: back unless
                       * it runs (a Parse: answered; a Query: its CommandComplete seen) */

#define FAIL_PORTAL fail_portal /* a portal that does not exist: Executing it fails (a
                                * client's cursor of that name would answer instead) */
#define FAIL_STMT "PGCORO_FAIL"   /* a Parse of it always fails: FAIL_TEXT is refused by
                                   * parse analysis, or with 25P02 in a failed block; a
                                   * client's statement of that name fails it too */
#define FAIL_TEXT "SELECT *\0\0" /* "SELECT * with no tables specified is not valid" */
#define PROBE_STMT probe_stmt /* parsed (and closed at once) to learn whether the server
                               * accepts a Parse there (not in a failed block) */
#define DEALLOC_STMT "PGCORO_DEALLOCATE" /* what a translated DEALLOCATE (a Parse) drops:
                                          * closed before it is made, so a client's
                                          * statement of that name does not matter (and
                                          * the client sees it if it never executes) */
#define DEALLOC_STMT_Q dealloc_stmt_q /* what one in a Query makes and drops (_<n>) */
#define DEALLOC_MAX 256 /* longer texts are not looked at for a DEALLOCATE */

/* An answer the server owes (or pgcoro does) with more than its kind: kept in
 * ps->extra at its ring index, its kind byte flagged PREP_SPECIAL. */
struct rq {
	uint8_t kind, flags;
	uint32_t errlen;
	uint8_t *err;           /* RQ_FAIL: the ErrorResponse for the client (owned), ERRLEN
	                         * bytes */
	struct centry *ce;      /* the client's Parse: committed on success (a reference) */
	uint64_t sid;           /* a Parse sent to the server: that statement's id */
	uint64_t uses;          /* a Bind or Describe of a named statement: its id (kept in a
	                         * plain entry too, kind byte flagged PREP_USES) */
	struct sentry *evicted; /* an eviction's Close: the statement, out of the set (owned),
	                         * put back if the Close is skipped */
	uint32_t zs;            /* RQ_BARRIER: ReadyForQuery messages due before the marker */
};

struct prep_server {
	struct prep_ring *r;    /* the server's ring of expected answers (s->pring) */
	struct rq *extra;       /* special entries, at their ring index */
	struct sentry **buckets;
	size_t nbuckets;
	struct list_head lru;
	struct pbuf out;        /* requests built for the server */
	struct pbuf answers;    /* answers due to the client */
	struct stats *stats;    /* the server's pool's counters (Parses sent) */
	uint32_t epoch;         /* bumped when the set is forgotten (tag_seen): an eviction
	                         * made before is not put back */
	uint32_t orphans;       /* statements forgotten that may still be on the server */
	bool own_dealloc;       /* the unnamed statement may be a translated DEALLOCATE
	                         * (on_deallocate): its CommandComplete is pgcoro's doing */
};

static struct sentry *set_find(struct prep_server *ps, uint64_t id)
{
	for (struct sentry *se = ps->buckets[id & (ps->nbuckets - 1)]; se; se = se->next)
		if (se->stmt->id == id)
			return se;
	return NULL;
}

/* Takes SE out of the set (not freed). */
static void set_unlink(struct prep_server *ps, struct sentry *se)
{
	struct sentry **pp = &ps->buckets[se->stmt->id & (ps->nbuckets - 1)];
	while (*pp != se)
		pp = &(*pp)->next;
	*pp = se->next;
	list_del(&ps->lru, &se->lru);
}

static void sentry_free(struct sentry *se)
{
	stmt_unref(se->stmt);
	free(se);
}

static void set_remove(struct prep_server *ps, struct sentry *se)
{
	set_unlink(ps, se);
	sentry_free(se);
}

static void set_touch(struct prep_server *ps, struct sentry *se)
{
	list_del(&ps->lru, &se->lru);
	list_append(&ps->lru, &se->lru);
}

/* Links SE into the server's set, the most recently used or, with OLDEST, the least. */
static void set_link(struct prep_server *ps, struct sentry *se, bool oldest)
{
	struct sentry **head = &ps->buckets[se->stmt->id & (ps->nbuckets - 1)];
	se->next = *head;
	*head = se;
	list_init(&se->lru);
	if (oldest) {
		se->lru.next = ps->lru.node.next;
		se->lru.prev = &ps->lru.node;
		ps->lru.node.next->prev = &se->lru;
		ps->lru.node.next = &se->lru;
		ps->lru.count++;
	} else {
		list_append(&ps->lru, &se->lru);
	}
}

/* Enters ST (a reference taken), pending, in the server's set under a new name, the
 * most recently used. NULL without memory. */
static struct sentry *set_put(struct prep_server *ps, struct prep_stmt *st)
{
	struct sentry *se = malloc(sizeof(*se));
	if (!se)
		return NULL;
	if (!server_name(se->name)) {
		free(se);
		return NULL;
	}
	se->stmt = st;
	st->refs++;
	se->pending = true;
	set_link(ps, se, false);
	return se;
}

static bool q_grow(struct prep_server *ps)
{
	struct prep_ring *r = ps->r;
	uint32_t cap = (r->mask + 1) * 2;
	uint8_t *kind = malloc(cap);
	struct rq *extra = malloc(cap * sizeof(*extra));
	if (!kind || !extra) {
		free(kind);
		free(extra);
		return false;
	}
	for (uint32_t i = 0; i < r->len; i++) {
		kind[i] = r->kind[(r->head + i) & r->mask];
		extra[i] = ps->extra[(r->head + i) & r->mask];
	}
	free(r->kind);
	free(ps->extra);
	r->kind = kind;
	ps->extra = extra;
	r->mask = cap - 1;
	r->head = 0;
	return true;
}

static bool q_push(struct prep_server *ps, struct rq rq)
{
	struct prep_ring *r = ps->r;
	if (r->len > r->mask && !q_grow(ps))
		return false;
	uint32_t i = (r->head + r->len) & r->mask;
	bool special = rq.flags || rq.ce || rq.sid || rq.evicted || rq.err;
	r->kind[i] = (uint8_t)(rq.kind | (special ? PREP_SPECIAL : rq.uses ? PREP_USES : 0));
	if (special)
		ps->extra[i] = rq;
	else if (rq.uses)
		ps->extra[i].uses = rq.uses; /* all q_head reads of a plain entry */
	r->len++;
	return true;
}

/* The head entry (a plain one filled in from its kind), or NULL. */
static struct rq *q_head(struct prep_server *ps)
{
	struct prep_ring *r = ps->r;
	if (!r->len)
		return NULL;
	uint32_t i = r->head & r->mask;
	uint8_t k = r->kind[i];
	if (!(k & PREP_SPECIAL)) {
		uint64_t uses = k & PREP_USES ? ps->extra[i].uses : 0;
		ps->extra[i] = (struct rq){.kind = k & (uint8_t)~PREP_USES, .uses = uses};
	}
	return &ps->extra[i];
}

/* Ends the head entry: its effects are committed (OK) or undone. */
static void q_pop(struct prep_server *ps, bool ok)
{
	struct rq *rq = q_head(ps);
	if (rq->sid) {
		struct sentry *se = set_find(ps, rq->sid);
		if (se && se->pending) {
			if (ok) {
				se->pending = false;
				se->stmt->parsed = true;
			}
			else
				set_remove(ps, se);
		}
	}
	if (rq->evicted) {
		struct sentry *se = rq->evicted;
		if (!ok && se->epoch == ps->epoch && !set_find(ps, se->stmt->id)) {
			se->pending = false;
			set_link(ps, se, true); /* the Close was skipped */
		} else {
			sentry_free(se);
		}
	}
	if (rq->ce && (rq->flags & RQ_DEPENDS)) {
		centry_unref(rq->ce);
	} else if (rq->ce && (rq->kind == RQ_CLOSE || (rq->flags & RQ_DEALLOC))) {
		/* the Close or DEALLOCATE did not run: the name stays (unless made again since) */
		if ((!ok || rq->kind == RQ_SIMPLE) && !rq->ce->in_map &&
		    !map_find(rq->ce->map, rq->ce->name))
			map_insert(rq->ce->map, rq->ce);
		centry_unref(rq->ce);
	} else if (rq->ce) {
		if (ok)
			rq->ce->pending = false;
		else if (rq->ce->pending && (rq->flags & RQ_DEPENDS) == 0) {
			rq->ce->failed = true; /* the Parse was skipped or failed */
			if (rq->ce->in_map)
				map_remove(rq->ce->map, rq->ce);
		}
		centry_unref(rq->ce);
	}
	free(rq->err);
	ps->r->head++;
	ps->r->len--;
}

void prep_server_start(server_t *s)
{
	s->prep_on = false;
	if (!s->prep) {
		struct prep_server *ps = calloc(1, sizeof(*ps));
		size_t nb = 16;
		while (nb < (size_t)rt->cfg->max_prepared_statements && nb < 4096)
			nb *= 2;
		if (ps)
			ps->buckets = calloc(nb, sizeof(*ps->buckets));
		if (!ps || !ps->buckets) {
			free(ps);
			log_warning("server %llu: out of memory: prepared statements not tracked",
				    (unsigned long long)s->id);
			return;
		}
		ps->nbuckets = nb;
		list_head_init(&ps->lru);
		pbuf_init(&ps->out);
		pbuf_init(&ps->answers);
		ps->r = &s->pring;
		s->prep = ps;
		s->pring = (struct prep_ring){.kind = malloc(32), .mask = 31};
		ps->stats = &s->pool->traffic->stats; /* a pool with a server has it */
		ps->extra = malloc(32 * sizeof(*ps->extra));
		if (!s->pring.kind || !ps->extra) {
			prep_server_free(s);
			log_warning("server %llu: out of memory: prepared statements not tracked",
				    (unsigned long long)s->id);
			return;
		}
	}
	s->prep->own_dealloc = false; /* a translated DEALLOCATE of an earlier hand-out */
	s->prep_on = true;
}

static void release_all(struct prep_server *ps)
{
	while (ps->r->len)
		q_pop(ps, false);
}

/* Forgets the server's statements whose Parse was answered (ALL: every one). */
static void set_clear(struct prep_server *ps, bool all)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ps->lru)
	{
		struct sentry *se = list_entry(pos, struct sentry, lru);
		if (all || !se->pending)
			set_remove(ps, se);
	}
}

/* Forgets the server's statements whose Parse was answered (ALL: every one), and the
 * evictions in flight; returns how many statements it forgot. */
static uint32_t set_forget(struct prep_server *ps, bool all)
{
	uint32_t before = (uint32_t)ps->lru.count;
	set_clear(ps, all);
	ps->epoch++;
	return before - (uint32_t)ps->lru.count;
}

void prep_server_forget(server_t *s)
{
	if (s->prep)
		(void)set_forget(s->prep, true);
}

void prep_server_free(server_t *s)
{
	struct prep_server *ps = s->prep;
	if (!ps)
		return;
	release_all(ps);
	set_clear(ps, true);
	free(ps->r->kind);
	*ps->r = (struct prep_ring){0};
	free(ps->extra);
	free(ps->buckets);
	pbuf_free(&ps->out);
	pbuf_free(&ps->answers);
	free(ps);
	s->prep = NULL;
	s->prep_on = false;
}

const uint8_t *prep_output(server_t *s, size_t *len)
{
	*len = s->prep->out.len;
	return s->prep->out.failed ? NULL : s->prep->out.data;
}

void prep_output_append(server_t *s, const uint8_t *p, size_t n)
{
	proto_put_bytes(&s->prep->out, p, n);
}

void prep_output_done(server_t *s)
{
	pbuf_reset(&s->prep->out);
	s->pring.output = false;
}

void prep_flush_answers(server_t *s)
{
	struct prep_server *ps = s->prep;
	if (!ps || !ps->answers.len)
		return;
	if (s->client && !ps->answers.failed)
		stream_send(&s->client->st, ps->answers.data, ps->answers.len);
	else if (s->client)
		client_disconnect(s->client, "53200", "out of memory building an answer");
	pbuf_reset(&ps->answers);
	ps->r->answers = false;
}

/* Emits the answers pgcoro owes that have reached the head of the queue. */
static void settle(struct prep_server *ps)
{
	struct rq *rq;
	while ((rq = q_head(ps)) && (rq->flags & RQ_ANSWER)) {
		proto_build_empty(&ps->answers, rq->kind == RQ_CLOSE ? '3' : '1');
		q_pop(ps, true);
		ps->r->answers = true;
	}
}

/* ---- client messages ----------------------------------------------------------------- */

static bool push(struct prep_server *ps, uint8_t kind, uint8_t flags, struct centry *ce,
		 uint64_t sid)
{
	if (!q_push(ps, (struct rq){.kind = kind, .flags = flags, .ce = ce, .sid = sid}))
		return false;
	if (ce)
		ce->refs++;
	return true;
}

/* How the server is made to fail where pgcoro answers an error (answer_with). */
enum fail_how {
	FAIL_ALWAYS,   /* an Execute of a portal that does not exist: PostgreSQL looks the
	                * name up before it checks for a failed block (Bind, Describe) */
	FAIL_UNLESS_ABORTED, /* a Parse of FAIL_TEXT: in a failed block PostgreSQL answers
	                * 25P02 first, and that answer passes (Parse, a stale statement) */
};

/* An error pgcoro detects (ERR, a whole ErrorResponse of LEN bytes, malloc'd: the
 * queue's now), in the client's order. PostgreSQL would abort the transaction there, so
 * the server is made to fail at that point too (HOW), and its error is replaced with ERR
 * (not a 25P02: PostgreSQL's answer in a failed block). An explicit block is then failed
 * ('E') and a pipeline's implicit transaction rolled back at Sync, as by PostgreSQL; an
 * error earlier in the pipeline skips both. Client messages until Sync are dropped, as
 * PostgreSQL skips them. */
static bool answer_with(struct prep_server *ps, uint8_t *err, size_t len, enum fail_how how)
{
	bool parse = how == FAIL_UNLESS_ABORTED;
	if (!err || !q_push(ps, (struct rq){.kind = parse ? RQ_PARSE : RQ_EXECUTE,
					    .flags = RQ_FAIL, .errlen = (uint32_t)len, .err = err})) {
		free(err);
		return false;
	}
	if (parse)
		proto_build_parse(&ps->out, FAIL_STMT, (const uint8_t *)FAIL_TEXT, sizeof(FAIL_TEXT));
	else
		proto_build_execute(&ps->out, FAIL_PORTAL, 0);
	ps->r->skip = true;
	return true;
}

/* answer_with an ERROR of SQLSTATE, MESSAGE and HINT (static or NULL). */
static bool answer(struct prep_server *ps, const char *sqlstate, const char *message,
		   const char *hint, enum fail_how how)
{
	struct pbuf *b = &reg.scratch;
	proto_build_error(b, "ERROR", sqlstate, message, NULL, hint);
	size_t len = b->len;
	uint8_t *err = b->failed ? NULL : copy_of(b->data, len);
	pbuf_reset(b);
	return answer_with(ps, err, len, how);
}

/* A use of a retired statement ST: PostgreSQL's error that retired it (25P02 first in a
 * failed block, as PostgreSQL checks that before it revalidates). */
static bool answer_stale(struct prep_server *ps, const struct prep_stmt *st)
{
	if (!st->stale)
		return answer(ps, "0A000", "cached plan must not change result type", NULL,
			      FAIL_UNLESS_ABORTED);
	return answer_with(ps, copy_of(st->stale, st->stale_len), st->stale_len,
			   FAIL_UNLESS_ABORTED);
}

/* PostgreSQL's error for C's statement NAME, which C has (42P05, a Parse: "already
 * exists") or has not (26000, a Bind or Describe: "does not exist"); logged. */
static bool answer_name(struct prep_server *ps, client_t *c, const char *sqlstate,
			const char *name)
{
	bool exists = strcmp(sqlstate, "42P05") == 0;
	char buf[256];
	snprintf(buf, sizeof(buf), "prepared statement \"%s\" %s", name,
		 exists ? "already exists" : "does not exist");
	log_name_refusal(c, sqlstate, name);
	return answer(ps, sqlstate, buf, NULL, exists ? FAIL_UNLESS_ABORTED : FAIL_ALWAYS);
}

/* Makes room for one more statement on the server: the least recently used ones are
 * closed there (their CloseComplete swallowed). */
static bool evict(struct prep_server *ps)
{
	size_t max = (size_t)rt->cfg->max_prepared_statements;
	while ((size_t)ps->lru.count >= max && ps->lru.count > 0) {
		struct sentry *se = list_entry(list_first(&ps->lru), struct sentry, lru);
		if (!q_push(ps, (struct rq){.kind = RQ_CLOSE, .flags = RQ_SWALLOW, .evicted = se}))
			return false;
		proto_build_target(&ps->out, 'C', 'S', se->name);
		set_unlink(ps, se); /* the queue entry's now */
		se->epoch = ps->epoch;
	}
	return true;
}

/* Enters ST on the server as pending, with its Parse built into ps->out (after any
 * eviction). The caller pushes the Parse's queue entry. NULL without memory. */
static struct sentry *set_add(struct prep_server *ps, struct prep_stmt *st)
{
	struct sentry *se;
	if (!evict(ps) || !(se = set_put(ps, st)))
		return NULL;
	ps->stats->server_parse_count++;
	proto_build_parse(&ps->out, se->name, st->rest, st->rlen);
	return se;
}

/* The client's statement CE is about to be used on the server: prepared there first if
 * it is not (a Parse into ps->out). Its name on the server, or NULL without memory. */
static const char *use_statement(struct prep_server *ps, struct centry *ce)
{
	struct prep_stmt *st = ce->stmt;
	struct sentry *se = set_find(ps, st->id);
	if (se) {
		set_touch(ps, se);
		return se->name;
	}
	if (!(se = set_add(ps, st)) || !push(ps, RQ_PARSE, RQ_SWALLOW, NULL, st->id))
		return NULL;
	return se->name;
}

/* The queue entry of a Bind or Describe (KIND) of CE. When anything is outstanding
 * before it (CE's Parse, a Query that may be DISCARD ALL...), the statement may not
 * exist when it runs: PostgreSQL's "does not exist" must then name the client's
 * statement, so the entry keeps CE. */
static bool push_use(struct prep_server *ps, uint8_t kind, struct centry *ce)
{
	bool depends = ce->pending || ps->r->len;
	if (!q_push(ps, (struct rq){.kind = kind, .flags = depends ? RQ_DEPENDS : 0,
				    .ce = depends ? ce : NULL, .uses = ce->stmt->id}))
		return false;
	if (depends)
		ce->refs++;
	return true;
}

static bool on_parse(server_t *s, client_t *c, const uint8_t *body, uint32_t blen, bool *bad)
{
	struct prep_server *ps = s->prep;
	const char *name;
	const uint8_t *rest;
	uint32_t rlen;
	if (!proto_parse_parse(body, blen, &name, &rest, &rlen)) {
		*bad = true;
		return false;
	}
	if (map_find(c->prep, name))
		return answer_name(ps, c, "42P05", name);
	char msg[256];
	if (!within_limits(c, name, rlen, msg, sizeof(msg)))
		return answer(ps, "53400", msg, LIMIT_HINT, FAIL_UNLESS_ABORTED);
	struct prep_stmt *st = stmt_get(rest, rlen);
	if (!st)
		return false;
	struct centry *ce = map_add(c, name, st);
	stmt_unref(st); /* the name holds it now */
	if (!ce)
		return false;
	ps->stats->client_parse_count++; /* C's server's pool is C's */
	struct sentry *se = set_find(ps, st->id);
	if (!se)
		return set_add(ps, st) && push(ps, RQ_PARSE, 0, ce, st->id);
	set_touch(ps, se);
	if (s->tx_status != 'E' && s->out_syncs == 0)
		return push(ps, RQ_PARSE, RQ_ANSWER, ce, 0); /* not in a failed block */
	/* perhaps in a failed block (or in one by the time it runs), where PostgreSQL refuses
	 * a Parse with 25P02: the server parses the text under PROBE_STMT, its answer is the
	 * client's */
	proto_build_parse(&ps->out, PROBE_STMT, st->rest, st->rlen);
	proto_build_target(&ps->out, 'C', 'S', PROBE_STMT);
	return push(ps, RQ_PARSE, 0, ce, 0) && push(ps, RQ_CLOSE, RQ_SWALLOW, NULL, 0);
}

static bool on_bind(server_t *s, client_t *c, const uint8_t *body, uint32_t blen, bool *bad,
		    bool *pass)
{
	struct prep_server *ps = s->prep;
	const char *portal, *stmt;
	const uint8_t *rest;
	uint32_t rlen;
	if (!proto_parse_bind(body, blen, &portal, &stmt, &rest, &rlen)) {
		*bad = true;
		return false;
	}
	if (!stmt[0]) {
		*pass = true;
		return push(ps, RQ_BIND, 0, NULL, 0);
	}
	struct centry *ce = map_find(c->prep, stmt);
	if (!ce)
		return answer_name(ps, c, "26000", stmt);
	if (ce->stmt->retired)
		return answer_stale(ps, ce->stmt);
	const char *name = use_statement(ps, ce);
	if (!name)
		return false;
	ps->stats->bind_count++;
	proto_build_bind(&ps->out, portal, name, rest, rlen);
	return push_use(ps, RQ_BIND, ce);
}

/* Describe or Close (TYPE) of a named statement. */
static bool on_target(server_t *s, client_t *c, uint8_t type, const uint8_t *body, uint32_t blen,
		      bool *bad)
{
	struct prep_server *ps = s->prep;
	uint8_t kind;
	const char *stmt;
	if (!proto_parse_target(body, blen, &kind, &stmt)) {
		*bad = true;
		return false;
	}
	struct centry *ce = map_find(c->prep, stmt);
	if (type == 'C') {
		/* the client's name goes (back if the Close is skipped after an error); the
		 * server statement stays for others */
		if (!push(ps, RQ_CLOSE, RQ_ANSWER, ce, 0))
			return false;
		if (ce)
			map_remove(c->prep, ce);
		return true;
	}
	if (!ce)
		return answer_name(ps, c, "26000", stmt);
	if (ce->stmt->retired)
		return answer_stale(ps, ce->stmt);
	const char *name = use_statement(ps, ce);
	if (!name)
		return false;
	proto_build_target(&ps->out, 'D', 'S', name);
	return push_use(ps, RQ_DESCRIBE, ce);
}

/* Whether MSG, a client's Query or Parse of the unnamed statement (AVAIL bytes of it here,
 * LEN its length field), is `DEALLOCATE name` of a statement C named: PREP_TAKEN (*CE:
 * that name), PREP_WAIT (it may be: the rest is needed), PREP_PASS (it is not). */
static enum prep_act deallocating(client_t *c, const uint8_t *msg, size_t avail, uint32_t len,
				  struct centry **ce)
{
	bool parse = msg[0] == 'P';
	if (!c->prep || !c->prep->count || len - 4 > DEALLOC_MAX || len - 4 < (parse ? 4u : 1u))
		return PREP_PASS;
	if (avail < (size_t)len + 1)
		return PREP_WAIT;
	const char *text = (const char *)msg + PROTO_HDR + parse; /* after a Parse's "" name */
	size_t n = len - 4 - parse;
	size_t tlen = strnlen(text, n);
	/* the text ends a Query; in a Parse, no parameter types follow it */
	if (tlen + (parse ? 3 : 1) != n || (parse && (text[tlen + 1] || text[tlen + 2])))
		return PREP_PASS;
	char name[64];
	if (!proto_parse_deallocate(text, tlen, name, sizeof(name)))
		return PREP_PASS;
	*ce = map_find(c->prep, name);
	return *ce ? PREP_TAKEN : PREP_PASS;
}

/* Translates C's DEALLOCATE of its statement CE (a Query, or a Parse of the unnamed
 * statement: TYPE): the name goes now, its room given back, and comes back if the
 * DEALLOCATE does not run. The server runs a DEALLOCATE of a statement made for it, so
 * the answers, the errors (25P02 in a failed block) and the transaction are PostgreSQL's
 * own: a Query becomes "PREPARE x AS SELECT; DEALLOCATE x", x new each time (PREPARE's
 * CommandComplete swallowed); a Parse is preceded by a Close and a Parse of DEALLOC_STMT
 * (answers swallowed) and becomes "DEALLOCATE DEALLOC_STMT". (Over the extended protocol
 * the name's drop is final when that Parse is answered, not at its Execute: a client
 * that parses a DEALLOCATE and never executes it loses the name all the same.) */
static bool on_deallocate(server_t *s, client_t *c, struct centry *ce, uint8_t type)
{
	struct prep_server *ps = s->prep;
	if (type == 'Q') {
		char q[192];
		uint64_t k = ++reg.dealloc_seq;
		snprintf(q, sizeof(q),
			 "PREPARE \"%s_%" PRIu64 "\" AS SELECT; DEALLOCATE \"%s_%" PRIu64 "\"",
			 DEALLOC_STMT_Q, k, DEALLOC_STMT_Q, k);
		proto_build_query(&ps->out, q);
		if (!push(ps, RQ_SIMPLE, RQ_DEALLOC, ce, 0))
			return false;
	} else {
		/* texts, then no parameter types (int16 0) */
		static const char sel[] = "SELECT\0\0";
		static const char drop[] = "DEALLOCATE \"" DEALLOC_STMT "\"\0\0";
		proto_build_target(&ps->out, 'C', 'S', DEALLOC_STMT);
		proto_build_parse(&ps->out, DEALLOC_STMT, (const uint8_t *)sel, sizeof(sel));
		proto_build_parse(&ps->out, "", (const uint8_t *)drop, sizeof(drop));
		if (!push(ps, RQ_CLOSE, RQ_SWALLOW, NULL, 0) ||
		    !push(ps, RQ_PARSE, RQ_SWALLOW, NULL, 0) || !push(ps, RQ_PARSE, RQ_DEALLOC, ce, 0))
			return false;
		ps->own_dealloc = true; /* its Execute's "DEALLOCATE" is pgcoro's doing */
	}
	map_remove(c->prep, ce);
	return true;
}

/* True when the first bytes of a P/B/D/C message (AVAIL of them, of a LEN-long body)
 * already show it names no statement. */
static bool unnamed_at_a_glance(uint8_t type, const uint8_t *body, size_t avail)
{
	switch (type) {
	case 'P':
		return avail >= 1 && body[0] == 0;
	case 'B':
		return avail >= 2 && body[0] == 0 && body[1] == 0;
	default: /* 'D', 'C' */
		return avail >= 2 && (body[0] != 'S' || body[1] == 0);
	}
}

static uint8_t kind_of(uint8_t type)
{
	switch (type) {
	case 'P': return RQ_PARSE;
	case 'B': return RQ_BIND;
	case 'D': return RQ_DESCRIBE;
	default: return RQ_CLOSE;
	}
}

enum prep_act prep_client_msg(server_t *s, client_t *c, const uint8_t *msg, size_t avail,
			      uint32_t len)
{
	struct prep_server *ps = s->prep;
	uint8_t type = msg[0];
	bool whole = avail >= (size_t)len + 1;
	bool ok, bad = false, pass = false;
	struct centry *ce;
	enum prep_act act;
	if (ps->r->skip) {
		if (type == 'S') {
			ps->r->skip = false;
			goto simple;
		}
		if (whole)
			return PREP_DROP;
		if ((size_t)len + 1 <= WHOLE_MAX)
			return PREP_WAIT;
		client_disconnect(c, "54000", "message of %u bytes after an error: too large to skip",
				  len);
		return PREP_FAIL;
	}
	switch (type) {
	case 'Q':
		if ((act = deallocating(c, msg, avail, len, &ce)) == PREP_WAIT)
			return act;
		if (act == PREP_TAKEN) {
			ok = on_deallocate(s, c, ce, type);
			goto built;
		}
		/* fall through */
	case 'F':
	case 'S':
	simple:
		if (!push(ps, type == 'S' ? RQ_SYNC : RQ_SIMPLE, 0, NULL, 0))
			goto oom;
		return PREP_PASS;
	case 'E':
		if (!push(ps, RQ_EXECUTE, 0, NULL, 0))
			goto oom;
		return PREP_PASS;
	case 'P':
	case 'B':
	case 'D':
	case 'C':
		break;
	default:
		return PREP_PASS; /* Flush, COPY data: no answer of their own */
	}
	if (type == 'P' && avail > PROTO_HDR && msg[PROTO_HDR] == 0) {
		if ((act = deallocating(c, msg, avail, len, &ce)) == PREP_WAIT)
			return act;
		if (act == PREP_TAKEN) {
			ok = on_deallocate(s, c, ce, type);
			goto built;
		}
	}
	if (unnamed_at_a_glance(type, msg + PROTO_HDR, avail - PROTO_HDR)) {
		if (!push(ps, kind_of(type), 0, NULL, 0))
			goto oom;
		return PREP_PASS;
	}
	if (!whole) {
		if ((size_t)len + 1 <= WHOLE_MAX)
			return PREP_WAIT;
		client_disconnect(c, "54000",
				  "a named prepared statement message of %u bytes is too large for "
				  "pgcoro (at most %u)",
				  len, (unsigned)WHOLE_MAX - 1);
		return PREP_FAIL;
	}
	const uint8_t *body = msg + PROTO_HDR;
	uint32_t blen = len - 4;
	switch (type) {
	case 'P':
		ok = on_parse(s, c, body, blen, &bad);
		break;
	case 'B':
		ok = on_bind(s, c, body, blen, &bad, &pass);
		break;
	default:
		ok = on_target(s, c, type, body, blen, &bad);
		break;
	}
	if (bad) {
		client_disconnect(c, "08P01", "invalid %s message", type == 'P'   ? "Parse"
								   : type == 'B' ? "Bind"
								   : type == 'D' ? "Describe"
										 : "Close");
		return PREP_FAIL;
	}
built:
	if (!ok || ps->out.failed)
		goto oom;
	if (pass)
		return PREP_PASS;
	ps->r->output = ps->out.len > 0;
	settle(ps);
	if (!s->msg_pending)
		prep_flush_answers(s);
	return PREP_TAKEN;
oom:
	pbuf_reset(&ps->out);
	client_disconnect(c, "53200", "out of memory tracking prepared statements");
	return PREP_FAIL;
}

/* ---- server messages ----------------------------------------------------------------- */

/* A CommandComplete whose tag says every prepared statement of the session is gone. */
static bool drops_all(const uint8_t *msg, uint32_t len)
{
	return (len == 4 + 12 && memcmp(msg + PROTO_HDR, "DISCARD ALL", 12) == 0) ||
	       (len == 4 + 15 && memcmp(msg + PROTO_HDR, "DEALLOCATE ALL", 15) == 0);
}

/* A whole CommandComplete (MSG, LEN its length field) of S that pgcoro did not cause
 * (the caller knows): the statements of the session changed behind pgcoro's back. DISCARD
 * ALL and DEALLOCATE ALL dropped them all (and the names of the client that ran it). A
 * PREPARE or a DEALLOCATE of unknown name (SQL of a client, perhaps another client's
 * statement taken or replaced under one of pgcoro's names) leaves the set unknown: it is
 * forgotten, and each statement is prepared again under a new name at its next use;
 * the old ones may remain there and count as orphans. */
static void tag_seen(server_t *s, const uint8_t *msg, uint32_t len)
{
	struct prep_server *ps = s->prep;
	if (drops_all(msg, len)) {
		(void)set_forget(ps, false);
		ps->orphans = 0;
		if (s->client)
			map_clear(s->client->prep, false);
		return;
	}
	const char *tag = (const char *)msg + PROTO_HDR;
	bool dealloc = len == 4 + 11 && memcmp(tag, "DEALLOCATE", 11) == 0;
	if (!dealloc && !(len == 4 + 8 && memcmp(tag, "PREPARE", 8) == 0))
		return;
	if (dealloc && ps->own_dealloc) {
		ps->own_dealloc = false; /* a translated DEALLOCATE (no other can run before the
		                          * next one: it drops what pgcoro made for it) */
		return;
	}
	uint32_t n = set_forget(ps, false);
	ps->orphans += n;
	if (n)
		log_debug("server %llu: %s by SQL: its %u prepared statements are prepared again "
			  "under new names (%u may remain)",
			  (unsigned long long)s->id, tag, n, ps->orphans);
}

void prep_server_tag(server_t *s, const uint8_t *msg, uint32_t len)
{
	if (s->prep)
		tag_seen(s, msg, len);
}

bool prep_server_worn(const server_t *s)
{
	return s->prep && s->prep->orphans > (uint32_t)rt->cfg->max_prepared_statements;
}

/* An error (MSG, LEN its length field, CODE its SQLSTATE) answering RQ, a Bind or Describe
 * of a named statement on this server. A statement PostgreSQL says is stale (its result
 * type changed: 0A000 from RevalidateCachedQuery; a type or other object it named is
 * gone: XX000 "cache lookup failed for ...", a message never translated) is retired; one
 * it says does not exist (26000: deallocated behind pgcoro's back) is forgotten on this
 * server, so its next use prepares it there again. */
static void statement_error(struct prep_server *ps, struct rq *rq, const uint8_t *msg,
			    uint32_t len, const char *code)
{
	struct sentry *se = set_find(ps, rq->uses);
	if (strcmp(code, "26000") == 0) {
		if (se && !se->pending)
			set_remove(ps, se);
		return;
	}
	const char *m = proto_error_field(msg + PROTO_HDR, len - 4, 'M');
	bool stale = strcmp(code, "0A000") == 0 ||
		     (strcmp(code, "XX000") == 0 && m && strncmp(m, "cache lookup failed for ", 24) == 0);
	struct prep_stmt *st = se ? se->stmt : rq->flags & RQ_DEPENDS ? rq->ce->stmt : NULL;
	if (stale && st && st->id == rq->uses)
		stmt_retire(st, msg, (size_t)len + 1);
}

/* A CommandComplete (MSG) of RQ, the Query a client's DEALLOCATE became ("PREPARE x AS
 * SELECT; DEALLOCATE x"): PREPARE's is swallowed; DEALLOCATE's makes the name's drop
 * final. */
static enum prep_act deallocate_done(struct rq *rq, const uint8_t *msg, size_t avail,
				     uint32_t len)
{
	if ((size_t)len + 1 > WHOLE_MAX)
		return PREP_PASS;
	if (avail < (size_t)len + 1)
		return PREP_WAIT;
	const char *tag = (const char *)msg + PROTO_HDR;
	if (len == 4 + 8 && memcmp(tag, "PREPARE", 8) == 0)
		return PREP_DROP;
	if (len == 4 + 11 && memcmp(tag, "DEALLOCATE", 11) == 0 && rq->ce) {
		centry_unref(rq->ce);
		rq->ce = NULL;
	}
	return PREP_PASS;
}

/* The head is a barrier: answers to what was sent before tracking began pass (the
 * ReadyForQuery and CloseComplete messages still due are counted), up to the marker's
 * CloseComplete, swallowed. An error of the extended-protocol sequence open then makes
 * PostgreSQL skip to the Sync, the marker with it: the barrier goes as what follows
 * it does. PREP_WAIT: not a barrier's business (a ReadyForQuery after a skipped
 * marker), handled as usual. */
static enum prep_act barrier_msg(server_t *s, struct rq *rq, uint8_t type)
{
	struct prep_server *ps = s->prep;
	switch (type) {
	case '3':
		if (rq->sid) {
			rq->sid--;
			return PREP_PASS;
		}
		q_pop(ps, true);
		settle(ps);
		return PREP_DROP;
	case 'Z':
		if (!rq->zs)
			return PREP_WAIT;
		rq->zs--;
		return PREP_PASS;
	case 'E':
		if (rq->zs)
			return PREP_PASS; /* a request ending at a ReadyForQuery still due */
		while ((rq = q_head(ps)) && rq->kind != RQ_SYNC)
			q_pop(ps, false);
		if (!rq)
			ps->r->skip = true;
		settle(ps);
		return PREP_PASS;
	default:
		return PREP_PASS;
	}
}

bool prep_track_now(server_t *s)
{
	prep_server_start(s);
	if (!s->prep_on)
		return false;
	struct prep_server *ps = s->prep;
	if (s->out_syncs == 0 && !s->mid_ext)
		return true; /* nothing outstanding: tracked from an empty queue */
	char marker[NAME_MAX_LEN];
	snprintf(marker, sizeof(marker), "PGCORO_MARKER");
	if (!q_push(ps, (struct rq){.kind = RQ_CLOSE, .flags = RQ_SWALLOW | RQ_BARRIER,
				    .sid = s->closes_pending, .zs = (uint32_t)s->out_syncs})) {
		prep_server_free(s);
		log_warning("server %llu: out of memory: prepared statements not tracked",
			    (unsigned long long)s->id);
		return false;
	}
	proto_build_target(&ps->out, 'C', 'P', marker);
	if (ps->out.failed) {
		prep_server_free(s);
		return false;
	}
	stream_send(&s->st, ps->out.data, ps->out.len);
	pbuf_reset(&ps->out);
	s->mid_ext = true; /* the marker opens a sequence if none was */
	return true;
}

enum prep_act prep_server_msg(server_t *s, const uint8_t *msg, size_t avail, uint32_t len)
{
	struct prep_server *ps = s->prep;
	struct rq *rq = q_head(ps);
	uint8_t type = msg[0];
	if (type == 'C' && prep_tag_len(len) &&
	    !(rq && rq->kind == RQ_SIMPLE && rq->flags & RQ_DEALLOC)) {
		if (avail < (size_t)len + 1)
			return PREP_WAIT;
		tag_seen(s, msg, len);
	}
	if (!rq)
		return PREP_PASS; /* nothing asked: a notice, a notification */
	if ((type == '1' || type == '3') && avail < (size_t)len + 1)
		return PREP_WAIT; /* perhaps to be swallowed: whole (4-byte bodies, the relay's
		                   * framing checks) */
	if (rq->flags & RQ_BARRIER) {
		enum prep_act act = barrier_msg(s, rq, type);
		if (act != PREP_WAIT)
			return act;
	}
	bool done = false;
	switch (type) {
	case 'E': {
		if (rq->kind == RQ_SIMPLE || rq->kind == RQ_SYNC)
			return PREP_PASS; /* ends at its ReadyForQuery */
		bool replace = false;
		bool look = (rq->flags & (RQ_DEPENDS | RQ_FAIL) || rq->uses) &&
			    (size_t)len + 1 <= WHOLE_MAX;
		if (look && avail < (size_t)len + 1)
			return PREP_WAIT; /* looked at whole; a larger one passes as it is */
		const char *code = look ? proto_error_field(msg + PROTO_HDR, len - 4, 'C') : NULL;
		if (look && rq->flags & RQ_FAIL && !(code && strcmp(code, "25P02") == 0)) {
			/* the server failed where pgcoro refused a message: pgcoro's error (a
			 * failed block's 25P02 is PostgreSQL's answer there) */
			proto_put_bytes(&ps->answers, rq->err, rq->errlen);
			replace = true;
		} else if (code && rq->uses) {
			statement_error(ps, rq, msg, len, code);
		}
		if (code && rq->flags & RQ_DEPENDS &&
		    (rq->ce->failed || strcmp(code, "26000") == 0)) {
			/* the statement's Parse failed earlier in the pipeline, or a DISCARD ALL
			 * ran before it: PostgreSQL would name the client's statement, not ours */
			char m[256];
			snprintf(m, sizeof(m), "prepared statement \"%s\" does not exist", rq->ce->name);
			proto_build_error(&ps->answers, "ERROR", "26000", m, NULL, NULL);
			replace = true;
		}
		if (replace)
			ps->r->answers = true;
		while ((rq = q_head(ps)) && rq->kind != RQ_SYNC)
			q_pop(ps, false); /* PostgreSQL skips to the Sync */
		if (!rq)
			ps->r->skip = true;
		settle(ps);
		return replace ? PREP_DROP : PREP_PASS;
	}
	case 'Z':
		while ((rq = q_head(ps)) && rq->kind != RQ_SIMPLE && rq->kind != RQ_SYNC)
			q_pop(ps, false); /* not expected: nothing before a ReadyForQuery survives */
		if (rq)
			q_pop(ps, true);
		settle(ps);
		return PREP_PASS;
	case '1':
		done = rq->kind == RQ_PARSE;
		break;
	case '2':
		done = rq->kind == RQ_BIND;
		break;
	case '3':
		done = rq->kind == RQ_CLOSE;
		break;
	case 'T':
	case 'n':
		done = rq->kind == RQ_DESCRIBE;
		break;
	case 'C':
		if (rq->kind == RQ_SIMPLE && rq->flags & RQ_DEALLOC)
			return deallocate_done(rq, msg, avail, len);
		/* fall through */
	case 'I':
	case 's':
		done = rq->kind == RQ_EXECUTE;
		break;
	default:
		return PREP_PASS;
	}
	if (!done)
		return PREP_PASS;
	bool swallow = rq->flags & RQ_SWALLOW;
	if (swallow && avail < (size_t)len + 1)
		return PREP_WAIT; /* swallowed whole, or not at all */
	q_pop(ps, true);
	settle(ps);
	return swallow ? PREP_DROP : PREP_PASS;
}

/* ---- a client without a server ------------------------------------------------------- */

bool prep_answer_idle(client_t *c, const struct proto_msg *m)
{
	if (c->pool->pool_mode == POOL_SESSION || rt->cfg->max_prepared_statements <= 0 ||
	    m->type != 'P' || m->blen < 1 || m->body[0] == 0)
		return false;
	size_t n;
	const uint8_t *p = stream_input(&c->st, &n);
	struct proto_msg sync;
	if (m->data != p || proto_next(p + m->size, n - m->size, 4, &sync) != PROTO_OK ||
	    sync.type != 'S')
		return false; /* not a named Parse and a Sync, both here */
	const char *name;
	const uint8_t *rest;
	uint32_t rlen;
	if (!proto_parse_parse(m->body, m->blen, &name, &rest, &rlen))
		return false; /* a server will say what is wrong */
	struct pbuf *b = &reg.scratch;
	char text[256];
	if (map_find(c->prep, name)) {
		snprintf(text, sizeof(text), "prepared statement \"%s\" already exists", name);
		proto_build_error(b, "ERROR", "42P05", text, NULL, NULL);
		log_name_refusal(c, "42P05", name);
	} else if (!within_limits(c, name, rlen, text, sizeof(text))) {
		proto_build_error(b, "ERROR", "53400", text, NULL, LIMIT_HINT);
	} else {
		struct prep_stmt *st = stmt_find(rest, rlen, fnv(rest, rlen, FNV_INIT));
		if (!st || !st->parsed)
			return false; /* a server must parse it first */
		struct centry *ce = map_add(c, name, st);
		if (!ce)
			return false;
		ce->pending = false;
		struct pool_traffic *t = pool_traffic(c->pool);
		if (t)
			t->stats.client_parse_count++;
		proto_build_empty(b, '1');
	}
	proto_build_ready(b, 'I');
	client_take(c, m);
	client_take(c, &sync);
	if (!b->failed)
		stream_send(&c->st, b->data, b->len);
	pbuf_reset(b);
	return true;
}

unsigned prep_forget_syncs(server_t *s, unsigned k)
{
	struct prep_ring *r = &s->pring;
	unsigned n = 0;
	while (n < k && r->len > 0 && r->kind[(r->head + r->len - 1) & r->mask] == PK_SYNC) {
		r->len--;
		n++;
	}
	return n;
}

size_t prep_client_count(const client_t *c) { return c->prep ? c->prep->count : 0; }
size_t prep_server_count(const server_t *s) { return s->prep ? (size_t)s->prep->lru.count : 0; }

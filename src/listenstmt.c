/* Owns the LISTEN and UNLISTEN statements clients run on pooled servers (transaction and
 * statement mode), from the client message that runs one to its commit.
 *
 * DESIGN. Such a statement gets PostgreSQL's own answers, byte for byte; what pgcoro
 * must learn is which channel it names and whether it committed. The relay shows this
 * file the client messages that may run one (listenstmt.h): a Query or Parse whose text
 * is one LISTEN/UNLISTEN statement (proto_parse_listen; waited for whole) or DISCARD ALL
 * (its UNLISTEN *), and the Bind,
 * Execute and Close of a statement or portal noted as one. Each Execute (or Query) of
 * one is queued with the number of the ReadyForQuery that will end its request. While
 * any is queued or confirmed, the server's answers are shown too: a CommandComplete
 * "LISTEN"/"UNLISTEN" confirms the oldest queued for the request being answered, an
 * ErrorResponse drops those its request skipped. Confirmed ones wait for the
 * transaction: COMMIT, or the end of an implicit transaction without error or ROLLBACK
 * (its ReadyForQuery 'I', or a notification of the server, which comes only once it is
 * out of it), applies them in order through notify.c, and the ReadyForQuery is held
 * until the listener listens; ROLLBACK forgets them, ROLLBACK TO SAVEPOINT those after
 * the last SAVEPOINT (a rollback to an outer savepoint past the last one is not told
 * apart), and DISCARD ALL unlistens everything. A pooled server's notifications are
 * dropped (the listener delivers them), except those its client's committing
 * transaction sent on a channel the listener did not listen to then (it never gets
 * those); one that ran a LISTEN, or sent a notification, is UNLISTENed before it is
 * idle again (server.c). A LISTEN read nowhere (several statements in one Query, a
 * comment, a function's EXECUTE) is not served: logged when a notification shows it. */
#include "listenstmt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "array.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "proto.h"
#include "server.h"

#define CHANNEL_CAP 64 /* NAMEDATALEN */
/* What one client may have noted at once: named statements and portals that are one,
 * those sent and those confirmed in its transaction (PostgreSQL has no such bound, but
 * pgcoro holds every client's in one process). Beyond: closed with 53400. */
#define NOTED_MAX 4096
#define UNREAD_FORMS "one LISTEN statement per Query or Parse, no comment, not in a function"

/* One LISTEN/UNLISTEN statement, or a DISCARD ALL (its UNLISTEN *); in a transaction's
 * list, ACT_MARK is a SAVEPOINT. */
enum { ACT_NONE = LISTEN_OTHER, ACT_DISCARD = 0x7e, ACT_MARK = 0x7f };
struct listen_act {
	uint8_t kind; /* enum proto_listen (LISTEN_OTHER: none), ACT_DISCARD or ACT_MARK */
	char chan[CHANNEL_CAP];
};

/* A named statement or portal whose text is one. */
struct named_act {
	char *name;
	bool portal;
	struct listen_act act;
};

/* One sent to a server, awaiting its CommandComplete: REQ is the number its request's
 * ReadyForQuery will have (listenstmt_client.zdone counts those passed). */
struct sent_act {
	struct listen_act act;
	uint64_t req;
};

/* A client's statements and portals that run one, those sent and confirmed. */
struct listenstmt_client {
	struct listen_act unnamed_stmt, unnamed_portal;
	struct named_act *named;
	int nnamed, named_cap;
	struct sent_act *sent;   /* in the order sent */
	int nsent, sent_cap;
	struct listen_act *xact; /* confirmed in the open transaction, in order */
	int nxact, xact_cap;
	struct listen_act *fresh; /* LISTENs of the commit being answered that the listener
	                           * did not listen to then: the server's own notifications
	                           * on them pass */
	int nfresh, fresh_cap;
	uint64_t zdone;          /* ReadyForQuery passed on while tracked */
	bool req_error;          /* the request being answered had an error */
	bool req_rollback;       /* ... or a ROLLBACK that may have ended the transaction */
};

const uint8_t listenstmt_first_byte[256] = {
	[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1,
	['l'] = 1, ['L'] = 1, ['u'] = 1, ['U'] = 1, ['d'] = 1, ['D'] = 1,
};

/* The client's state, made the first time it is needed (NULL: no memory). */
static struct listenstmt_client *lc_of(client_t *c)
{
	if (!c->listenstmt)
		c->listenstmt = calloc(1, sizeof(*c->listenstmt));
	return c->listenstmt;
}

void listenstmt_client_free(client_t *c)
{
	struct listenstmt_client *lc = c->listenstmt;
	if (!lc)
		return;
	for (int i = 0; i < lc->nnamed; i++)
		free(lc->named[i].name);
	free(lc->named);
	free(lc->sent);
	free(lc->xact);
	free(lc->fresh);
	free(lc);
	c->listenstmt = NULL;
}

/* ---- the client's statements ---------------------------------------------------------- */

/* The end of the NUL-terminated string at P within END, or NULL. */
static const uint8_t *str_end(const uint8_t *p, const uint8_t *end)
{
	return p < end ? memchr(p, 0, (size_t)(end - p)) : NULL;
}

/* Whether the statement text at TEXT (AVAIL bytes here, the rest of a message not all
 * here when PARTIAL) may be one LISTEN/UNLISTEN/DISCARD: false when its first word says
 * not. */
static bool maybe_listen(const uint8_t *text, size_t avail, bool partial)
{
	size_t i = 0;
	while (i < avail && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
		i++;
	if (i == avail)
		return partial;
	static const char *const words[] = {"listen", "unlisten", "discard"};
	for (int w = 0; w < 3; w++) {
		size_t k = 0;
		for (; words[w][k] && i + k < avail; k++)
			if ((text[i + k] | 0x20) != words[w][k])
				break;
		if (!words[w][k] || i + k == avail)
			return true; /* the keyword, or a prefix of it so far */
	}
	return false;
}

/* A named statement (PORTAL false) or portal NAME of C noted as one, or NULL. */
static struct named_act *named_find(struct listenstmt_client *lc, const char *name, bool portal)
{
	for (int i = 0; i < lc->nnamed; i++)
		if (lc->named[i].portal == portal && strcmp(lc->named[i].name, name) == 0)
			return &lc->named[i];
	return NULL;
}

/* What the statement (PORTAL false) or portal NAME of C runs, or NULL when not one. */
static const struct listen_act *act_of(struct listenstmt_client *lc, const char *name, bool portal)
{
	if (!name[0]) {
		const struct listen_act *a = portal ? &lc->unnamed_portal : &lc->unnamed_stmt;
		return a->kind != ACT_NONE ? a : NULL;
	}
	struct named_act *na = named_find(lc, name, portal);
	return na ? &na->act : NULL;
}

enum listenstmt_look listenstmt_look_slow(const client_t *c, const uint8_t *msg, size_t avail,
				  uint32_t len)
{
	if (c->pool->pool_mode == POOL_SESSION || c->replication)
		return LISTENSTMT_NO; /* its server is its own: LISTEN runs there */
	size_t size = (size_t)len + 1;
	bool partial = avail < size;
	const uint8_t *end = msg + (partial ? avail : size), *body = msg + PROTO_HDR;
	/* waiting for all of it: only when it is small */
	enum listenstmt_look more = partial && size <= LISTENSTMT_TEXT_MAX ? LISTENSTMT_WAIT : LISTENSTMT_NO;
	struct listenstmt_client *lc = c->listenstmt;
	const uint8_t *z;
	switch (msg[0]) {
	case 'Q':
		if (!maybe_listen(body, (size_t)(end - body), partial))
			return LISTENSTMT_NO;
		return partial ? more : LISTENSTMT_SEE;
	case 'P':
		if (!(z = str_end(body, end)))
			return more;
		if (maybe_listen(z + 1, (size_t)(end - z - 1), partial))
			return partial ? more : LISTENSTMT_SEE;
		if (z == body && lc && lc->unnamed_stmt.kind != ACT_NONE)
			return LISTENSTMT_SEE; /* it replaces the unnamed statement noted */
		return LISTENSTMT_NO;
	case 'B': /* portal, statement */
		if (!(z = str_end(body, end)) || !str_end(z + 1, end))
			return more;
		return act_of(lc, (const char *)z + 1, false) || act_of(lc, (const char *)body, true)
			       ? LISTENSTMT_SEE
			       : LISTENSTMT_NO;
	case 'E':
		if (!str_end(body, end))
			return more;
		return act_of(lc, (const char *)body, true) ? LISTENSTMT_SEE : LISTENSTMT_NO;
	default: /* Close */
		if (end - body < 2 || !str_end(body + 1, end))
			return more;
		return act_of(lc, (const char *)body + 1, body[0] == 'P') ? LISTENSTMT_SEE : LISTENSTMT_NO;
	}
}

/* The outcome of noting something for a client. */
enum noted { NOTED, NOTED_NO_MEMORY, NOTED_TOO_MANY };

static bool room(const struct listenstmt_client *lc)
{
	return lc->nnamed + lc->nsent + lc->nxact < NOTED_MAX;
}

/* Notes that statement (PORTAL false) or portal NAME of C runs ACT (kind ACT_NONE:
 * nothing of ours). */
static enum noted note(struct listenstmt_client *lc, const char *name, bool portal,
		       const struct listen_act *act)
{
	if (!name[0]) {
		*(portal ? &lc->unnamed_portal : &lc->unnamed_stmt) = *act;
		return NOTED;
	}
	struct named_act *na = named_find(lc, name, portal);
	if (act->kind == ACT_NONE) {
		if (na) {
			free(na->name);
			*na = lc->named[--lc->nnamed];
		}
		return NOTED;
	}
	if (!na) {
		if (!room(lc))
			return NOTED_TOO_MANY;
		char *dup = strdup(name);
		if (!dup || !array_grow((void **)&lc->named, &lc->named_cap, lc->nnamed + 1,
					sizeof(*lc->named))) {
			free(dup);
			return NOTED_NO_MEMORY;
		}
		na = &lc->named[lc->nnamed++];
		na->name = dup;
		na->portal = portal;
	}
	na->act = *act;
	return NOTED;
}

/* ACT runs on S in the request that ends with S's next out_syncs + 1st ReadyForQuery. */
static enum noted sent_push(struct listenstmt_client *lc, server_t *s,
			    const struct listen_act *act)
{
	if (!room(lc))
		return NOTED_TOO_MANY;
	if (!array_grow((void **)&lc->sent, &lc->sent_cap, lc->nsent + 1, sizeof(*lc->sent)))
		return NOTED_NO_MEMORY;
	lc->sent[lc->nsent++] = (struct sent_act){*act, lc->zdone + (uint64_t)s->out_syncs + 1};
	s->listen_track = true;
	return NOTED;
}

/* True when the SQL at TEXT (LEN bytes) is DISCARD ALL, as proto_parse_listen reads a
 * LISTEN: any case, white space around, an optional ';'. */
static bool discard_all(const uint8_t *text, size_t len)
{
	static const char *const words[] = {"discard", "all", ";"};
	size_t i = 0;
	for (int w = 0; w < 3; w++) {
		size_t start = i;
		while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
			i++;
		if (w == 1 && i == start)
			return false; /* "DISCARDALL" */
		size_t n = strlen(words[w]);
		if (len - i < n || strncasecmp((const char *)text + i, words[w], n) != 0)
			return w == 2 && i == len;
		i += n;
		if (w == 1 && i < len && (text[i] | 0x20) >= 'a' && (text[i] | 0x20) <= 'z')
			return false; /* "ALLx" */
	}
	while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
		i++;
	return i == len;
}

/* The statement text at TEXT (LEN bytes, no NUL) as an action. */
static void act_parse(struct listen_act *act, const uint8_t *text, size_t len)
{
	act->kind = (uint8_t)proto_parse_listen((const char *)text, len, act->chan, sizeof(act->chan));
	if (act->kind == ACT_NONE && discard_all(text, len))
		act->kind = ACT_DISCARD;
}

bool listenstmt_client_sent(client_t *c, server_t *s, const uint8_t *msg, size_t avail,
			    uint32_t len)
{
	size_t size = (size_t)len + 1;
	const uint8_t *body = msg + PROTO_HDR, *end = msg + (avail < size ? avail : size), *z;
	bool whole = avail >= size;
	struct listen_act act = {ACT_NONE, ""};
	const struct listen_act *a;
	struct listenstmt_client *lc = c->listenstmt;
	enum noted r = NOTED;
	switch (msg[0]) {
	case 'Q':
		if (whole && len > 4 && msg[len] == 0)
			act_parse(&act, body, len - 5);
		if (act.kind == ACT_NONE && !lc)
			return true;
		if (!(lc = lc_of(c))) {
			r = NOTED_NO_MEMORY;
			break;
		}
		lc->unnamed_stmt.kind = ACT_NONE; /* a Query drops the unnamed statement */
		if (act.kind != ACT_NONE && s)
			r = sent_push(lc, s, &act);
		break;
	case 'P':
		if (!(z = str_end(body, end)))
			return true;
		const uint8_t *tz = whole ? str_end(z + 1, end) : NULL;
		if (tz)
			act_parse(&act, z + 1, (size_t)(tz - z - 1));
		if (act.kind == ACT_NONE && !lc)
			return true;
		r = (lc = lc_of(c)) ? note(lc, (const char *)body, false, &act) : NOTED_NO_MEMORY;
		break;
	case 'B':
		if (!lc || !(z = str_end(body, end)) || !str_end(z + 1, end))
			return true;
		if ((a = act_of(lc, (const char *)z + 1, false)))
			act = *a;
		r = note(lc, (const char *)body, true, &act);
		break;
	case 'E':
		if (lc && s && str_end(body, end) && (a = act_of(lc, (const char *)body, true)))
			r = sent_push(lc, s, a);
		break;
	case 'C':
		if (lc && end - body >= 2 && str_end(body + 1, end))
			r = note(lc, (const char *)body + 1, body[0] == 'P', &act); /* forgets it */
		break;
	default:
		break;
	}
	if (r == NOTED_NO_MEMORY)
		client_disconnect(c, "53200", "out of memory noting a LISTEN/UNLISTEN");
	else if (r == NOTED_TOO_MANY)
		client_disconnect(c, "53400",
				  "more than %d LISTEN/UNLISTEN statements, portals and executions "
				  "pending at once",
				  NOTED_MAX);
	return r == NOTED;
}

/* ---- the server's answers ------------------------------------------------------------ */

/* The client's LISTEN/UNLISTEN confirmed in its transaction take effect (it committed):
 * in order, through the listener connection; the ReadyForQuery waits for it when a
 * channel is not listened to yet. False: C was closed (no memory). */
static bool xact_commit(client_t *c)
{
	struct listenstmt_client *lc = c->listenstmt;
	for (int i = 0; i < lc->nxact; i++) {
		const struct listen_act *a = &lc->xact[i];
		bool dark;
		if (a->kind == LISTEN_ONE && !notify_subscribe(c, a->chan, &dark)) {
			client_disconnect(c, "53200", "out of memory serving LISTEN");
			return false;
		}
		/* what the transaction itself notified on it reaches only its server */
		if (a->kind == LISTEN_ONE && dark &&
		    array_grow((void **)&lc->fresh, &lc->fresh_cap, lc->nfresh + 1, sizeof(*lc->fresh)))
			lc->fresh[lc->nfresh++] = *a;
		if (a->kind == UNLISTEN_ONE || a->kind == UNLISTEN_ALL || a->kind == ACT_DISCARD)
			notify_unsubscribe(c, a->kind == UNLISTEN_ONE ? a->chan : NULL);
	}
	lc->nxact = 0;
	notify_hold(c); /* its ReadyForQuery waits for the listener, if a channel is new */
	return true;
}

/* Forgets the sent ones whose request's ReadyForQuery is number REQ or earlier. */
static void sent_drop_to(struct listenstmt_client *lc, uint64_t req)
{
	int k = 0;
	while (k < lc->nsent && lc->sent[k].req <= req)
		k++;
	if (k) {
		lc->nsent -= k;
		memmove(lc->sent, lc->sent + k, (size_t)lc->nsent * sizeof(*lc->sent));
	}
}

static bool tag_is(const uint8_t *msg, uint32_t len, const char *tag)
{
	return len - 4 == strlen(tag) + 1 && memcmp(msg + PROTO_HDR, tag, len - 4) == 0;
}

/* S's whole NotificationResponse MSG, while S may listen: the listener connection
 * delivers it, unless S's own transaction that just committed sent it on a channel its
 * client subscribed to by that commit (the listener listened only after it). A
 * notification comes only once S is out of its transaction: an implicit one that had a
 * LISTEN committed. */
static enum listenstmt_act server_notification(server_t *s, const uint8_t *msg)
{
	client_t *c = s->client;
	struct listenstmt_client *lc = c ? c->listenstmt : NULL;
	if (!s->listen_track || !lc)
		return LISTENSTMT_DROP;
	if (lc->nxact && !lc->req_error && !lc->req_rollback && !xact_commit(c))
		return LISTENSTMT_HOLD; /* closed */
	uint32_t pid = (uint32_t)msg[5] << 24 | (uint32_t)msg[6] << 16 | (uint32_t)msg[7] << 8 | msg[8];
	if (pid != s->backend_pid)
		return LISTENSTMT_DROP;
	for (int i = 0; i < lc->nfresh; i++)
		if (strcmp(lc->fresh[i].chan, (const char *)msg + PROTO_HDR + 4) == 0)
			return LISTENSTMT_PASS;
	return LISTENSTMT_DROP;
}

enum listenstmt_act listenstmt_server_msg(server_t *s, const uint8_t *msg, uint32_t len)
{
	client_t *c = s->client;
	if (msg[0] == 'A') {
		if (!s->listen_seen) { /* a LISTEN ran there that nothing here read */
			s->listen_seen = true;
			log_warning("server %llu: a notification: it ran a LISTEN pgcoro does not read "
				    "(%s); dropped (as all its notifications, until UNLISTEN * when "
				    "released)", (unsigned long long)s->id, UNREAD_FORMS);
		}
		return server_notification(s, msg);
	}
	if (!s->listen_track || !c || !c->listenstmt)
		return LISTENSTMT_PASS;
	struct listenstmt_client *lc = c->listenstmt;
	if (msg[0] == 'E') { /* the rest of its request is skipped; its transaction fails */
		lc->req_error = true;
		sent_drop_to(lc, lc->zdone + 1);
		return LISTENSTMT_PASS;
	}
	if (msg[0] != 'Z')
		return LISTENSTMT_PASS;
	if (msg[PROTO_HDR] == 'I' && lc->nxact) { /* an implicit transaction ended */
		if (lc->req_error || lc->req_rollback)
			lc->nxact = 0;
		else if (!xact_commit(c))
			return LISTENSTMT_HOLD; /* closed */
	}
	return notify_holding(c) ? LISTENSTMT_HOLD : LISTENSTMT_PASS;
}

/* C's server ran a LISTEN read nowhere (not served): logged. */
static void unread_listen(client_t *c)
{
	log_warning("client %llu %s: a LISTEN pgcoro does not read (%s) ran on a pooled server: "
		    "its notifications are not delivered; use session mode for it",
		    (unsigned long long)c->id, client_peer(c), UNREAD_FORMS);
}

void listenstmt_server_passed(server_t *s, const uint8_t *msg, uint32_t len)
{
	client_t *c = s->client;
	struct listenstmt_client *lc = c ? c->listenstmt : NULL;
	if (!s->listen_track || !lc)
		return;
	if (msg[0] == 'Z') {
		sent_drop_to(lc, lc->zdone + 1);
		lc->zdone++;
		lc->req_error = lc->req_rollback = false;
		lc->nfresh = 0;
		if (!lc->nsent && !lc->nxact && !notify_holding(c))
			s->listen_track = false;
		return;
	}
	bool listen = tag_is(msg, len, "LISTEN"), discard = false;
	if (listen)
		s->listen_seen = true; /* it may listen now: cleaned before anyone else gets it */
	if (listen || tag_is(msg, len, "UNLISTEN") || (discard = tag_is(msg, len, "DISCARD ALL"))) {
		sent_drop_to(lc, lc->zdone);
		uint8_t kind = lc->nsent ? lc->sent[0].act.kind : ACT_NONE;
		bool match = lc->nsent && lc->sent[0].req == lc->zdone + 1 &&
			     (listen ? kind == LISTEN_ONE
				     : discard ? kind == ACT_DISCARD
					       : kind == UNLISTEN_ONE || kind == UNLISTEN_ALL);
		if (!match) {
			if (listen)
				unread_listen(c);
			return;
		}
		if (!array_grow((void **)&lc->xact, &lc->xact_cap, lc->nxact + 1, sizeof(*lc->xact))) {
			log_warning("client %llu: out of memory noting a LISTEN/UNLISTEN: it is not "
				    "served", (unsigned long long)c->id);
		} else {
			lc->xact[lc->nxact++] = lc->sent[0].act;
		}
		lc->nsent--;
		memmove(lc->sent, lc->sent + 1, (size_t)lc->nsent * sizeof(*lc->sent));
	} else if (tag_is(msg, len, "COMMIT")) {
		lc->req_rollback = false;
		if (lc->nxact)
			(void)xact_commit(c);
	} else if (tag_is(msg, len, "ROLLBACK")) {
		/* a ROLLBACK TO SAVEPOINT keeps what came before the last SAVEPOINT; with one
		 * noted, a whole ROLLBACK (the same tag) forgets the rest at its ReadyForQuery
		 * ('I'); without, all goes now */
		int k = lc->nxact;
		while (k > 0 && lc->xact[k - 1].kind != ACT_MARK)
			k--;
		lc->req_rollback = k > 0;
		lc->nxact = k;
	} else if (tag_is(msg, len, "SAVEPOINT")) {
		if (array_grow((void **)&lc->xact, &lc->xact_cap, lc->nxact + 1, sizeof(*lc->xact)))
			lc->xact[lc->nxact++] = (struct listen_act){ACT_MARK, ""};
	} else if (tag_is(msg, len, "RELEASE")) {
		for (int k = lc->nxact - 1; k >= 0; k--)
			if (lc->xact[k].kind == ACT_MARK) {
				memmove(lc->xact + k, lc->xact + k + 1,
					(size_t)(lc->nxact - k - 1) * sizeof(*lc->xact));
				lc->nxact--;
				break;
			}
	}
}

/* Owns the HTTP server of httpd.h: an evhttp on one address, its limits and its
 * connections. libevent 2.1 bounds a request's line and headers and its body itself; it has
 * no limit on connections (2.2's evhttp_set_max_connections) and only an inactivity timeout,
 * which a client trickling a byte at a time never meets. Both are kept here: every
 * connection is a struct conn, counted from its accept to evhttp's close callback, with a
 * deadline by which its next request must have arrived whole. */
#include "httpd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "clock.h"
#include "list.h"
#include "log.h"

/* The limits, fixed: what a scraper needs, with room, and nothing an attacker can grow. */
#define HTTPD_MAX_HEADERS 8192 /* request line, and all headers: Prometheus sends ~300 bytes;
                                * 8 kB is nginx's and Apache's default */
#define HTTPD_MAX_BODY 4096    /* a scrape has no body: one is read only to answer 405 */
#define HTTPD_MAX_CONNS 16     /* open at once: one per scraper (an HA pair, a curl, ...) */
#define HTTPD_TIMEOUT_S 10     /* a request must arrive whole within it of the connection's
                                * start or of the previous request (which includes writing
                                * that answer): Prometheus' default scrape_timeout, past
                                * which its scrape has failed anyway */
#define HTTPD_LOG_EVERY_S 10   /* at most one line about refused connections per period */

struct httpd {
	struct evhttp *http;
	const struct httpd_site *site;
	struct evbuffer *reply;    /* an answer's body being built; emptied by each send */
	struct list_head conns;    /* struct conn: the connections open, and refused ones until
	                            * they are closed */
	int open;                  /* conns not refused (<= HTTPD_MAX_CONNS) */
	uint64_t refused;          /* connections closed at once, over HTTPD_MAX_CONNS */
	double refused_logged;     /* clock_now() of the last line about them; 0 = none yet */
};

/* A connection from its accept (evhttp asks httpd for its bufferevent) to its close. evhttp
 * 2.1 tells nothing in between, so the connection itself is found once evhttp has set it
 * up, by the timer fired at once ("adopted"); from then on evhttp's close callback ends
 * the conn. */
struct conn {
	struct list node;                /* in httpd.conns */
	struct httpd *h;
	struct bufferevent *bev;         /* the connection's; until adopted, a reference to
	                                  * it is held (evhttp may free it before) */
	struct evhttp_connection *evcon; /* NULL until adopted */
	struct event timer;              /* fired at once to adopt, then the deadline */
	bool refused;                    /* over HTTPD_MAX_CONNS: closed when adopted */
};

static void conn_free(struct conn *c)
{
	struct httpd *h = c->h;
	list_del(&h->conns, &c->node);
	if (!c->refused)
		h->open--;
	event_del(&c->timer);
	free(c);
}

/* evhttp is freeing C's connection: the peer closed, a limit or an error, the deadline. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	conn_free(arg);
}

static void arm_deadline(struct conn *c)
{
	const struct timeval tv = {HTTPD_TIMEOUT_S, 0};
	event_add(&c->timer, &tv);
}

/* evhttp has set C's connection up: the callbacks' argument of the bufferevent it was given
 * is the evhttp_connection (libevent 2.0-2.2 http.c; checked below). No callbacks left:
 * evhttp has freed the connection already. */
static void adopt(struct conn *c)
{
	bufferevent_event_cb eventcb;
	void *arg;
	bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &arg);
	struct evhttp_connection *evcon = eventcb ? arg : NULL;
	if (evcon && evhttp_connection_get_bufferevent(evcon) != c->bev)
		fatal("%s: a bufferevent's argument is not its evhttp connection", c->h->site->name);
	bufferevent_decref(c->bev); /* evhttp's own reference keeps it while it lives */
	if (!evcon || c->refused) {
		if (evcon)
			evhttp_connection_free(evcon);
		conn_free(c);
		return;
	}
	c->evcon = evcon;
	evhttp_connection_set_closecb(evcon, on_close, c);
	arm_deadline(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (!c->evcon) {
		adopt(c);
		return;
	}
	log_debug("%s: closing a connection whose request did not arrive within %d s",
		  c->h->site->name, HTTPD_TIMEOUT_S);
	evhttp_connection_free(c->evcon); /* on_close frees C: not touched after */
}

static void note_refused(struct httpd *h)
{
	h->refused++;
	double now = clock_now();
	if (h->refused_logged > 0 && now - h->refused_logged < HTTPD_LOG_EVERY_S)
		return;
	h->refused_logged = now;
	log_warning("%s: %d connections open, the most served at once: closing new ones "
		    "(%" PRIu64 " refused so far)", h->site->name, HTTPD_MAX_CONNS, h->refused);
}

/* evhttp accepted a connection and asks for its bufferevent: counted here, refused when
 * HTTPD_MAX_CONNS are open. Without memory for a conn, the connection goes uncounted with
 * evhttp's inactivity timeout (the bufferevent NULL: evhttp makes its own). */
static struct bufferevent *on_accept(struct event_base *base, void *arg)
{
	struct httpd *h = arg;
	struct conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = c ? bufferevent_socket_new(base, -1, 0) : NULL;
	if (!bev) {
		free(c);
		return NULL;
	}
	c->h = h;
	c->bev = bev;
	c->refused = h->open >= HTTPD_MAX_CONNS;
	if (c->refused)
		note_refused(h);
	else
		h->open++;
	bufferevent_incref(bev);
	event_assign(&c->timer, base, -1, 0, on_timer, c);
	event_active(&c->timer, EV_TIMEOUT, 0);
	list_append(&h->conns, &c->node);
	return bev;
}

static struct conn *conn_of(struct httpd *h, struct evhttp_connection *evcon)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &h->conns) {
		struct conn *c = list_entry(pos, struct conn, node);
		if (c->evcon == evcon)
			return c;
	}
	return NULL;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	struct conn *c = conn_of(h, evhttp_request_get_connection(req));
	if (c)
		arm_deadline(c); /* for this answer and the next request */
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	int code = HTTP_OK;
	const char *reason = "OK", *type = h->site->content_type;
	if (!path || strcmp(path, h->site->path) != 0) {
		code = HTTP_NOTFOUND;
		reason = "Not Found";
		type = "text/plain";
		evbuffer_add_printf(h->reply, "only %s is served here\n", h->site->path);
	} else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		code = HTTP_BADMETHOD;
		reason = "Method Not Allowed";
		type = "text/plain";
		evhttp_add_header(out, "Allow", "GET, HEAD");
		evbuffer_add_printf(h->reply, "only GET and HEAD are served here\n");
	} else {
		h->site->render(h->reply);
	}
	evhttp_add_header(out, "Content-Type", type);
	evhttp_send_reply(req, code, reason, h->reply);
	evbuffer_drain(h->reply, evbuffer_get_length(h->reply)); /* left when evhttp did not send */
}

struct httpd *httpd_new(struct event_base *base, const char *host, int port,
			const struct httpd_site *site)
{
	struct httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->site = site;
	list_head_init(&h->conns);
	h->reply = evbuffer_new();
	h->http = evhttp_new(base);
	if (!h->reply || !h->http) {
		errno = ENOMEM;
		goto fail;
	}
	evhttp_set_max_headers_size(h->http, HTTPD_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, HTTPD_MAX_BODY);
	evhttp_set_timeout(h->http, HTTPD_TIMEOUT_S); /* inactivity; for an uncounted connection */
	/* every method reaches on_request, which answers 405 (libevent's own answer is 501) */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(h->http, on_accept, h);
	evhttp_set_gencb(h->http, on_request, h);
	if (!evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port))
		goto fail;
	return h;

fail:;
	int saved = errno;
	httpd_free(h);
	errno = saved;
	return NULL;
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	/* the conns end here: evhttp_free below frees their connections without calling back */
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &h->conns) {
		struct conn *c = list_entry(pos, struct conn, node);
		if (c->evcon)
			evhttp_connection_set_closecb(c->evcon, NULL, NULL);
		else
			bufferevent_decref(c->bev);
		conn_free(c);
	}
	if (h->http)
		evhttp_free(h->http);
	if (h->reply)
		evbuffer_free(h->reply);
	free(h);
}

/* A small HTTP server for one read-only resource (the /metrics endpoint), safe to expose
 * to an untrusted network: libevent's evhttp serving GET and HEAD of one path, with every
 * resource a client can claim bounded -- the request line and headers, the body, the
 * connections open at once and the time a request may take. */
#ifndef PGCORO_HTTPD_H
#define PGCORO_HTTPD_H

struct event_base;
struct evbuffer;
struct httpd;

/* What is served; the caller keeps it (and its strings) alive while the server exists. */
struct httpd_site {
	const char *name;         /* prefixes the server's log lines ("metrics") */
	const char *path;         /* the one path served ("/metrics") */
	const char *content_type; /* of the answer to GET and HEAD */
	/* Appends the answer's body to OUT; called on the loop thread for each GET or HEAD. */
	void (*render)(struct evbuffer *out);
};

/* Listens on HOST:PORT and serves SITE: GET and HEAD of SITE->path get 200 with the
 * rendered body; another path gets 404, another method 405 (with Allow). Over a limit
 * (httpd.c) a request is refused (400 for its line or headers, 413 for its body) or its
 * connection closed. NULL if it cannot listen: errno says why. */
struct httpd *httpd_new(struct event_base *base, const char *host, int port,
			const struct httpd_site *site) __attribute__((warn_unused_result));

/* Stops listening and closes every connection; H may be NULL. */
void httpd_free(struct httpd *h);

#endif

/* Owns auth_hba_file (see hba.h): tokenizing pg_hba.conf syntax (comments, quoting,
 * comma lists, line continuation, @file inclusion), the rules it yields, and first-match
 * lookup for a connection. */
#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HBA_MAX_FILE (1024 * 1024) /* larger rule files are refused */
#define HBA_MAX_FIELDS 16
#define HBA_INCLUDE_DEPTH 4

enum item_kind { IT_NAME, IT_ALL, IT_SAMEUSER, IT_REPLICATION };

struct item {
	enum item_kind kind;
	char *name; /* IT_NAME */
};

struct list {
	struct item *items;
	int n, cap;
};

enum conn_type { CT_LOCAL, CT_HOST, CT_HOSTSSL, CT_HOSTNOSSL };

struct rule {
	enum conn_type type;
	struct list dbs, users;
	bool any_addr;  /* "all" */
	int family;     /* AF_INET / AF_INET6 */
	uint8_t addr[16], mask[16];
	enum hba_method method;
	int line;
};

struct hba {
	struct rule *rules;
	int n, cap;
};

/* A token of a field: its text and whether any of it was quoted. */
struct token {
	char *text;
	bool quoted;
};

struct parser {
	const char *name; /* the file, for messages and @file */
	int line;
	char *err;
	size_t errlen;
};

static bool fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct parser *p, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, why);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->name, why);
	return false;
}

static char *read_file(const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	char *buf = malloc(HBA_MAX_FILE + 1);
	size_t n = buf ? fread(buf, 1, HBA_MAX_FILE + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!buf || bad || n > HBA_MAX_FILE) {
		snprintf(why, whylen, "%s", !buf ? "out of memory" : bad ? "read error" : "file too large");
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	return buf;
}

static void list_free(struct list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	*l = (struct list){0};
}

static bool list_add(struct list *l, enum item_kind kind, const char *name)
{
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 4;
		struct item *it = realloc(l->items, (size_t)cap * sizeof(*it));
		if (!it)
			return false;
		l->items = it;
		l->cap = cap;
	}
	char *copy = NULL;
	if (name && !(copy = strdup(name)))
		return false;
	l->items[l->n++] = (struct item){kind, copy};
	return true;
}

/* A field: a comma list of tokens (pointing into the line) and whether each had quotes. */
struct field {
	char *tok[64];
	bool quoted[64];
	int ntok;
};

/* Splits S (one logical line, comments and continuations already removed) in place into
 * whitespace-separated fields of comma-separated tokens; quotes group and are removed. */
static bool split_fields(struct parser *p, char *s, struct field *f, int *nf)
{
	*nf = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (!*s)
			return true;
		if (*nf == HBA_MAX_FIELDS)
			return fail(p, "too many fields");
		struct field *fl = &f[(*nf)++];
		fl->ntok = 0;
		/* a field: tokens separated by commas, no whitespace outside quotes */
		for (;;) {
			if (fl->ntok == 64)
				return fail(p, "too many names in a list");
			char *w = s, *start = s;
			bool q = false, in_q = false;
			while (*s && (in_q || (*s != ',' && *s != ' ' && *s != '\t' && *s != '\r'))) {
				if (*s == '"') {
					if (in_q && s[1] == '"') { /* "" inside quotes: a quote */
						*w++ = '"';
						s += 2;
						continue;
					}
					in_q = !in_q;
					q = true;
					s++;
					continue;
				}
				*w++ = *s++;
			}
			if (in_q)
				return fail(p, "unterminated quoted string");
			char sep = *s;
			if (*s)
				s++;
			*w = 0;
			if (!*start && !q)
				return fail(p, "empty name in a list");
			fl->tok[fl->ntok] = start;
			fl->quoted[fl->ntok] = q;
			fl->ntok++;
			if (sep != ',')
				break;
		}
	}
}

static bool add_names_file(struct parser *p, struct list *l, const char *file, int depth);

/* Adds the tokens of F to L; keywords (unquoted) per IS_DB. */
static bool fill_list(struct parser *p, struct list *l, const struct field *f, bool is_db,
		      int depth)
{
	for (int i = 0; i < f->ntok; i++) {
		const char *t = f->tok[i];
		bool ok;
		if (f->quoted[i])
			ok = list_add(l, IT_NAME, t);
		else if (strcmp(t, "all") == 0)
			ok = list_add(l, IT_ALL, NULL);
		else if (is_db && strcmp(t, "sameuser") == 0)
			ok = list_add(l, IT_SAMEUSER, NULL);
		else if (is_db && strcmp(t, "replication") == 0)
			ok = list_add(l, IT_REPLICATION, NULL);
		else if (is_db && (strcmp(t, "samerole") == 0 || strcmp(t, "samegroup") == 0))
			return fail(p, "\"%s\" is not supported (pgcoro knows no roles)", t);
		else if (!is_db && t[0] == '+')
			return fail(p, "group membership (\"%s\") is not supported", t);
		else if (t[0] == '@') {
			if (!add_names_file(p, l, t + 1, depth))
				return false;
			continue;
		} else
			ok = list_add(l, IT_NAME, t);
		if (!ok)
			return fail(p, "out of memory");
	}
	return true;
}

/* @file: names separated by whitespace or commas, '#' comments; relative to the
 * directory of the including file. */
static bool add_names_file(struct parser *p, struct list *l, const char *file, int depth)
{
	if (!*file)
		return fail(p, "@ without a file name");
	if (depth >= HBA_INCLUDE_DEPTH)
		return fail(p, "@%s: included too deeply", file);
	char path[4096];
	const char *slash = strrchr(p->name, '/');
	if (file[0] == '/' || !slash)
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - p->name), p->name, file);
	char why[256];
	char *text = read_file(path, why, sizeof(why));
	if (!text)
		return fail(p, "@%s: %s", file, why);
	bool ok = true;
	for (char *s = text; *s && ok;) {
		char *eol = strchr(s, '\n');
		if (eol)
			*eol = 0;
		char *hash = strchr(s, '#');
		if (hash)
			*hash = 0;
		for (char *q = s; *q; q++)
			if (*q == ',')
				*q = ' ';
		struct field f[HBA_MAX_FIELDS];
		int nf;
		struct parser sub = {path, 0, p->err, p->errlen};
		ok = split_fields(&sub, s, f, &nf);
		for (int i = 0; ok && i < nf; i++)
			ok = fill_list(&sub, l, &f[i], false, depth + 1);
		if (!ok)
			fail(p, "@%s: %s", file, p->err);
		s = eol ? eol + 1 : s + strlen(s);
	}
	free(text);
	return ok;
}

static bool parse_addr(const char *s, int *family, uint8_t out[16])
{
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static bool parse_address(struct parser *p, struct rule *r, const struct field *f,
			  const struct field *mask, int *used)
{
	*used = 1;
	if (f->ntok != 1)
		return fail(p, "an address cannot be a list");
	const char *t = f->tok[0];
	if (!f->quoted[0] && strcmp(t, "all") == 0) {
		r->any_addr = true;
		return true;
	}
	if (!f->quoted[0] && (strcmp(t, "samehost") == 0 || strcmp(t, "samenet") == 0))
		return fail(p, "\"%s\" is not supported", t);
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", t);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (!parse_addr(buf, &r->family, r->addr))
		return fail(p, "invalid IP address \"%s\" (host names are not supported)", t);
	int bits = r->family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;
		long n = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || n < 0 || n > bits)
			return fail(p, "invalid CIDR mask in address \"%s\"", t);
		for (int i = 0; i < bits / 8; i++) {
			int b = (int)n - i * 8;
			r->mask[i] = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
		}
		return true;
	}
	/* an address followed by a mask */
	int mfam;
	if (!mask || mask->ntok != 1 || !parse_addr(mask->tok[0], &mfam, r->mask))
		return fail(p, "IP address \"%s\" needs a CIDR mask or a mask field", t);
	if (mfam != r->family)
		return fail(p, "IP address and mask do not match in \"%s\"", t);
	*used = 2;
	return true;
}

static const char *const method_names[] = {
    [HBA_TRUST] = "trust", [HBA_REJECT] = "reject", [HBA_PASSWORD] = "password",
    [HBA_MD5] = "md5",     [HBA_SCRAM] = "scram-sha-256", [HBA_CERT] = "cert",
    [HBA_PEER] = "peer",
};

const char *hba_method_name(enum hba_method m)
{
	if (m >= 0 && (size_t)m < sizeof(method_names) / sizeof(method_names[0]))
		return method_names[m];
	return "no match";
}

static bool parse_rule(struct parser *p, struct field *f, int nf, struct rule *r)
{
	static const char *const types[] = {"local", "host", "hostssl", "hostnossl"};
	int i;
	for (i = 0; i < 4; i++)
		if (f[0].ntok == 1 && strcmp(f[0].tok[0], types[i]) == 0)
			break;
	if (i == 4) {
		if (f[0].ntok == 1 && strncmp(f[0].tok[0], "hostgss", 7) == 0)
			return fail(p, "\"%s\" is not supported (no GSSAPI)", f[0].tok[0]);
		return fail(p, "invalid connection type \"%s\"", f[0].tok[0]);
	}
	r->type = (enum conn_type)i;
	if (nf < 2)
		return fail(p, "end of line before the database field");
	if (!fill_list(p, &r->dbs, &f[1], true, 0))
		return false;
	if (nf < 3)
		return fail(p, "end of line before the user field");
	if (!fill_list(p, &r->users, &f[2], false, 0))
		return false;
	int at = 3;
	if (r->type != CT_LOCAL) {
		if (nf < 4)
			return fail(p, "end of line before the address field");
		int used;
		if (!parse_address(p, r, &f[3], nf > 4 ? &f[4] : NULL, &used))
			return false;
		at += used;
	}
	if (nf <= at)
		return fail(p, "end of line before the authentication method");
	if (f[at].ntok != 1)
		return fail(p, "the authentication method cannot be a list");
	const char *m = f[at].tok[0];
	size_t k;
	for (k = 0; k < sizeof(method_names) / sizeof(method_names[0]); k++)
		if (strcmp(m, method_names[k]) == 0)
			break;
	if (k == sizeof(method_names) / sizeof(method_names[0]))
		return fail(p, "invalid or unsupported authentication method \"%s\"", m);
	r->method = (enum hba_method)k;
	if (r->method == HBA_PEER && r->type != CT_LOCAL)
		return fail(p, "peer authentication is only supported on local sockets");
	if (r->method == HBA_CERT && r->type != CT_HOSTSSL)
		return fail(p, "cert authentication is only supported on hostssl connections");
	if (nf > at + 1)
		return fail(p, "authentication options are not supported (\"%s\")", f[at + 1].tok[0]);
	return true;
}

static void rule_free(struct rule *r)
{
	list_free(&r->dbs);
	list_free(&r->users);
}

void hba_free(struct hba *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n; i++)
		rule_free(&h->rules[i]);
	free(h->rules);
	free(h);
}

struct hba *hba_parse(const char *text, const char *name, char *err, size_t errlen)
{
	struct parser p = {name, 0, err, errlen};
	struct hba *h = calloc(1, sizeof(*h));
	char *buf = strdup(text);
	if (!h || !buf) {
		fail(&p, "out of memory");
		goto fail;
	}
	int lineno = 0;
	for (char *s = buf; *s;) {
		/* one logical line: physical lines joined while one ends in a backslash */
		char *line = s, *w = s;
		p.line = ++lineno;
		bool in_q = false, comment = false;
		while (*s) {
			if (*s == '\\' && (s[1] == '\n' || (s[1] == '\r' && s[2] == '\n'))) {
				s += s[1] == '\n' ? 2 : 3;
				lineno++;
				continue;
			}
			if (*s == '\n') {
				s++;
				break;
			}
			if (*s == '"' && !comment)
				in_q = !in_q;
			if (*s == '#' && !in_q)
				comment = true;
			if (!comment)
				*w++ = *s;
			s++;
		}
		*w = 0;
		struct field f[HBA_MAX_FIELDS];
		int nf;
		if (!split_fields(&p, line, f, &nf))
			goto fail;
		if (nf == 0)
			continue;
		if (h->n == h->cap) {
			int cap = h->cap ? h->cap * 2 : 16;
			struct rule *r = realloc(h->rules, (size_t)cap * sizeof(*r));
			if (!r) {
				fail(&p, "out of memory");
				goto fail;
			}
			h->rules = r;
			h->cap = cap;
		}
		struct rule *r = &h->rules[h->n];
		*r = (struct rule){.line = p.line};
		if (!parse_rule(&p, f, nf, r)) {
			rule_free(r);
			goto fail;
		}
		h->n++;
	}
	free(buf);
	return h;
fail:
	free(buf);
	hba_free(h);
	return NULL;
}

struct hba *hba_load(const char *path, char *err, size_t errlen)
{
	char why[256];
	char *text = read_file(path, why, sizeof(why));
	if (!text) {
		snprintf(err, errlen, "%s: %s", path, why);
		return NULL;
	}
	struct hba *h = hba_parse(text, path, err, errlen);
	free(text);
	return h;
}

int hba_count(const struct hba *h) { return h ? h->n : 0; }

/* NAME is in L (USER for sameuser). */
static bool list_match(const struct list *l, const char *name, const char *user)
{
	for (int i = 0; i < l->n; i++) {
		const struct item *it = &l->items[i];
		switch (it->kind) {
		case IT_ALL:
			return true;
		case IT_SAMEUSER:
			if (strcmp(name, user) == 0)
				return true;
			break;
		case IT_REPLICATION:
			break; /* physical replication only: hba_match */
		case IT_NAME:
			if (strcmp(it->name, name) == 0)
				return true;
			break;
		}
	}
	return false;
}

/* L has the keyword "replication". */
static bool names_replication(const struct list *l)
{
	for (int i = 0; i < l->n; i++)
		if (l->items[i].kind == IT_REPLICATION)
			return true;
	return false;
}

static bool addr_match(const struct rule *r, const struct hba_conn *c)
{
	if (r->any_addr)
		return true;
	if (!c->addr)
		return false;
	int family = c->family;
	const uint8_t *addr = c->addr;
	static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (family == AF_INET6 && r->family == AF_INET && memcmp(addr, v4_mapped, 12) == 0) {
		/* an IPv4 client of a dual-stack listener: matched as the IPv4 address it is */
		family = AF_INET;
		addr += 12;
	}
	if (family != r->family)
		return false;
	int n = r->family == AF_INET ? 4 : 16;
	for (int i = 0; i < n; i++)
		if ((addr[i] & r->mask[i]) != (r->addr[i] & r->mask[i]))
			return false;
	return true;
}

enum hba_method hba_match(const struct hba *h, const struct hba_conn *c, int *line)
{
	*line = 0;
	for (int i = 0; h && i < h->n; i++) {
		const struct rule *r = &h->rules[i];
		switch (r->type) {
		case CT_LOCAL:
			if (!c->unix_socket)
				continue;
			break;
		case CT_HOST:
			if (c->unix_socket)
				continue;
			break;
		case CT_HOSTSSL:
			if (c->unix_socket || !c->tls)
				continue;
			break;
		case CT_HOSTNOSSL:
			if (c->unix_socket || c->tls)
				continue;
			break;
		}
		if (r->type != CT_LOCAL && !addr_match(r, c))
			continue;
		bool db_ok = c->physical_replication ? names_replication(&r->dbs)
						     : list_match(&r->dbs, c->database, c->user);
		if (!db_ok || !list_match(&r->users, c->user, c->user))
			continue;
		*line = r->line;
		return r->method;
	}
	return HBA_NO_MATCH;
}

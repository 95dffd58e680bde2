/* Owns auth_hba_file and auth_ident_file (see hba.h): tokenizing pg_hba.conf syntax
 * (comments, quoting, comma lists with blanks allowed around the commas, line
 * continuation, @file inclusion), the rules and ident maps it yields, first-match lookup
 * for a connection, and the ident-map check of peer and cert logins. */
#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldapauth.h"
#include "log.h"

#define HBA_MAX_FILE (1024 * 1024) /* larger rule, name and map files are refused */
#define HBA_MAX_FIELDS 16
#define HBA_INCLUDE_DEPTH 4
#define HBA_MAX_REGEX 1024 /* longer ident regular expressions are refused */
#define HBA_MAX_REGEX_NODES 256 /* and those regcomp would expand past this (regex_check) */

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
	int map; /* index in hba.maps; -1: none */
	struct ldapauth_opts *ldap; /* HBA_LDAP: the rule's options */
	int line;
};

/* One line of auth_ident_file. */
struct ident {
	char *system_user; /* a name, or a regular expression's text after its '/' */
	bool regex;
	regex_t re;        /* when regex */
	char *user;        /* the database user; NULL: "all" */
};

struct hba_map {
	char *name;
	struct ident *lines;
	int n, cap;
};

struct hba {
	struct rule *rules;
	int n, cap;
	struct hba_map *maps;
	int nmaps, capmaps;
};

/* A name of a field, unquoted in place, and whether any of it was quoted. */
struct token {
	char *text;
	bool quoted;
};

/* A field of a line: the tokens [first, first + n) of its parser. */
struct field {
	int first, n;
};

/* One file being read: where it is, its current line's fields, where errors go. */
struct parser {
	const char *name; /* the file, for messages and @file */
	int line;
	char *err;
	size_t errlen;
	struct field f[HBA_MAX_FIELDS];
	int nf;
	struct token *tok;
	int ntok, captok;
	char group[128]; /* a role group the current rule names ("+x", samerole), else "" */
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

/* ARR with room for element N (of SIZE bytes; *CAP allocated): ARR itself, a larger copy
 * (*CAP updated), or NULL when out of memory (ARR is then unchanged). */
static void *grow(void *arr, int n, int *cap, size_t size)
{
	if (n < *cap)
		return arr;
	int c = *cap ? *cap * 2 : 8;
	void *p = realloc(arr, (size_t)c * size);
	if (p)
		*cap = c;
	return p;
}

/* The whole of the regular file PATH, NUL-terminated (a NUL inside ends the text early);
 * NULL with the reason in WHY. Anything but a regular file is refused: a fifo or a device
 * would block the reader forever. */
static char *read_file(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto out;
	}
	if (st.st_size > HBA_MAX_FILE) {
		snprintf(why, whylen, "file too large");
		goto out;
	}
	size_t size = (size_t)st.st_size, n = 0;
	if (!(buf = malloc(size + 1))) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	while (n < size) {
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, whylen, "read error: %s", strerror(errno));
			free(buf);
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break; /* it shrank meanwhile */
		n += (size_t)r;
	}
	buf[n] = 0;
out:
	close(fd);
	return buf;
}

/* ---- lines, fields, tokens ------------------------------------------------------------ */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static char *skip_blanks(char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

/* The next logical line at *SP (NULL at the end), in place: physical lines joined while
 * one ends in a backslash, the comment ('#' outside quotes) cut off. *LINENO counts
 * physical lines; *FIRST gets the one the logical line starts on. */
static char *next_line(char **sp, int *lineno, int *first)
{
	char *s = *sp, *line = s, *w = s;
	if (!*s)
		return NULL;
	*first = ++*lineno;
	bool in_q = false, comment = false;
	while (*s) {
		if (*s == '\\' && (s[1] == '\n' || (s[1] == '\r' && s[2] == '\n'))) {
			s += s[1] == '\n' ? 2 : 3;
			++*lineno;
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
	*sp = s;
	return line;
}

static bool add_token(struct parser *p, char *text, bool quoted)
{
	struct token *t = grow(p->tok, p->ntok, &p->captok, sizeof(*t));
	if (!t)
		return fail(p, "out of memory");
	p->tok = t;
	p->tok[p->ntok++] = (struct token){text, quoted};
	return true;
}

/* Splits S (a logical line) in place into P's fields: blanks separate fields, a comma
 * (blanks allowed around it) the names of a list; quotes group, "" inside them is a
 * quote, and they are removed. */
static bool split_line(struct parser *p, char *s)
{
	p->nf = 0;
	p->ntok = 0;
	for (;;) {
		s = skip_blanks(s);
		if (!*s)
			return true;
		if (p->nf == HBA_MAX_FIELDS)
			return fail(p, "too many fields");
		struct field *fl = &p->f[p->nf++];
		*fl = (struct field){p->ntok, 0};
		for (;;) {
			char *start = s, *w = s;
			bool q = false, in_q = false;
			while (*s && (in_q || (!is_blank(*s) && *s != ','))) {
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
			if (w == start && !q)
				return fail(p, "empty name in a list");
			s = skip_blanks(s);
			bool comma = *s == ',';
			if (comma)
				s = skip_blanks(s + 1);
			*w = 0; /* before S: nothing still to read is overwritten */
			if (!add_token(p, start, q))
				return false;
			fl->n++;
			if (!comma)
				break;
			if (!*s)
				return fail(p, "end of line after a comma");
		}
	}
}

static const struct token *tok(const struct parser *p, int field, int i)
{
	return &p->tok[p->f[field].first + i];
}

/* Calls FN for each logical line of TEXT (split in place) that has fields. */
static bool parse_lines(struct parser *p, char *text, bool (*fn)(struct parser *, void *),
			void *arg)
{
	int lineno = 0;
	char *line;
	while ((line = next_line(&text, &lineno, &p->line)))
		if (!split_line(p, line) || (p->nf > 0 && !fn(p, arg)))
			return false;
	return true;
}

static void parser_free(struct parser *p)
{
	free(p->tok);
	p->tok = NULL;
}

/* ---- database and user lists ---------------------------------------------------------- */

static void list_free(struct list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->items[i].name);
	free(l->items);
	*l = (struct list){0};
}

static bool list_add(struct parser *p, struct list *l, enum item_kind kind, const char *name)
{
	struct item *it = grow(l->items, l->n, &l->cap, sizeof(*it));
	if (!it)
		return fail(p, "out of memory");
	l->items = it;
	char *copy = NULL;
	if (name && !(copy = strdup(name)))
		return fail(p, "out of memory");
	l->items[l->n++] = (struct item){kind, copy};
	return true;
}

static bool add_names_file(struct parser *p, struct list *l, const char *file, bool is_db,
			   int depth);

/* Adds the names of field FI of P to L, keywords (unquoted) as the field's (IS_DB: the
 * database field). A role group is noted in P->group and adds nothing. */
static bool fill_list(struct parser *p, struct list *l, int fi, bool is_db, int depth)
{
	for (int i = 0; i < p->f[fi].n; i++) {
		const struct token *t = tok(p, fi, i);
		const char *s = t->text;
		bool ok;
		if (t->quoted)
			ok = list_add(p, l, IT_NAME, s);
		else if (strcmp(s, "all") == 0)
			ok = list_add(p, l, IT_ALL, NULL);
		else if (is_db && strcmp(s, "sameuser") == 0)
			ok = list_add(p, l, IT_SAMEUSER, NULL);
		else if (is_db && strcmp(s, "replication") == 0)
			ok = list_add(p, l, IT_REPLICATION, NULL);
		else if ((is_db && (strcmp(s, "samerole") == 0 || strcmp(s, "samegroup") == 0)) ||
			 (!is_db && s[0] == '+')) {
			snprintf(p->group, sizeof(p->group), "%s", s);
			ok = true;
		} else if (s[0] == '@')
			ok = add_names_file(p, l, s + 1, is_db, depth);
		else
			ok = list_add(p, l, IT_NAME, s);
		if (!ok)
			return false;
	}
	return true;
}

struct names_arg {
	struct list *l;
	bool is_db;
	int depth;
};

/* A line of an @file: every name of every field. */
static bool names_line(struct parser *sub, void *arg)
{
	struct names_arg *a = arg;
	for (int i = 0; i < sub->nf; i++)
		if (!fill_list(sub, a->l, i, a->is_db, a->depth + 1))
			return false;
	return true;
}

/* @FILE: names separated by blanks or commas, with the syntax and keywords of the field
 * that includes it; relative to the including file's directory. */
static bool add_names_file(struct parser *p, struct list *l, const char *file, bool is_db,
			   int depth)
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
	struct parser sub = {.name = path, .err = p->err, .errlen = p->errlen};
	struct names_arg a = {l, is_db, depth};
	bool ok = parse_lines(&sub, text, names_line, &a);
	if (sub.group[0])
		snprintf(p->group, sizeof(p->group), "%s", sub.group);
	parser_free(&sub);
	free(text);
	return ok || fail(p, "@%s: %s", file, p->err);
}

/* ---- rules ---------------------------------------------------------------------------- */

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

/* The address field FI (and the mask field after it when the address has no /bits);
 * *USED gets how many fields it took. */
static bool parse_address(struct parser *p, struct rule *r, int fi, int *used)
{
	*used = 1;
	if (p->f[fi].n != 1)
		return fail(p, "an address cannot be a list");
	const struct token *t = tok(p, fi, 0);
	if (!t->quoted && strcmp(t->text, "all") == 0) {
		r->any_addr = true;
		return true;
	}
	if (!t->quoted && (strcmp(t->text, "samehost") == 0 || strcmp(t->text, "samenet") == 0))
		return fail(p, "\"%s\" is not supported", t->text);
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", t->text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (!parse_addr(buf, &r->family, r->addr))
		return fail(p, "invalid IP address \"%s\" (host names are not supported)", t->text);
	int bits = r->family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;
		long n = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || n < 0 || n > bits)
			return fail(p, "invalid CIDR mask in address \"%s\"", t->text);
		for (int i = 0; i < bits / 8; i++) {
			int b = (int)n - i * 8;
			r->mask[i] = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
		}
		return true;
	}
	/* an address followed by a mask */
	int mfam;
	if (fi + 1 >= p->nf || p->f[fi + 1].n != 1 ||
	    !parse_addr(tok(p, fi + 1, 0)->text, &mfam, r->mask))
		return fail(p, "IP address \"%s\" needs a CIDR mask or a mask field", t->text);
	if (mfam != r->family)
		return fail(p, "IP address and mask do not match in \"%s\"", t->text);
	*used = 2;
	return true;
}

static const char *const method_names[] = {
    [HBA_TRUST] = "trust", [HBA_REJECT] = "reject", [HBA_PASSWORD] = "password",
    [HBA_MD5] = "md5",     [HBA_SCRAM] = "scram-sha-256", [HBA_CERT] = "cert",
    [HBA_PEER] = "peer",   [HBA_ANY] = "any",     [HBA_PAM] = "pam",
    [HBA_LDAP] = "ldap",
};

const char *hba_method_name(enum hba_method m)
{
	if (m >= 0 && (size_t)m < sizeof(method_names) / sizeof(method_names[0]))
		return method_names[m];
	return "no match";
}

static int find_map(const struct hba *h, const char *name)
{
	for (int i = 0; i < h->nmaps; i++)
		if (strcmp(h->maps[i].name, name) == 0)
			return i;
	return -1;
}

/* An ldap rule's options, field AT on: each name=value (a list's names too, as PgBouncer
 * reads the rest of the line) an LDAP option, checked as a whole (ldapauth.h). */
static bool parse_ldap_options(struct parser *p, struct rule *r, int at)
{
	char why[256];
	if (!(r->ldap = ldapauth_new()))
		return fail(p, "out of memory");
	for (int i = at; i < p->nf; i++)
		for (int j = 0; j < p->f[i].n; j++) {
			char *o = tok(p, i, j)->text, *eq = strchr(o, '=');
			if (!eq || eq == o || !eq[1])
				return fail(p, "LDAP option \"%s\" is not name=value", o);
			*eq = 0;
			bool ok = ldapauth_set(r->ldap, o, eq + 1, why, sizeof(why));
			*eq = '=';
			if (!ok)
				return fail(p, "%s", why);
		}
	return ldapauth_validate(r->ldap, why, sizeof(why)) || fail(p, "%s", why);
}

/* The options after the method, field AT on: only map=NAME, a map of IDENT_NAME's. As
 * PgBouncer, any method takes it; peer and cert use it. An ldap rule has LDAP options
 * instead. */
static bool parse_options(struct parser *p, const struct hba *h, struct rule *r, int at,
			  const char *ident_name)
{
	if (r->method == HBA_LDAP)
		return parse_ldap_options(p, r, at);
	for (int i = at; i < p->nf; i++) {
		const char *o = tok(p, i, 0)->text;
		if (p->f[i].n != 1 || strncmp(o, "map=", 4) != 0)
			return fail(p, "authentication option \"%s\" is not supported (only map=)",
				    o);
		if (r->map >= 0)
			return fail(p, "map= is given twice");
		if ((r->map = find_map(h, o + 4)) < 0)
			return fail(p, "ident map \"%s\" is not in %s", o + 4,
				    ident_name ? ident_name : "auth_ident_file (not set)");
	}
	return true;
}

static bool parse_rule(struct parser *p, const struct hba *h, struct rule *r,
		       const char *ident_name)
{
	static const char *const types[] = {"local", "host", "hostssl", "hostnossl"};
	const char *type = tok(p, 0, 0)->text;
	int i;
	for (i = 0; i < 4; i++)
		if (p->f[0].n == 1 && strcmp(type, types[i]) == 0)
			break;
	if (i == 4) {
		if (p->f[0].n == 1 && strncmp(type, "hostgss", 7) == 0)
			return fail(p, "\"%s\" is not supported (no GSSAPI)", type);
		return fail(p, "invalid connection type \"%s\"", type);
	}
	r->type = (enum conn_type)i;
	if (p->nf < 2)
		return fail(p, "end of line before the database field");
	if (!fill_list(p, &r->dbs, 1, true, 0))
		return false;
	if (p->nf < 3)
		return fail(p, "end of line before the user field");
	if (!fill_list(p, &r->users, 2, false, 0))
		return false;
	int at = 3;
	if (r->type != CT_LOCAL) {
		if (p->nf < 4)
			return fail(p, "end of line before the address field");
		int used;
		if (!parse_address(p, r, 3, &used))
			return false;
		at += used;
	}
	if (p->nf <= at)
		return fail(p, "end of line before the authentication method");
	if (p->f[at].n != 1)
		return fail(p, "the authentication method cannot be a list");
	const char *m = tok(p, at, 0)->text;
	size_t k;
	for (k = 0; k < sizeof(method_names) / sizeof(method_names[0]); k++)
		if (strcmp(m, method_names[k]) == 0)
			break;
	if (k == sizeof(method_names) / sizeof(method_names[0]))
		return fail(p, "invalid or unsupported authentication method \"%s\"", m);
	if (k == HBA_ANY || k == HBA_PAM) /* as PgBouncer, which takes them only globally */
		return fail(p, "authentication method \"%s\" works only as auth_type, not in "
			    "auth_hba_file", m);
	r->method = (enum hba_method)k;
	/* peer off a unix socket, cert without TLS: accepted as PgBouncer does; such a
	 * login fails */
	return parse_options(p, h, r, at + 1, ident_name);
}

static void rule_free(struct rule *r)
{
	list_free(&r->dbs);
	list_free(&r->users);
	ldapauth_free(r->ldap);
	r->ldap = NULL;
}

struct rules_arg {
	struct hba *h;
	const char *ident_name; /* NULL: no auth_ident_file */
};

/* A rule line: appended to the rules, unless it names a role group. */
static bool rule_line(struct parser *p, void *arg)
{
	struct rules_arg *a = arg;
	struct hba *h = a->h;
	struct rule *rules = grow(h->rules, h->n, &h->cap, sizeof(*rules));
	if (!rules)
		return fail(p, "out of memory");
	h->rules = rules;
	struct rule *r = &h->rules[h->n];
	*r = (struct rule){.map = -1, .line = p->line};
	p->group[0] = 0;
	bool ok = parse_rule(p, h, r, a->ident_name);
	if (ok && !p->group[0]) {
		h->n++;
		return true;
	}
	rule_free(r);
	if (!ok)
		return false;
	if (r->method == HBA_REJECT) /* skipped, it would let in whom it rejects */
		return fail(p, "\"%s\": pgcoro knows no role membership, so it cannot tell whom "
			       "this reject rule rejects", p->group);
	log_warning("%s:%d: \"%s\": pgcoro knows no role membership: this rule never matches "
		    "(PgBouncer skips it too)", p->name, p->line, p->group);
	return true;
}

/* ---- ident maps ----------------------------------------------------------------------- */

static void ident_free(struct ident *id)
{
	free(id->system_user);
	free(id->user);
	if (id->regex)
		regfree(&id->re);
}

/* Why RE, an extended regular expression, is refused, or NULL. glibc's regcomp copies a
 * repeated operand once per repetition (X+ is XX*, X{n,m} is m copies of X), so nested
 * repetitions multiply: "((a+)+)+..." or "(a{99}){99}" take gigabytes in a few bytes, and
 * its matcher takes time that grows with them; this bounds the nodes regcomp would build
 * (HBA_MAX_REGEX_NODES) along that rule. A quantifier right after another ("a++", which
 * also costs it exponential time) and back references (exponential matching) are refused
 * too: PostgreSQL refuses the first, and a map needs neither. */
static const char *regex_check(const char *re)
{
	static const char *const too_large = "too large once its repetitions are expanded";
	struct {
		unsigned long done, last; /* a group's elements before its last one; the last */
	} st[32] = {{0, 0}};
	int d = 0;
	bool quantified = false; /* the last element has its quantifier */
	for (const char *s = re; *s; s++) {
		unsigned long times = 0; /* the copies a quantifier makes of the last element */
		bool op = false;         /* a group's bounds, an alternation: no element */
		switch (*s) {
		case '(':
			if (++d == 32)
				return "nested too deeply";
			st[d].done = st[d].last = 0;
			op = true;
			break;
		case ')':
			if (d > 0) {
				unsigned long group = st[d].done + st[d].last + 1;
				d--;
				st[d].done += st[d].last;
				st[d].last = group;
				op = true;
			}
			break;
		case '|':
			st[d].done += st[d].last + 1;
			st[d].last = 0;
			op = true;
			break;
		case '*':
		case '?':
			times = 1;
			break;
		case '+':
			times = 2;
			break;
		case '{': {
			const char *q = s + 1;
			unsigned long n = 0;
			while ((*q >= '0' && *q <= '9') || *q == ',') {
				unsigned long v = 0;
				for (; *q >= '0' && *q <= '9'; q++)
					v = v < 100000 ? v * 10 + (unsigned long)(*q - '0') : v;
				n = v > n ? v : n;
				if (*q == ',')
					q++;
			}
			if (*q == '}' && q > s + 1) {
				times = n + 1;
				s = q;
			}
			break;
		}
		case '\\':
			if (s[1] >= '1' && s[1] <= '9')
				return "back references are not supported";
			if (s[1])
				s++;
			break;
		case '[': /* a bracket expression is one node: skip to its ']' */
			s += s[1] == '^';
			s += s[1] == ']';
			while (s[1] && s[1] != ']')
				s++;
			if (s[1])
				s++;
			break;
		default:
			break;
		}
		if (times && quantified)
			return "a quantifier right after another is not supported";
		if (times) {
			st[d].last = st[d].last * times + 1;
		} else if (!op) {
			st[d].done += st[d].last;
			st[d].last = 1;
		}
		quantified = times > 0;
		if (st[d].last > HBA_MAX_REGEX_NODES || st[d].done > HBA_MAX_REGEX_NODES)
			return too_large;
	}
	unsigned long total = 0;
	for (; d >= 0; d--)
		total += st[d].done + st[d].last;
	return total <= HBA_MAX_REGEX_NODES ? NULL : too_large;
}

/* A line of auth_ident_file: MAPNAME SYSTEM-USERNAME DATABASE-USERNAME. */
static bool ident_line(struct parser *p, void *arg)
{
	struct hba *h = arg;
	if (p->nf != 3)
		return fail(p, "%s: an ident map line is MAPNAME SYSTEM-USERNAME DATABASE-USERNAME",
			    p->nf < 3 ? "missing field" : "extra field");
	for (int i = 0; i < 3; i++)
		if (p->f[i].n != 1)
			return fail(p, "an ident map field cannot be a list");
	const struct token *sys = tok(p, 1, 0), *user = tok(p, 2, 0);
	struct ident id = {.regex = sys->text[0] == '/'};
	if (id.regex) {
		const char *bad =
		    strlen(sys->text) > HBA_MAX_REGEX ? "too long" : regex_check(sys->text + 1);
		if (bad)
			return fail(p, "regular expression \"%.100s\": %s", sys->text + 1, bad);
		int rc = regcomp(&id.re, sys->text + 1, REG_EXTENDED);
		if (rc != 0) {
			char why[256];
			regerror(rc, &id.re, why, sizeof(why));
			return fail(p, "invalid regular expression \"%s\": %s", sys->text + 1, why);
		}
		if (strstr(user->text, "\\1") && id.re.re_nsub == 0) {
			regfree(&id.re);
			return fail(p, "regular expression \"%s\" has no group for the \\1 in "
				       "\"%s\"", sys->text + 1, user->text);
		}
	}
	int mi = find_map(h, tok(p, 0, 0)->text);
	if (mi < 0) {
		struct hba_map *maps = grow(h->maps, h->nmaps, &h->capmaps, sizeof(*maps));
		if (!maps)
			goto oom;
		h->maps = maps;
		h->maps[h->nmaps] = (struct hba_map){0};
		if (!(h->maps[h->nmaps].name = strdup(tok(p, 0, 0)->text)))
			goto oom;
		mi = h->nmaps++;
	}
	struct hba_map *map = &h->maps[mi];
	struct ident *lines = grow(map->lines, map->n, &map->cap, sizeof(*lines));
	if (!lines)
		goto oom;
	map->lines = lines;
	id.system_user = strdup(sys->text + id.regex);
	bool all = !user->quoted && strcmp(user->text, "all") == 0;
	if (!all)
		id.user = strdup(user->text);
	if (!id.system_user || (!all && !id.user))
		goto oom;
	map->lines[map->n++] = id;
	return true;
oom:
	ident_free(&id);
	return fail(p, "out of memory");
}

bool hba_map_allows(const struct hba_map *map, const char *system_user, const char *user)
{
	if (!map)
		return strcmp(system_user, user) == 0;
	for (int i = 0; i < map->n; i++) {
		const struct ident *id = &map->lines[i];
		regmatch_t m[2] = {{0}};
		if (!id->regex ? strcmp(id->system_user, system_user) != 0
			       : regexec(&id->re, system_user, 2, m, 0) != 0)
			continue;
		if (!id->user)
			return true;
		const char *ref = id->regex ? strstr(id->user, "\\1") : NULL;
		if (!ref) {
			if (strcmp(id->user, user) == 0)
				return true;
			continue;
		}
		if (m[1].rm_so < 0)
			continue; /* an optional group that took no part */
		/* the user with its first \1 replaced by the group's text, compared in place */
		size_t pre = (size_t)(ref - id->user), glen = (size_t)(m[1].rm_eo - m[1].rm_so);
		if (strncmp(user, id->user, pre) == 0 &&
		    strncmp(user + pre, system_user + m[1].rm_so, glen) == 0 &&
		    strcmp(user + pre + glen, ref + 2) == 0)
			return true;
	}
	return false;
}

const char *hba_map_name(const struct hba_map *map) { return map ? map->name : ""; }

/* ---- the whole ------------------------------------------------------------------------ */

void hba_free(struct hba *h)
{
	if (!h)
		return;
	for (int i = 0; i < h->n; i++)
		rule_free(&h->rules[i]);
	free(h->rules);
	for (int i = 0; i < h->nmaps; i++) {
		for (int j = 0; j < h->maps[i].n; j++)
			ident_free(&h->maps[i].lines[j]);
		free(h->maps[i].lines);
		free(h->maps[i].name);
	}
	free(h->maps);
	free(h);
}

/* Parses IDENT_TEXT (NULL: none) then TEXT, both in place; on failure *IN_IDENT says
 * which one failed. */
static struct hba *parse_texts(char *text, const char *name, char *ident_text,
			       const char *ident_name, char *err, size_t errlen, bool *in_ident)
{
	struct hba *h = calloc(1, sizeof(*h));
	struct parser ip = {.name = ident_name, .err = err, .errlen = errlen};
	struct parser p = {.name = name, .err = err, .errlen = errlen};
	struct rules_arg a = {h, ident_text ? ident_name : NULL};
	*in_ident = ident_text != NULL;
	bool ok = h != NULL;
	if (!ok)
		fail(*in_ident ? &ip : &p, "out of memory");
	else if (ident_text)
		ok = parse_lines(&ip, ident_text, ident_line, h);
	if (ok) {
		*in_ident = false;
		ok = parse_lines(&p, text, rule_line, &a);
	}
	parser_free(&ip);
	parser_free(&p);
	if (!ok) {
		hba_free(h);
		return NULL;
	}
	return h;
}

struct hba *hba_parse(const char *text, const char *name, const char *ident_text,
		      const char *ident_name, char *err, size_t errlen)
{
	char *buf = strdup(text), *ibuf = ident_text ? strdup(ident_text) : NULL;
	struct hba *h = NULL;
	bool in_ident;
	if (!buf || (ident_text && !ibuf))
		snprintf(err, errlen, "%s: out of memory", name);
	else
		h = parse_texts(buf, name, ibuf, ident_name, err, errlen, &in_ident);
	free(buf);
	free(ibuf);
	return h;
}

struct hba *hba_load(const char *path, const char *ident_path, char *err, size_t errlen)
{
	char why[1024];
	char *text = NULL, *ident_text = NULL;
	struct hba *h = NULL;
	bool in_ident = ident_path && *ident_path;
	if (in_ident && !(ident_text = read_file(ident_path, why, sizeof(why)))) {
		snprintf(err, errlen, "auth_ident_file: %s: %s", ident_path, why);
		return NULL;
	}
	if (!(text = read_file(path, why, sizeof(why)))) {
		snprintf(err, errlen, "auth_hba_file: %s: %s", path, why);
		goto out;
	}
	h = parse_texts(text, path, ident_text, ident_path, why, sizeof(why), &in_ident);
	if (!h)
		snprintf(err, errlen, "%s: %s", in_ident ? "auth_ident_file" : "auth_hba_file",
			 why);
out:
	free(text);
	free(ident_text);
	return h;
}

int hba_count(const struct hba *h) { return h ? h->n : 0; }

/* ---- matching ------------------------------------------------------------------------- */

/* NAME is in L (PAIR, the other name of the connection, for sameuser). */
static bool list_match(const struct list *l, const char *name, const char *pair)
{
	for (int i = 0; i < l->n; i++) {
		const struct item *it = &l->items[i];
		switch (it->kind) {
		case IT_ALL:
			return true;
		case IT_SAMEUSER:
			if (strcmp(name, pair) == 0)
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

enum hba_method hba_match(const struct hba *h, const struct hba_conn *c, int *line,
			  const struct hba_map **map, const struct ldapauth_opts **ldap)
{
	*line = 0;
	if (map)
		*map = NULL;
	if (ldap)
		*ldap = NULL;
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
		if (!db_ok || !list_match(&r->users, c->user, c->database))
			continue;
		*line = r->line;
		if (map && r->map >= 0)
			*map = &h->maps[r->map];
		if (ldap)
			*ldap = r->ldap;
		return r->method;
	}
	return HBA_NO_MATCH;
}

/* Owns LDAP authentication (ldapauth.h): its options (parsed from auth_ldap_options or an
 * hba rule, checked when loaded), and the check PostgreSQL's CheckLDAPAuth makes, run on
 * an executor thread: a connection to the servers listed (or found by DNS SRV), StartTLS
 * when asked, then a simple bind as prefix + user + suffix, or a search (as ldapbinddn,
 * else anonymous) for the user's one entry and a bind as its DN. Every connection and
 * operation is bounded by the caller's timeout, so a server that is down or hangs makes a
 * login fail, never wait forever. */
#include "ldapauth.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>
#include <openssl/crypto.h>

#define LDAPAUTH_MAX_URIS 4096   /* the URI list built from ldapserver */
#define LDAPAUTH_MAX_FILTER 1024 /* a search filter, the user name escaped in it */

struct ldapauth_opts *ldapauth_new(void)
{
	struct ldapauth_opts *o = calloc(1, sizeof(*o));
	if (o)
		o->scope = LDAP_SCOPE_SUBTREE;
	return o;
}

/* The string options: their keys and fields. */
static const struct {
	const char *key;
	size_t off;
} str_opts[] = {
    {"ldapserver", offsetof(struct ldapauth_opts, server)},
    {"ldapscheme", offsetof(struct ldapauth_opts, scheme)},
    {"ldapprefix", offsetof(struct ldapauth_opts, prefix)},
    {"ldapsuffix", offsetof(struct ldapauth_opts, suffix)},
    {"ldapbasedn", offsetof(struct ldapauth_opts, basedn)},
    {"ldapbinddn", offsetof(struct ldapauth_opts, binddn)},
    {"ldapbindpasswd", offsetof(struct ldapauth_opts, bindpasswd)},
    {"ldapsearchattribute", offsetof(struct ldapauth_opts, searchattribute)},
    {"ldapsearchfilter", offsetof(struct ldapauth_opts, searchfilter)},
};
#define NSTR (sizeof(str_opts) / sizeof(str_opts[0]))

/* The field of string option I of O. */
static char **field_at(const struct ldapauth_opts *o, size_t i)
{
	return (char **)(void *)((char *)(uintptr_t)o + str_opts[i].off);
}

void ldapauth_free(struct ldapauth_opts *o)
{
	if (!o)
		return;
	if (o->bindpasswd)
		OPENSSL_cleanse(o->bindpasswd, strlen(o->bindpasswd));
	for (size_t i = 0; i < NSTR; i++)
		free(*field_at(o, i));
	free(o);
}

struct ldapauth_opts *ldapauth_dup(const struct ldapauth_opts *o)
{
	struct ldapauth_opts *d = ldapauth_new();
	if (!d)
		return NULL;
	d->port = o->port;
	d->tls = o->tls;
	d->scope = o->scope;
	for (size_t i = 0; i < NSTR; i++) {
		const char *v = *field_at(o, i);
		if (v && !(*field_at(d, i) = strdup(v))) {
			ldapauth_free(d);
			return NULL;
		}
	}
	return d;
}

/* *F = a copy of VALUE (what it held freed). */
static bool set_str(char **f, const char *value, char *err, size_t errlen)
{
	char *copy = strdup(value);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	free(*f);
	*f = copy;
	return true;
}

/* ldapurl=VALUE: scheme, host, port, base DN, the first attribute, scope and filter, as
 * PostgreSQL takes them. */
static bool set_url(struct ldapauth_opts *o, const char *value, char *err, size_t errlen)
{
	LDAPURLDesc *u = NULL;
	int rc = ldap_url_parse(value, &u);
	if (rc != LDAP_URL_SUCCESS) {
		snprintf(err, errlen, "could not parse LDAP URL \"%s\"", value);
		return false;
	}
	bool ok = true;
	if (strcmp(u->lud_scheme, "ldap") != 0 && strcmp(u->lud_scheme, "ldaps") != 0) {
		snprintf(err, errlen, "unsupported LDAP URL scheme: %s", u->lud_scheme);
		ok = false;
	}
	ok = ok && set_str(&o->scheme, u->lud_scheme, err, errlen);
	ok = ok && (!u->lud_host || set_str(&o->server, u->lud_host, err, errlen));
	o->port = u->lud_port;
	ok = ok && (!u->lud_dn || set_str(&o->basedn, u->lud_dn, err, errlen));
	ok = ok && (!u->lud_attrs || !u->lud_attrs[0] ||
	            set_str(&o->searchattribute, u->lud_attrs[0], err, errlen));
	o->scope = u->lud_scope;
	ok = ok && (!u->lud_filter || set_str(&o->searchfilter, u->lud_filter, err, errlen));
	ldap_free_urldesc(u);
	return ok;
}

bool ldapauth_set(struct ldapauth_opts *o, const char *key, const char *value, char *err,
                  size_t errlen)
{
	if (strcmp(key, "ldapscheme") == 0 && strcmp(value, "ldap") != 0 &&
	    strcmp(value, "ldaps") != 0) {
		snprintf(err, errlen, "invalid ldapscheme value: \"%s\"", value);
		return false;
	}
	for (size_t i = 0; i < NSTR; i++)
		if (strcmp(key, str_opts[i].key) == 0)
			return set_str(field_at(o, i), value, err, errlen);
	if (strcmp(key, "ldaptls") == 0) {
		o->tls = strcmp(value, "1") == 0; /* PostgreSQL's and PgBouncer's reading */
		return true;
	}
	if (strcmp(key, "ldapport") == 0) {
		char *end;
		long port = strtol(value, &end, 10);
		if (!*value || *end || port < 1 || port > 65535) {
			snprintf(err, errlen, "invalid LDAP port number: \"%s\"", value);
			return false;
		}
		o->port = (int)port;
		return true;
	}
	if (strcmp(key, "ldapurl") == 0)
		return set_url(o, value, err, errlen);
	snprintf(err, errlen, "invalid LDAP option: \"%s\"", key);
	return false;
}

bool ldapauth_validate(const struct ldapauth_opts *o, char *err, size_t errlen)
{
	if (o->prefix || o->suffix) {
		if (o->basedn || o->binddn || o->bindpasswd || o->searchattribute ||
		    o->searchfilter) {
			snprintf(err, errlen,
			         "cannot mix options for simple bind and search+bind "
			         "modes");
			return false;
		}
	} else if (!o->basedn) {
		snprintf(err, errlen,
		         "authentication method \"ldap\" requires argument "
		         "\"ldapbasedn\", \"ldapprefix\", or \"ldapsuffix\" to be set");
		return false;
	}
	if (o->searchattribute && o->searchfilter) {
		snprintf(err, errlen,
		         "cannot use ldapsearchattribute together with "
		         "ldapsearchfilter");
		return false;
	}
	if ((!o->server || !o->server[0]) && (!o->basedn || !o->basedn[0])) {
		snprintf(err, errlen, "LDAP server not specified, and no ldapbasedn");
		return false;
	}
	return true;
}

/* Reads one key or value at *SP into OUT (room for CAP bytes, which TEXT's length never
 * exceeds): in double quotes ("" inside is a quote), else up to a blank, a comma or, for a
 * key (KEY), an '='. False for an unterminated quote. */
static bool read_word(const char **sp, char *out, size_t cap, bool key)
{
	const char *s = *sp;
	size_t n = 0;
	if (*s == '"') {
		for (s++; *s && !(*s == '"' && s[1] != '"'); s++) {
			s += *s == '"'; /* "" */
			if (n + 1 < cap)
				out[n++] = *s;
		}
		if (*s != '"')
			return false;
		s++;
	} else {
		for (; *s && !strchr(" \t\r\n,", *s) && !(key && *s == '='); s++)
			if (n + 1 < cap)
				out[n++] = *s;
	}
	out[n] = 0;
	*sp = s;
	return true;
}

struct ldapauth_opts *ldapauth_parse(const char *text, char *err, size_t errlen)
{
	struct ldapauth_opts *o = ldapauth_new();
	size_t cap = strlen(text) + 1;
	char *val = malloc(cap); /* the value being read (a bind password, maybe) */
	bool ok = o && val;
	if (!ok)
		snprintf(err, errlen, "out of memory");
	for (const char *s = text; ok;) {
		s += strspn(s, " \t\r\n,");
		if (!*s)
			break;
		char key[64];
		if (!read_word(&s, key, sizeof(key), true) || *s != '=' || !key[0]) {
			snprintf(err, errlen, "expected KEY=VALUE at \"%.40s\"", s);
			ok = false;
		} else if (s++, !read_word(&s, val, cap, false)) {
			snprintf(err, errlen, "unterminated quoted value of %s", key);
			ok = false;
		} else if (!val[0]) {
			snprintf(err, errlen, "no value for %s", key);
			ok = false;
		} else {
			ok = ldapauth_set(o, key, val, err, errlen);
		}
	}
	ok = ok && ldapauth_validate(o, err, errlen);
	if (val)
		OPENSSL_cleanse(val, cap);
	free(val);
	if (ok)
		return o;
	ldapauth_free(o);
	return NULL;
}

bool ldapauth_user_ok(const char *user)
{
	return strpbrk(user, "*()\\/") == NULL;
}

bool ldapauth_filter(const char *filter, const char *user, char *out, size_t outlen)
{
	static const char ph[] = "$username";
	size_t n = 0;
	for (const char *f = filter; *f;) {
		if (strncmp(f, ph, sizeof(ph) - 1) != 0) {
			if (n + 1 >= outlen)
				return false;
			out[n++] = *f++;
			continue;
		}
		f += sizeof(ph) - 1;
		for (const char *u = user; *u; u++) {
			bool esc = *u == '*' || *u == '(' || *u == ')' || *u == '\\';
			if (n + (esc ? 3 : 1) >= outlen)
				return false;
			if (esc)
				n += (size_t)snprintf(out + n, outlen - n, "\\%02x",
				                      (unsigned char)*u);
			else
				out[n++] = *u;
		}
	}
	if (n >= outlen)
		return false;
	out[n] = 0;
	return true;
}

void ldapauth_init(void)
{
	int version;
	(void)ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version); /* its globals */
}

/* ---- the check (an executor thread) -------------------------------------------------- */

static enum ldapauth_result fail_why(char *why, size_t whylen, enum ldapauth_result r,
                                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum ldapauth_result fail_why(char *why, size_t whylen, enum ldapauth_result r,
                                     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return r;
}

/* What an LDAP result code means for the login: the server's absence or silence is
 * LDAPAUTH_UNAVAILABLE, any other failure a refusal. */
static enum ldapauth_result of_code(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR ||
	               rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY
	           ? LDAPAUTH_UNAVAILABLE
	           : LDAPAUTH_DENIED;
}

/* Opens *LD to O's servers (their URIs: ldapserver's hosts with the port, or the DNS SRV
 * records of ldapbasedn's domain), LDAP v3, the timeouts set, StartTLS done when asked. */
static enum ldapauth_result connect_ldap(const struct ldapauth_opts *o, int timeout_ms, LDAP **ld,
                                         char *why, size_t whylen)
{
	const char *scheme = o->scheme ? o->scheme : "ldap";
	int port = o->port ? o->port : strcmp(scheme, "ldaps") == 0 ? LDAPS_PORT : LDAP_PORT;
	char uris[LDAPAUTH_MAX_URIS];
	size_t n = 0;
	char *hostlist = NULL;
	const char *p = o->server;
	bool with_port = true;
	*ld = NULL;
	if (!p || !*p) {
		char *domain = NULL;
		if (ldap_dn2domain(o->basedn, &domain) != 0 || !domain)
			return fail_why(why, whylen, LDAPAUTH_DENIED,
			                "could not extract domain name from ldapbasedn");
		int rc = ldap_domain2hostlist(domain, &hostlist);
		ldap_memfree(domain);
		if (rc != LDAP_SUCCESS || !hostlist)
			return fail_why(why, whylen, LDAPAUTH_UNAVAILABLE,
			                "LDAP authentication could not find DNS SRV records for "
			                "ldapbasedn \"%s\"",
			                o->basedn);
		p = hostlist;
		with_port = false;
	}
	uris[0] = 0;
	while (*p) {
		size_t len = strcspn(p, " ");
		int w = with_port ? snprintf(uris + n, sizeof(uris) - n, "%s%s://%.*s:%d",
		                             n ? " " : "", scheme, (int)len, p, port)
		                  : snprintf(uris + n, sizeof(uris) - n, "%s%s://%.*s",
		                             n ? " " : "", scheme, (int)len, p);
		if (w < 0 || (size_t)w >= sizeof(uris) - n) {
			ldap_memfree(hostlist);
			return fail_why(why, whylen, LDAPAUTH_DENIED, "ldapserver is too long");
		}
		n += (size_t)w;
		p += len;
		while (*p == ' ')
			p++;
	}
	ldap_memfree(hostlist);
	int rc = ldap_initialize(ld, uris);
	if (rc != LDAP_SUCCESS) {
		*ld = NULL;
		return fail_why(why, whylen, LDAPAUTH_DENIED, "could not initialize LDAP: %s",
		                ldap_err2string(rc));
	}
	int version = LDAP_VERSION3;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	if ((rc = ldap_set_option(*ld, LDAP_OPT_PROTOCOL_VERSION, &version)) != LDAP_OPT_SUCCESS ||
	    (timeout_ms > 0 &&
	     ((rc = ldap_set_option(*ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS ||
	      (rc = ldap_set_option(*ld, LDAP_OPT_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS)))
		return fail_why(why, whylen, LDAPAUTH_DENIED, "could not set LDAP options: %s",
		                ldap_err2string(rc));
	if (o->tls && (rc = ldap_start_tls_s(*ld, NULL, NULL)) != LDAP_SUCCESS)
		return fail_why(why, whylen, of_code(rc),
		                "could not start LDAP TLS session on %s: %s", uris,
		                ldap_err2string(rc));
	return LDAPAUTH_OK;
}

static int simple_bind(LDAP *ld, const char *dn, const char *password)
{
	struct berval cred = {strlen(password), (char *)password};
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

static void close_ldap(LDAP *ld)
{
	if (ld)
		(void)ldap_unbind_ext_s(ld, NULL, NULL);
}

/* Search+bind's first half: the DN of USER's one entry into *DN (ldap_memfree it). */
static enum ldapauth_result find_dn(const struct ldapauth_opts *o, LDAP *ld, const char *user,
                                    int timeout_ms, char **dn, char *why, size_t whylen)
{
	const char *server = o->server ? o->server : "(DNS SRV)";
	int rc = simple_bind(ld, o->binddn ? o->binddn : "", o->bindpasswd ? o->bindpasswd : "");
	if (rc != LDAP_SUCCESS)
		return fail_why(why, whylen, of_code(rc),
		                "could not perform initial LDAP bind for ldapbinddn \"%s\" on "
		                "server \"%s\": %s",
		                o->binddn ? o->binddn : "", server, ldap_err2string(rc));
	char filter[LDAPAUTH_MAX_FILTER], pattern[LDAPAUTH_MAX_FILTER];
	char *attrs[2] = {(char *)LDAP_NO_ATTRS, NULL};
	if (o->searchfilter) {
		snprintf(pattern, sizeof(pattern), "%s", o->searchfilter);
	} else {
		const char *attr = o->searchattribute ? o->searchattribute : "uid";
		snprintf(pattern, sizeof(pattern), "(%s=$username)", attr);
	}
	if (!ldapauth_filter(pattern, user, filter, sizeof(filter)))
		return fail_why(why, whylen, LDAPAUTH_DENIED, "LDAP search filter too long");
	LDAPMessage *res = NULL;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	rc = ldap_search_ext_s(ld, o->basedn, o->scope, filter, attrs, 0, NULL, NULL,
	                       timeout_ms > 0 ? &tv : NULL, LDAP_NO_LIMIT, &res);
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return fail_why(why, whylen, of_code(rc),
		                "could not search LDAP for filter \"%s\" on server \"%s\": %s",
		                filter, server, ldap_err2string(rc));
	}
	int count = ldap_count_entries(ld, res);
	if (count != 1) {
		ldap_msgfree(res);
		return fail_why(why, whylen, LDAPAUTH_DENIED,
		                "LDAP user \"%s\" %s: search for filter \"%s\" on server \"%s\" "
		                "returned %d entries",
		                user, count == 0 ? "does not exist" : "is not unique", filter,
		                server, count);
	}
	*dn = ldap_get_dn(ld, ldap_first_entry(ld, res));
	ldap_msgfree(res);
	if (!*dn)
		return fail_why(why, whylen, LDAPAUTH_DENIED,
		                "could not get dn for the first entry matching \"%s\" on server "
		                "\"%s\"",
		                filter, server);
	return LDAPAUTH_OK;
}

enum ldapauth_result ldapauth_check(const struct ldapauth_opts *o, const char *user,
                                    const char *password, int timeout_ms, char *why, size_t whylen)
{
	why[0] = 0;
	if (!password[0])
		return fail_why(why, whylen, LDAPAUTH_DENIED, "empty password");
	if (!ldapauth_user_ok(user))
		return fail_why(why, whylen, LDAPAUTH_DENIED,
		                "invalid character in user name for LDAP authentication");
	LDAP *ld;
	enum ldapauth_result r = connect_ldap(o, timeout_ms, &ld, why, whylen);
	if (r != LDAPAUTH_OK) {
		close_ldap(ld);
		return r;
	}
	char *found = NULL, *made = NULL;
	const char *dn;
	if (o->basedn) {
		r = find_dn(o, ld, user, timeout_ms, &found, why, whylen);
		close_ldap(ld); /* a new connection binds as the user */
		ld = NULL;
		if (r == LDAPAUTH_OK)
			r = connect_ldap(o, timeout_ms, &ld, why, whylen);
		dn = found;
	} else {
		size_t len = strlen(user) + (o->prefix ? strlen(o->prefix) : 0) +
		             (o->suffix ? strlen(o->suffix) : 0) + 1;
		if ((made = malloc(len)))
			snprintf(made, len, "%s%s%s", o->prefix ? o->prefix : "", user,
			         o->suffix ? o->suffix : "");
		else
			r = fail_why(why, whylen, LDAPAUTH_UNAVAILABLE, "out of memory");
		dn = made;
	}
	if (r == LDAPAUTH_OK) {
		int rc = simple_bind(ld, dn, password);
		if (rc != LDAP_SUCCESS)
			r = fail_why(why, whylen, of_code(rc),
			             "LDAP login failed for user \"%s\" on server \"%s\": %s", dn,
			             o->server ? o->server : "(DNS SRV)", ldap_err2string(rc));
	}
	close_ldap(ld);
	ldap_memfree(found);
	free(made);
	return r;
}

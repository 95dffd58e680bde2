/* LDAP authentication (auth_type ldap, auth_ldap_options; hba "ldap" rules), with
 * PostgreSQL's options and meaning as PgBouncer 1.25 takes them: simple bind (ldapprefix,
 * ldapsuffix: the DN is prefix + user name + suffix) or search+bind (ldapbasedn,
 * ldapbinddn, ldapbindpasswd, ldapsearchattribute or ldapsearchfilter, or all of them from
 * ldapurl: a search as binddn, or anonymously, finds the user's one entry, whose DN then
 * binds with the password); ldapserver (blank-separated hosts; none: DNS SRV records of
 * ldapbasedn's domain), ldapport, ldapscheme (ldap or ldaps), ldaptls (1: StartTLS).
 * Options are parsed and checked when the configuration is loaded (ldapauth_set,
 * ldapauth_parse, ldapauth_validate); the check itself (ldapauth_check) blocks on the
 * network and runs on an executor thread. */
#ifndef PGCORO_LDAPAUTH_H
#define PGCORO_LDAPAUTH_H

#include <stdbool.h>
#include <stddef.h>

/* One method's options; strings NULL when unset. */
struct ldapauth_opts {
	char *server;          /* ldapserver: hosts separated by blanks */
	int port;              /* ldapport; 0 = the scheme's (389, ldaps 636) */
	char *scheme;          /* ldapscheme: "ldap" or "ldaps" */
	bool tls;              /* ldaptls=1: StartTLS before binding */
	char *prefix, *suffix; /* simple bind */
	char *basedn, *binddn, *bindpasswd, *searchattribute, *searchfilter; /* search+bind */
	int scope; /* LDAP_SCOPE_*: subtree unless ldapurl says otherwise */
};

enum ldapauth_result {
	LDAPAUTH_OK,          /* the password binds as the user */
	LDAPAUTH_DENIED,      /* it does not, or the user is unknown, not unique, or refused */
	LDAPAUTH_UNAVAILABLE, /* the server could not be reached, or did not answer in time */
};

/* Empty options (search scope subtree); NULL without memory. */
struct ldapauth_opts *ldapauth_new(void) __attribute__((warn_unused_result));

/* A deep copy of O (a check owns one: a reload may free the rule it came from); NULL
 * without memory. */
struct ldapauth_opts *ldapauth_dup(const struct ldapauth_opts *o)
    __attribute__((warn_unused_result));

/* Frees O (NULL is fine); the bind password is cleansed first. */
void ldapauth_free(struct ldapauth_opts *o);

/* Sets option KEY to VALUE in O (ldapurl sets several). False with the reason in ERR for
 * an unknown key, a bad value or no memory. */
bool ldapauth_set(struct ldapauth_opts *o, const char *key, const char *value, char *err,
                  size_t errlen) __attribute__((warn_unused_result));

/* Parses TEXT, auth_ldap_options' value as PgBouncer reads it: KEY=VALUE pairs separated
 * by blanks or commas, KEY or VALUE in double quotes ("" inside them is a quote) when
 * they hold blanks or commas; then ldapauth_validate. NULL with the reason in ERR. */
struct ldapauth_opts *ldapauth_parse(const char *text, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether O is a usable set, PostgreSQL's rules: simple bind or search+bind options, not
 * both; one of ldapbasedn, ldapprefix, ldapsuffix; not ldapsearchattribute with
 * ldapsearchfilter. False with the reason in ERR. */
bool ldapauth_validate(const struct ldapauth_opts *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Whether USER may be checked: it holds none of the characters PostgreSQL refuses in an
 * LDAP user name (* ( ) \ /), which would change a search filter or a DN. */
bool ldapauth_user_ok(const char *user);

/* Writes FILTER with every $username replaced by USER escaped as RFC 4515 says (* ( ) \
 * as \XX) into OUT (OUTLEN bytes). False when it does not fit. Pure. */
bool ldapauth_filter(const char *filter, const char *user, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Once, on the main thread before any check: libldap's global state. */
void ldapauth_init(void);

/* Any thread (blocks on the network): checks PASSWORD of USER against the LDAP server O
 * names, each connection and operation bounded by TIMEOUT_MS (0: libldap's, none). An
 * empty PASSWORD, or a USER ldapauth_user_ok refuses, is LDAPAUTH_DENIED without asking
 * (an empty password would be an anonymous bind, which succeeds). Why it is not
 * LDAPAUTH_OK goes into WHY (for the log: it may name the DN). Touches only its arguments
 * and its own connections. */
enum ldapauth_result ldapauth_check(const struct ldapauth_opts *o, const char *user,
                                    const char *password, int timeout_ms, char *why, size_t whylen)
    __attribute__((warn_unused_result));

#endif

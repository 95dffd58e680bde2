/* auth_hba_file and auth_ident_file: rules in pg_hba.conf syntax (what PgBouncer accepts)
 * that choose the authentication method of a connection, and the ident maps (pg_ident.conf
 * syntax) their map= option names for peer and cert. Pure code: no I/O except reading the
 * files in hba_load and @file, and a warning logged for a rule that can never match. */
#ifndef PGCORO_HBA_H
#define PGCORO_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hba;
struct hba_map;
struct ldapauth_opts;

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_PASSWORD, /* cleartext, checked against auth_file */
	HBA_MD5,      /* md5 (SCRAM when the stored secret is a SCRAM verifier) */
	HBA_SCRAM,    /* scram-sha-256 */
	HBA_CERT,     /* TLS client certificate: its CN is the user, or maps to it (map=) */
	HBA_PEER,     /* unix sockets: the peer's OS user is the user, or maps to it (map=) */
	HBA_ANY,      /* auth_type any only (not in a rule, as PgBouncer): no authentication */
	HBA_PAM,      /* auth_type pam only (not in a rule, as PgBouncer): cleartext, PAM */
	HBA_LDAP,     /* cleartext, checked by an LDAP bind with the rule's options (ldapauth.h) */
	HBA_NO_MATCH = -1,
};

/* The connection a rule is matched against. */
struct hba_conn {
	bool unix_socket;     /* true: "local" rules; else TCP ("host", "hostssl", "hostnossl") */
	bool tls;             /* the connection uses TLS */
	int family;           /* AF_INET or AF_INET6 (TCP only) */
	const uint8_t *addr;  /* 4 or 16 bytes, network order (TCP only) */
	const char *database;
	const char *user;
	bool physical_replication; /* replication=true: only rules naming "replication" match,
	                            * whatever the database (PostgreSQL's check_db) */
};

/* Reads PATH: one rule per line, "local DATABASE USER METHOD [map=NAME]" or
 * "host|hostssl|hostnossl DATABASE USER ADDRESS METHOD [map=NAME]". ADDRESS is a CIDR, an
 * address followed by a mask field, or "all". DATABASE and USER are comma lists (blanks
 * allowed around the commas) of names ("quoted" names lose keyword meaning), "all",
 * "sameuser" and "replication" (databases: matches physical replication connections
 * only, which match nothing else; a logical one, replication=database, matches as a
 * normal connection) or "@file" (names from a file, relative to the including
 * file's directory, keywords as in the field). A rule naming a role group ("+group",
 * "samerole", "samegroup") never matches, as PgBouncer skips it (logged as a warning),
 * unless it is a reject rule: that is refused. '#' starts a comment; a line ending in a
 * backslash continues. map= names an ident map of IDENT_PATH (NULL or "": none; any
 * method takes it, as PgBouncer's; peer and cert use it; an ldap rule takes LDAP options
 * name=value instead, ldapauth_set's, checked by ldapauth_validate): lines "MAP SYSTEM-USER
 * DATABASE-USER" where SYSTEM-USER "/regex" is a POSIX extended regular expression
 * (refused with back references, a quantifier right after another, or too large once
 * compiled) whose first group replaces "\1" in DATABASE-USER, and an unquoted
 * DATABASE-USER "all" is any user. Only regular files are read (a fifo would block).
 * Returns NULL on failure with
 * "auth_hba_file: path:line: reason" (or auth_ident_file, or "path: reason") in ERR. */
struct hba *hba_load(const char *path, const char *ident_path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* As hba_load over TEXT and IDENT_TEXT (NULL: no ident maps); NAME and IDENT_NAME are used
 * in messages, NAME also to resolve @file. ERR gets "name:line: reason". */
struct hba *hba_parse(const char *text, const char *name, const char *ident_text,
		      const char *ident_name, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void hba_free(struct hba *h);

/* The method of the first rule matching CONN, or HBA_NO_MATCH; *LINE gets the rule's line
 * (0 when none matched), *MAP (when MAP is not NULL) the rule's ident map, NULL when it
 * has none, and *LDAP (when LDAP is not NULL) an ldap rule's options, else NULL. Both live
 * as long as H. */
enum hba_method hba_match(const struct hba *h, const struct hba_conn *conn, int *line,
			  const struct hba_map **map, const struct ldapauth_opts **ldap);

/* Whether SYSTEM_USER (a certificate's CN, a peer's OS user) may log in as USER: with MAP,
 * a line of MAP maps one to the other; without (NULL), they are equal. */
bool hba_map_allows(const struct hba_map *map, const char *system_user, const char *user);

const char *hba_map_name(const struct hba_map *map);

int hba_count(const struct hba *h);

const char *hba_method_name(enum hba_method m);

#endif

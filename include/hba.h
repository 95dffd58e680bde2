/* auth_hba_file: rules in pg_hba.conf syntax (PgBouncer's subset) that choose the
 * authentication method of a connection. Pure code: no I/O except reading the files in
 * hba_load. */
#ifndef PGCORO_HBA_H
#define PGCORO_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hba;

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_PASSWORD, /* cleartext, checked against auth_file */
	HBA_MD5,      /* md5 (SCRAM when the stored secret is a SCRAM verifier) */
	HBA_SCRAM,    /* scram-sha-256 */
	HBA_CERT,     /* the TLS client certificate's CN must be the user */
	HBA_PEER,     /* unix sockets: the OS user of the peer must be the user */
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

/* Reads PATH: one rule per line, "local DATABASE USER METHOD" or
 * "host|hostssl|hostnossl DATABASE USER ADDRESS METHOD" where ADDRESS is a CIDR, an
 * address followed by a mask, or "all"; DATABASE and USER are comma lists of names
 * ("quoted" names lose keyword meaning), "all", "sameuser" (databases), "replication"
 * (databases: matches physical replication connections only, which match nothing else;
 * a logical one, replication=database, matches as a normal connection) or "@file" (names
 * from a file, relative to PATH's directory). '#' starts a comment; a line ending in a
 * backslash continues.
 * Returns NULL on failure with "path:line: reason" (or "path: reason") in ERR. */
struct hba *hba_load(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* As hba_load over TEXT (NAME is used in messages and to resolve @file). */
struct hba *hba_parse(const char *text, const char *name, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void hba_free(struct hba *h);

/* The method of the first rule matching CONN, or HBA_NO_MATCH; *LINE gets the rule's line
 * (0 when none matched). */
enum hba_method hba_match(const struct hba *h, const struct hba_conn *conn, int *line);

int hba_count(const struct hba *h);

const char *hba_method_name(enum hba_method m);

#endif

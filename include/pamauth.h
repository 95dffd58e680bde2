/* auth_type pam (PgBouncer's): a client's cleartext password checked by PAM, service
 * "pgbouncer" (PgBouncer's name), pam_authenticate then pam_acct_mgmt, with PAM_RHOST the
 * client's address; the check blocks (a PAM module may sleep, run a program, ask a
 * server), so it runs on the executor as a bulk job (login.c). A password that passed is
 * kept as the one pgcoro logs in to PostgreSQL with as that user, as PgBouncer keeps it
 * (srvconnect_keep_password, LDAP's store too). */
#ifndef PGCORO_PAMAUTH_H
#define PGCORO_PAMAUTH_H

#include <stdbool.h>

#define PAMAUTH_SERVICE "pgbouncer"

/* Reads, once, the directory PAM takes the service file from: PGCORO_PAM_CONFDIR, an
 * environment variable for the tests only (they cannot write /etc/pam.d); unset or
 * empty: PAM's own (/etc/pam.d). Call before the first check is submitted. */
void pamauth_init(void);

/* Any thread (blocks): whether PAM lets USER in with PASSWORD from RHOST (the client's
 * address, "unix" for the unix socket): pam_authenticate and pam_acct_mgmt both succeed.
 * A failure is logged with PAM's reason. Touches nothing but its arguments. */
bool pamauth_check(const char *user, const char *password, const char *rhost)
	__attribute__((warn_unused_result));

#endif

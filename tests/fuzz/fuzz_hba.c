/* Fuzzes the auth_hba_file and auth_ident_file parsers (hba.c: pg_hba.conf syntax as
 * PgBouncer accepts it, pg_ident.conf maps): the input up to its first NUL is the rules,
 * the rest (when there is a NUL) the ident maps. The rules it yields are matched against
 * unix-socket and TCP (IPv4, IPv6, v4-mapped, TLS or not) connections, and each matched
 * rule's map is asked about a few system users. "@file" names resolve in a scratch
 * directory holding users.txt and dbs.txt; inputs that could name a file outside it (an
 * absolute path, "..") are skipped, so nothing else is read. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hba.h"
#include "ldapauth.h"
#include "log.h"
#include "loop.h"

static char name[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fz_write_file("users.txt", "alice, bob\n# a comment\n\"quoted user\" @dbs.txt\n");
	fz_write_file("dbs.txt", "db1 db2\n");
	snprintf(name, sizeof(name), "%s/hba.conf", fz_dir());
	log_set_level(LOGL_ERROR); /* rules naming a role group are logged as warnings */
	return 0;
}

/* TEXT, line continuations removed, could name a file outside the scratch directory. */
static bool may_escape(const char *text)
{
	size_t n = strlen(text);
	char *flat = malloc(n + 1);
	size_t o = 0;
	if (!flat)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\\' && (text[i + 1] == '\n' || (text[i + 1] == '\r' && text[i + 2] == '\n'))) {
			i += text[i + 1] == '\r' ? 2 : 1;
			continue;
		}
		flat[o++] = text[i] == '"' ? '\'' : text[i]; /* quotes vanish inside a name */
	}
	flat[o] = 0;
	bool bad = strstr(flat, "..") != NULL;
	for (char *at = strchr(flat, '@'); at && !bad; at = strchr(at + 1, '@')) {
		const char *f = at + 1;
		while (*f == '\'')
			f++;
		bad = *f == '/';
	}
	free(flat);
	return bad;
}

static void match_all(const struct hba *h)
{
	uint8_t v4[4], v6[16], mapped[16];
	inet_pton(AF_INET, "10.1.2.3", v4);
	inet_pton(AF_INET6, "2001:db8::1", v6);
	inet_pton(AF_INET6, "::ffff:10.1.2.3", mapped);
	static const char *const who[][2] = {{"db1", "alice"}, {"alice", "alice"}, {"x", "bob"},
					     {"replication", "quoted user"}, {"all", "all"}};
	for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
		const struct hba_conn conns[] = {
		    {true, false, AF_UNIX, NULL, who[w][0], who[w][1], false},
		    {false, false, AF_INET, v4, who[w][0], who[w][1], false},
		    {false, true, AF_INET, v4, who[w][0], who[w][1], false},
		    {false, false, AF_INET6, v6, who[w][0], who[w][1], false},
		    {false, true, AF_INET6, mapped, who[w][0], who[w][1], false},
		    /* physical replication: only "replication" rules */
		    {true, false, AF_UNIX, NULL, who[w][0], who[w][1], true},
		    {false, true, AF_INET, v4, who[w][0], who[w][1], true},
		};
		static const char *const system_users[] = {"root", "alice", "bob.example.com",
							   "", "all"};
		for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
			int line = -1;
			const struct hba_map *map = (const struct hba_map *)&line;
			const struct ldapauth_opts *ldap = (const struct ldapauth_opts *)&line;
			enum hba_method m = hba_match(h, &conns[i], &line, &map, &ldap);
			if ((m == HBA_NO_MATCH) != (line == 0) || line < 0 || !hba_method_name(m) ||
			    (m == HBA_NO_MATCH && map) || !hba_map_name(map) ||
			    (m == HBA_LDAP) != (ldap != NULL))
				abort();
			if (ldap && !ldap->basedn && !ldap->prefix && !ldap->suffix)
				abort(); /* ldapauth_validate let it through */
			for (size_t u = 0; map && u < sizeof(system_users) / sizeof(system_users[0]); u++)
				(void)hba_map_allows(map, system_users[u], who[w][1]);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = strndup((const char *)data, size); /* the loader reads C strings */
	size_t len = strlen(text);
	char *ident = len < size ? strndup((const char *)data + len + 1, size - len - 1) : NULL;
	if (!text || (len < size && !ident))
		abort();
	if (!may_escape(text)) {
		char err[512] = "";
		struct hba *h = hba_parse(text, name, ident, "ident.conf", err, sizeof(err));
		if (h) {
			match_all(h);
			if (hba_count(h) < 0)
				abort();
			hba_free(h);
		} else if (!err[0]) {
			abort();
		}
	}
	free(text);
	free(ident);
	return 0;
}

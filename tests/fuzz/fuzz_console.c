/* Fuzzes the admin console through the real client code: each input is one connection
 * that logs in to the database "pgcoro" (auth_type trust) as an admin (byte 0 even) or a
 * stats user (odd) with a fixed startup packet, then sends the rest of the input in
 * chunks of sizes the input chooses (byte N: N+1 bytes follow): console commands (SHOW,
 * SET, PAUSE, RESUME, KILL, RELOAD, SHUTDOWN, ...), split anywhere, and anything else.
 * A pool "db" with one idle server (a socketpair whose end the harness holds) gives SHOW,
 * PAUSE, KILL and RECONNECT something to act on.
 * What a command changes is undone after each input (the config SET or RELOAD replaced,
 * PAUSE/DISABLE state, a SHUTDOWN), so inputs do not depend on each other. Inputs that
 * mention metrics are skipped: SET metrics_listen would open a listening socket; so are
 * those that mention a file or client TLS key: a SET of one reads that file (any path,
 * /dev/zero too) and leaves rt's auth, hba rules or TLS context to the next input. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "loop.h"
#include "pool.h"
#include "server.h"

static const char ini[] = FZ_INI_PGCORO
			  "auth_type = trust\n"
			  "pool_mode = transaction\n"
			  "admin_users = admin\n"
			  "stats_users = stats\n"
			  "[databases]\n"
			  "db = host=@DIR@/no-server port=5432\n"
			  "other = host=@DIR@/no-server port=5432 pool_size=2 pool_mode=session\n"
			  "[users]\n"
			  "alice = pool_mode=statement\n";

static struct runtime *rt;
static pool_t *pool;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	rt = fz_start(fz_write_file("pgcoro.ini", ini));
	pool = pool_get("db", "alice", cfg_find_db(rt->cfg, "db"));
	if (!pool)
		abort();
	fz_pool_ready(pool);
	return 0;
}

/* True if D (N bytes) contains WORD in any case. */
static bool mentions(const uint8_t *d, size_t n, const char *word)
{
	size_t w = strlen(word);
	for (size_t i = 0; i + w <= n; i++) {
		size_t k = 0;
		while (k < w && tolower(d[i + k]) == word[k])
			k++;
		if (k == w)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (mentions(data, size, "metrics") || mentions(data, size, "_file") ||
	    mentions(data, size, "client_tls"))
		return 0;
	struct fz_in in = {data, size};
	struct fz_peer server = {0}, client = {0};
	struct fz_peer *peers[] = {&client, &server};
	fz_pair(&server);
	if (!server_adopt(pool, server.pg_fd))
		abort();
	uint8_t packet[128];
	const char *kv[] = {"user", fz_u8(&in) & 1 ? "stats" : "admin", "database", "pgcoro",
			    "application_name", "fuzz", NULL};
	size_t plen = fz_startup(packet, sizeof(packet), kv);
	fz_client(&client);
	if (!fz_send(&client, packet, plen))
		abort();
	fz_settle();
	while (in.n > 0 && !client.eof) {
		size_t n;
		const uint8_t *chunk = fz_bytes(&in, (size_t)fz_u8(&in) + 1, &n);
		if (!fz_send(&client, chunk, n))
			break;
		fz_settle();
	}
	fz_close(peers, 2);
	fz_undo_commands(fz_base_config(), false);
	if (client_count() != 0 || pool_server_count(pool) != 0) {
		fprintf(stderr, "fuzz_console: %d client(s), %d server(s) left after the input\n",
			client_count(), pool_server_count(pool));
		abort();
	}
	return 0;
}

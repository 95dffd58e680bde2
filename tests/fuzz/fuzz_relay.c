/* Fuzzes the relay in both directions with prepared-statement tracking on, through the
 * real client, relay, prepared-statement and server code, with no PostgreSQL: the server
 * is a socketpair (server_adopt) whose other end the input speaks for.
 *
 * Each input is one session: a server is added idle to the pool, a client logs in with a
 * fixed startup packet (trust; transaction mode: answered at once), then the input's
 * operations run, each followed by the loop until it has nothing left to do:
 *   byte B, then (B >> 1) + 1 bytes: sent by the client (B even) or by the server (B odd).
 * So messages of both sides are split anywhere and interleaved as the input says: a
 * client's Query or extended-protocol pipeline (named statements are tracked and renamed,
 * Parses injected, Closes answered by pgcoro, a barrier Close when tracking starts
 * mid-request) and the server's answers to what pgcoro forwarded. Byte 0 picks the
 * user: "tx" (transaction mode, half the inputs), "stmt" (statement mode) or "sess"
 * (session mode: no tracking). At the end both ends are closed, and the client and the
 * server must have been freed.
 * A server that pgcoro closed is not replaced by a real one: connecting to the configured
 * host fails at once (a path with no socket), and a waiting client is told. */
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
			  "max_prepared_statements = 4\n" /* small: the LRU evicts */
			  "server_login_retry = 0\n"
			  "default_pool_size = 1\n"
			  "[databases]\n"
			  "db = host=@DIR@/no-server port=5432\n"
			  "[users]\n"
			  "stmt = pool_mode=statement\n"
			  "sess = pool_mode=session\n";

static const char *const users[] = {"tx", "stmt", "tx", "sess"}; /* one pool each */
#define NUSERS (sizeof(users) / sizeof(users[0]))

static struct runtime *rt;
static pool_t *pools[NUSERS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	rt = fz_start(fz_write_file("pgcoro.ini", ini));
	for (size_t u = 0; u < NUSERS; u++) {
		pools[u] = pool_get("db", users[u], cfg_find_db(rt->cfg, "db"));
		if (!pools[u])
			abort();
		fz_pool_ready(pools[u]);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	unsigned u = fz_u8(&in) % NUSERS;
	struct fz_peer server = {0}, client = {0};
	struct fz_peer *peers[] = {&client, &server};
	fz_pair(&server);
	if (!server_adopt(pools[u], server.pg_fd))
		abort();
	uint8_t packet[128];
	const char *kv[] = {"user", users[u], "database", "db", NULL};
	size_t plen = fz_startup(packet, sizeof(packet), kv);
	fz_client(&client);
	if (!fz_send(&client, packet, plen))
		abort();
	fz_settle();
	while (in.n > 0 && !(client.eof && server.eof)) {
		uint8_t op = fz_u8(&in);
		size_t n;
		const uint8_t *chunk = fz_bytes(&in, (size_t)(op >> 1) + 1, &n);
		(void)fz_send(op & 1 ? &server : &client, chunk, n); /* a closed side drops it */
		fz_settle();
	}
	fz_close(peers, 2);
	int servers = 0;
	for (size_t i = 0; i < NUSERS; i++)
		servers += pool_server_count(pools[i]);
	if (client_count() != 0 || servers != 0) {
		fprintf(stderr, "fuzz_relay: %d client(s), %d server(s) left after the input\n",
			client_count(), servers);
		abort();
	}
	return 0;
}

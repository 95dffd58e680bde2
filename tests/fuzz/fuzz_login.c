/* Fuzzes the whole login dialog through the real client code: each input is one
 * connection, accepted by client_accept on a socketpair, its bytes written in chunks
 * whose sizes the input chooses (so packets are split anywhere), the event loop run
 * after each chunk, and everything checked freed once the harness closes its end.
 *
 * Input: byte 0 picks auth_type (md5, scram-sha-256, plain, or hba with rules that use
 * every method); then operations:
 *   0x00-0xef  N+1 raw bytes follow, sent as one chunk (startup packets, SSLRequest,
 *              CancelRequest, password and SASL messages, what follows a login);
 *   0xf0-0xff  answer the last Authentication request pgcoro sent as a client knowing
 *              user N's password would (cleartext, md5 with the salt pgcoro chose, SCRAM
 *              client-first then client-final for pgcoro's nonce), so that inputs get past
 *              the random salt and nonce to a successful login.
 * The database "db" has a pool per auth_file user with known parameters (transaction
 * mode: a login is answered at once), paused so no server connection is ever tried;
 * "pgcoro" is the admin console. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "loop.h"
#include "pool.h"
#include "poolctl.h"
#include "proto.h"
#include "scram.h"

/* user, password */
static const char *const users[][2] = {
	{"alice", "alice-pw"}, /* plain secret */
	{"bob", "bob-pw"},     /* md5 secret */
	{"carol", "pencil"},   /* SCRAM verifier */
	{"admin", "admin-pw"}, /* admin console */
	{"stats", "stats-pw"}, /* console, SHOW only */
	{"trustee", ""},       /* hba: trust */
	{"rejected", "x"},     /* hba: reject */
	{"empty", ""},         /* empty secret: never authenticates */
};
#define NUSERS (sizeof(users) / sizeof(users[0]))

#define PENCIL_VERIFIER                                                                            \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                                             \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                            \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const char ini[] = FZ_INI_PGCORO
			  "auth_type = %s\n"
			  "auth_file = @DIR@/userlist.txt\n"
			  "auth_hba_file = @DIR@/hba.conf\n"
			  "pool_mode = transaction\n"
			  "admin_users = admin\n"
			  "stats_users = stats\n"
			  "[databases]\n"
			  "db = host=@DIR@/no-server port=5432\n";

static const char hba_conf[] = "local db trustee trust\n"
			       "local all rejected reject\n"
			       "local all alice,empty password\n"
			       "local all bob,admin md5\n"
			       "local all carol,stats scram-sha-256\n"
			       "local all all peer\n";

#define NMODES 4
static const char *const modes[NMODES] = {"md5", "scram-sha-256", "plain", "hba"};
static const struct config *cfgs[NMODES];
static struct runtime *rt;

/* ---- what pgcoro answers ------------------------------------------------------------- */

static struct {
	uint8_t buf[8192];
	size_t len;
	bool lost;             /* framing lost (or too much to keep): no more answers */
	uint32_t code;         /* the last Authentication request, 0 once answered */
	uint8_t salt[4];       /* md5 */
	char server_first[512]; /* SCRAM */
	char bare[64];         /* our client-first-message-bare */
} got;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Frames what pgcoro sent and keeps its Authentication requests. Its one-byte answers to
 * SSLRequest / GSSENCRequest ('N') are told from a message by the byte after them: a
 * message's length field starts with 0 in a login. */
static void on_output(struct fz_peer *p, const uint8_t *d, size_t n)
{
	if (got.lost)
		return;
	if (n > sizeof(got.buf) - got.len) {
		got.lost = true;
		return;
	}
	memcpy(got.buf + got.len, d, n);
	got.len += n;
	size_t i = 0;
	while (i < got.len) {
		const uint8_t *m = got.buf + i;
		size_t left = got.len - i;
		if (m[0] == 'N' && (left == 1 || m[1] != 0)) {
			i++;
			continue;
		}
		if (left < PROTO_HDR)
			break;
		uint32_t len = be32(m + 1);
		if (len < 4 || len > sizeof(got.buf)) {
			got.lost = true;
			return;
		}
		if (left < (size_t)len + 1)
			break;
		if (m[0] == 'R' && len >= 8) {
			got.code = be32(m + 5);
			if (got.code == AUTH_REQ_MD5 && len == 12)
				memcpy(got.salt, m + 9, 4);
			if (got.code == AUTH_REQ_SASL_CONT && len - 8 < sizeof(got.server_first)) {
				memcpy(got.server_first, m + 9, len - 8);
				got.server_first[len - 8] = 0;
			}
		}
		i += (size_t)len + 1;
	}
	memmove(got.buf, got.buf + i, got.len - i);
	got.len -= i;
}

/* ---- answering as a client ----------------------------------------------------------- */

static void md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[33])
{
	uint8_t h[EVP_MAX_MD_SIZE];
	unsigned hl = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_md5(), NULL) || !EVP_DigestUpdate(ctx, a, alen) ||
	    !EVP_DigestUpdate(ctx, b, blen) || !EVP_DigestFinal_ex(ctx, h, &hl) || hl != 16)
		abort();
	EVP_MD_CTX_free(ctx);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Sends what user U would answer to the last Authentication request. */
static void answer(struct fz_peer *p, unsigned u)
{
	const char *user = users[u][0], *pw = users[u][1];
	struct pbuf b;
	pbuf_init(&b);
	switch (got.code) {
	case AUTH_REQ_PASSWORD:
		proto_begin(&b, 'p');
		proto_put_str(&b, pw);
		proto_end(&b);
		break;
	case AUTH_REQ_MD5: {
		char inner[36], outer[33], resp[36];
		auth_md5_secret(pw, user, inner);
		md5_hex(inner + 3, 32, got.salt, 4, outer);
		snprintf(resp, sizeof(resp), "md5%s", outer);
		proto_begin(&b, 'p');
		proto_put_str(&b, resp);
		proto_end(&b);
		break;
	}
	case AUTH_REQ_SASL: {
		snprintf(got.bare, sizeof(got.bare), "n=,r=fuzz%unonce", u);
		char first[80];
		int n = snprintf(first, sizeof(first), "n,,%s", got.bare);
		proto_begin(&b, 'p');
		proto_put_str(&b, "SCRAM-SHA-256");
		proto_put_u32(&b, (uint32_t)n);
		proto_put_bytes(&b, first, (size_t)n);
		proto_end(&b);
		break;
	}
	case AUTH_REQ_SASL_CONT: {
		char final[1024];
		if (!scram_client_final(pw, got.bare, got.server_first, "n,,", final, sizeof(final)))
			break; /* not our exchange */
		proto_begin(&b, 'p');
		proto_put_bytes(&b, final, strlen(final));
		proto_end(&b);
		break;
	}
	default:
		break;
	}
	got.code = 0;
	if (b.len && !b.failed)
		(void)fz_send(p, b.data, b.len);
	pbuf_free(&b);
}

/* ---- set-up -------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char text[2048], md5[36];
	auth_md5_secret("bob-pw", "bob", md5);
	snprintf(text, sizeof(text),
		 "\"alice\" \"alice-pw\"\n\"bob\" \"%s\"\n\"carol\" \"%s\"\n"
		 "\"admin\" \"admin-pw\"\n\"stats\" \"stats-pw\"\n\"empty\" \"\"\n",
		 md5, PENCIL_VERIFIER);
	fz_write_file("userlist.txt", text);
	fz_write_file("hba.conf", hba_conf);
	char path[NMODES][256];
	for (int m = 0; m < NMODES; m++) {
		char name[32];
		snprintf(text, sizeof(text), ini, modes[m]);
		snprintf(name, sizeof(name), "pgcoro-%d.ini", m);
		snprintf(path[m], sizeof(path[m]), "%s", fz_write_file(name, text));
	}
	rt = fz_start(path[0]);
	cfgs[0] = fz_base_config();
	for (int m = 1; m < NMODES; m++) {
		char err[1024];
		struct config *cfg = cfg_load(path[m], err, sizeof(err));
		if (!cfg) {
			fprintf(stderr, "fuzz_login: %s\n", err);
			abort();
		}
		cfgs[m] = cfg;
	}
	/* the pools of "db", answering logins at once, never connecting */
	if (!poolctl_pause(NULL))
		abort();
	for (size_t u = 0; u < NUSERS; u++) {
		pool_t *pool = pool_get("db", users[u][0], cfg_find_db(rt->cfg, "db"));
		if (!pool)
			abort();
		fz_pool_ready(pool);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	const struct config *cfg = cfgs[fz_u8(&in) % NMODES];
	fz_set_config(cfg);
	memset(&got, 0, sizeof(got));
	struct fz_peer peer = {.on_output = on_output};
	struct fz_peer *peers[] = {&peer};
	fz_client(&peer);
	fz_settle();
	while (in.n > 0 && !peer.eof) {
		uint8_t op = fz_u8(&in);
		if (op >= 0xf0) {
			answer(&peer, (unsigned)(op - 0xf0) % NUSERS);
		} else {
			size_t n;
			const uint8_t *chunk = fz_bytes(&in, (size_t)op + 1, &n);
			if (!fz_send(&peer, chunk, n))
				break;
		}
		fz_settle();
	}
	fz_close(peers, 1);
	fz_undo_commands(cfg, true); /* the admin console is reachable */
	if (client_count() != 0) {
		fprintf(stderr, "fuzz_login: %d client(s) left after the input\n", client_count());
		abort();
	}
	return 0;
}

/* Fuzzes the client-side TLS of pgcoro (stream.c's TLS mode and login.c's TLS paths)
 * through the real client code: each input is one TCP-looking connection (a socketpair
 * accepted with an IPv4 peer address, so TLS is offered) whose other end is a TLS client
 * run in the harness with OpenSSL over memory BIOs. The input decides what that client
 * does and how its bytes reach pgcoro:
 *   byte 0      the config: client_tls_sslmode allow, require or verify-ca (auth_type hba:
 *               hostssl + cert for alice, hostssl trust, hostnossl trust for nossl)
 *   then operations (op % 8), each followed by the loop until nothing moves:
 *   0  N+1 raw bytes (N the next byte) written to the socket: plaintext before TLS,
 *      garbage inside the TLS stream after
 *   1  an SSLRequest
 *   2  the client starts its handshake (after an SSLRequest, or as direct TLS);
 *      flags from the next byte: 1 ALPN "postgresql", else 2 ALPN "h2"; 4 a client
 *      certificate (CN alice, signed by the CA pgcoro trusts); 8 at most TLS 1.2
 *   3  N+1 bytes written through TLS (SSL_write)
 *   4  a StartupMessage for user N % 3 (alice, bob, nossl), through TLS when it is up
 *   5  the client's close_notify
 *   6  a TLS 1.3 KeyUpdate (post-handshake message pgcoro's reads must take)
 *   7  only the next (N+1) bytes of what the client's TLS has to send go out now (records
 *      split anywhere); everything else goes out at the end of each operation
 * At the end the harness closes its end and the session must have been freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "client.h"
#include "config.h"
#include "loop.h"
#include "pool.h"
#include "poolctl.h"
#include "proto.h"

static const char ini[] = FZ_INI_PGCORO
			  "auth_type = hba\n"
			  "auth_file = @DIR@/userlist.txt\n"
			  "auth_hba_file = @DIR@/hba.conf\n"
			  "pool_mode = transaction\n"
			  "client_tls_sslmode = %s\n"
			  "client_tls_key_file = @DIR@/server.key\n"
			  "client_tls_cert_file = @DIR@/server.crt\n"
			  "client_tls_ca_file = @DIR@/server.crt\n"
			  "[databases]\n"
			  "db = host=@DIR@/no-server port=5432\n";

static const char hba_conf[] = "hostssl all alice 0.0.0.0/0 cert\n"
			       "hostnossl all nossl 0.0.0.0/0 trust\n"
			       "hostssl all all 0.0.0.0/0 trust\n"
			       "host all all 0.0.0.0/0 reject\n";

static const char *const users[] = {"alice", "bob", "nossl"};
#define NUSERS 3
#define NMODES 3
static const char *const modes[NMODES] = {"allow", "require", "verify-ca"};
static const struct config *cfgs[NMODES];

static SSL_CTX *client_ctx;
static X509 *client_cert;
static EVP_PKEY *client_key;

/* ---- certificates -------------------------------------------------------------------- */

static void die(const char *what)
{
	fprintf(stderr, "fuzz_tls: %s\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

/* A certificate for KEY named CN, signed by ISSUER_KEY (ISSUER NULL: self-signed, a CA). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (!x || !name || !X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), issuer ? 2 : 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365) || !X509_set_pubkey(x, key) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name))
		die("making a certificate");
	if (!issuer) {
		X509_EXTENSION *ext =
		    X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
		if (!ext || !X509_add_ext(x, ext, -1))
			die("basicConstraints");
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, issuer_key, EVP_sha256()))
		die("signing a certificate");
	X509_NAME_free(name);
	return x;
}

static void write_pem(const char *file, X509 *cert, EVP_PKEY *key)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", fz_dir(), file);
	FILE *f = fopen(path, "w");
	if (!f || (cert && !PEM_write_X509(f, cert)) ||
	    (key && !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)) || fclose(f) != 0)
		die(path);
}

/* ---- the harness's TLS client ---------------------------------------------------------- */

static struct {
	struct fz_peer peer;
	SSL *ssl;
	BIO *rbio, *wbio;     /* bytes from pgcoro into SSL; bytes SSL has for pgcoro */
	bool tls;             /* the client's TLS has begun: pgcoro's bytes go to rbio */
} cl;

static void on_output(struct fz_peer *p, const uint8_t *d, size_t n)
{
	if (cl.tls && BIO_write(cl.rbio, d, (int)n) != (int)n)
		die("BIO_write");
}

/* Sends up to MAX bytes of what the client's TLS has for pgcoro. */
static void flush_tls(size_t max)
{
	uint8_t buf[4096];
	while (cl.ssl && max > 0) {
		int want = max < sizeof(buf) ? (int)max : (int)sizeof(buf);
		int n = BIO_read(cl.wbio, buf, want);
		if (n <= 0)
			return;
		max -= (size_t)n;
		if (!fz_send(&cl.peer, buf, (size_t)n))
			return;
	}
}

/* Moves the client's TLS forward: the handshake, then reading (discarded). True if
 * anything happened. */
static bool drive(void)
{
	if (!cl.tls)
		return false;
	size_t before = BIO_ctrl_pending(cl.rbio);
	ERR_clear_error();
	if (!SSL_is_init_finished(cl.ssl)) {
		(void)SSL_do_handshake(cl.ssl);
	} else {
		uint8_t sink[4096];
		while (SSL_read(cl.ssl, sink, sizeof(sink)) > 0)
			;
	}
	ERR_clear_error();
	bool moved = BIO_ctrl_pending(cl.rbio) != before || BIO_ctrl_pending(cl.wbio) > 0;
	flush_tls((size_t)-1);
	return moved;
}

static void settle(void)
{
	for (int i = 0; i < 64; i++) {
		fz_settle();
		if (!drive())
			break;
	}
}

static void start_tls(uint8_t flags)
{
	if (cl.ssl)
		return;
	cl.ssl = SSL_new(client_ctx);
	cl.rbio = BIO_new(BIO_s_mem());
	cl.wbio = BIO_new(BIO_s_mem());
	if (!cl.ssl || !cl.rbio || !cl.wbio)
		die("client SSL");
	BIO_set_mem_eof_return(cl.rbio, -1);
	SSL_set_bio(cl.ssl, cl.rbio, cl.wbio);
	SSL_set_connect_state(cl.ssl);
	static const unsigned char pg[] = "\x0apostgresql", h2[] = "\x02h2";
	if (flags & 1)
		SSL_set_alpn_protos(cl.ssl, pg, sizeof(pg) - 1);
	else if (flags & 2)
		SSL_set_alpn_protos(cl.ssl, h2, sizeof(h2) - 1);
	if (flags & 4) {
		if (SSL_use_certificate(cl.ssl, client_cert) != 1 ||
		    SSL_use_PrivateKey(cl.ssl, client_key) != 1)
			die("client certificate");
	}
	if (flags & 8)
		SSL_set_max_proto_version(cl.ssl, TLS1_2_VERSION);
	cl.tls = true;
}

/* Sends LEN bytes of plaintext: through TLS once it is up, else raw. */
static void send_plain(const void *d, size_t len)
{
	if (!cl.tls) {
		(void)fz_send(&cl.peer, d, len);
		return;
	}
	ERR_clear_error();
	(void)SSL_write(cl.ssl, d, (int)len);
	ERR_clear_error();
}

/* ---- set-up -------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	client_key = EVP_EC_gen("P-256");
	if (!ca_key || !client_key)
		die("keys");
	X509 *ca = make_cert(ca_key, "localhost", NULL, ca_key);
	client_cert = make_cert(client_key, "alice", ca, ca_key);
	write_pem("server.crt", ca, NULL);
	write_pem("server.key", NULL, ca_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	fz_write_file("userlist.txt", "\"alice\" \"a\"\n\"bob\" \"b\"\n\"nossl\" \"n\"\n");
	fz_write_file("hba.conf", hba_conf);
	char path[NMODES][256];
	for (int m = 0; m < NMODES; m++) {
		char text[2048], name[32];
		snprintf(text, sizeof(text), ini, modes[m]);
		snprintf(name, sizeof(name), "pgcoro-%d.ini", m);
		snprintf(path[m], sizeof(path[m]), "%s", fz_write_file(name, text));
	}
	struct runtime *rt = fz_start(path[0]); /* its TLS context: a CA, certificates asked for */
	cfgs[0] = fz_base_config();
	for (int m = 1; m < NMODES; m++) {
		char err[1024];
		struct config *cfg = cfg_load(path[m], err, sizeof(err));
		if (!cfg) {
			fprintf(stderr, "fuzz_tls: %s\n", err);
			abort();
		}
		cfgs[m] = cfg;
	}
	if (!poolctl_pause(NULL))
		abort();
	for (int u = 0; u < NUSERS; u++) {
		pool_t *pool = pool_get("db", users[u], cfg_find_db(rt->cfg, "db"));
		if (!pool)
			abort();
		fz_pool_ready(pool);
	}
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (!client_ctx)
		die("client context");
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	const struct config *cfg = cfgs[fz_u8(&in) % NMODES];
	fz_set_config(cfg);
	memset(&cl, 0, sizeof(cl));
	cl.peer.on_output = on_output;
	fz_pair(&cl.peer);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	client_accept(cl.peer.pg_fd, (const struct sockaddr *)&sin, (int)sizeof(sin));
	settle();
	while (in.n > 0 && !cl.peer.eof) {
		uint8_t op = fz_u8(&in);
		switch (op % 8) {
		case 0: {
			size_t n;
			const uint8_t *raw = fz_bytes(&in, (size_t)fz_u8(&in) + 1, &n);
			(void)fz_send(&cl.peer, raw, n);
			break;
		}
		case 1: {
			static const uint8_t ssl_request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
			(void)fz_send(&cl.peer, ssl_request, sizeof(ssl_request));
			break;
		}
		case 2:
			start_tls(fz_u8(&in));
			break;
		case 3: {
			size_t n;
			const uint8_t *d = fz_bytes(&in, (size_t)fz_u8(&in) + 1, &n);
			send_plain(d, n);
			break;
		}
		case 4: {
			uint8_t pkt[128];
			const char *kv[] = {"user", users[fz_u8(&in) % NUSERS], "database", "db", NULL};
			size_t n = fz_startup(pkt, sizeof(pkt), kv);
			send_plain(pkt, n);
			break;
		}
		case 5:
			if (cl.ssl) {
				ERR_clear_error();
				(void)SSL_shutdown(cl.ssl);
				ERR_clear_error();
			}
			break;
		case 6:
			if (cl.ssl && SSL_is_init_finished(cl.ssl) &&
			    SSL_version(cl.ssl) == TLS1_3_VERSION) {
				ERR_clear_error();
				if (SSL_key_update(cl.ssl, SSL_KEY_UPDATE_REQUESTED) == 1)
					(void)SSL_do_handshake(cl.ssl);
				ERR_clear_error();
			}
			break;
		default:
			if (cl.ssl) {
				if (!SSL_is_init_finished(cl.ssl))
					(void)SSL_do_handshake(cl.ssl);
				ERR_clear_error();
				flush_tls((size_t)fz_u8(&in) + 1);
				fz_settle();
				continue; /* the rest stays for the next operation */
			}
			break;
		}
		settle();
	}
	struct fz_peer *peers[] = {&cl.peer};
	fz_close(peers, 1);
	if (cl.ssl)
		SSL_free(cl.ssl);
	ERR_clear_error();
	if (client_count() != 0) {
		fprintf(stderr, "fuzz_tls: %d client(s) left after the input\n", client_count());
		abort();
	}
	return 0;
}

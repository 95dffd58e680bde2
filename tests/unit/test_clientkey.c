/* Unit tests of clientkey.c, the ClientKey store of SCRAM pass-through: a key is found
 * only for the verifier it was proven against (another one drops it), a user stored again
 * replaces its key, the store keeps at most CLIENTKEY_MAX users (the oldest goes), and a
 * reload keeps the entries whose verifier is unchanged and drops the others. */
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clientkey.h"
#include "scram.h"

/* Keys with salt byte SALT and a StoredKey filled with STORED. */
static struct scram_keys keys_of(uint8_t salt, uint8_t stored)
{
	struct scram_keys k = {.iterations = 4096, .salt_len = 16};
	memset(k.salt, salt, 16);
	memset(k.stored_key, stored, SCRAM_KEY_LEN);
	memset(k.server_key, stored ^ 0xff, SCRAM_KEY_LEN);
	return k;
}

START_TEST(test_find_only_for_the_same_verifier)
{
	struct scram_keys k = keys_of(1, 2), other = keys_of(1, 3), salt2 = keys_of(2, 2);
	uint8_t ck[SCRAM_KEY_LEN], out[SCRAM_KEY_LEN];
	memset(ck, 0x5a, sizeof(ck));
	ck_assert(!clientkey_find("alice", &k, out));
	clientkey_store("alice", &k, ck);
	ck_assert(clientkey_find("alice", &k, out));
	ck_assert_mem_eq(out, ck, SCRAM_KEY_LEN);
	ck_assert(!clientkey_find("bob", &k, out));
	struct scram_keys iters = k;
	iters.iterations = 10000;
	ck_assert(!clientkey_find("alice", &salt2, out)); /* another salt: dropped */
	ck_assert(!clientkey_find("alice", &k, out));
	clientkey_store("alice", &k, ck);
	ck_assert(!clientkey_find("alice", &other, out)); /* another StoredKey */
	clientkey_store("alice", &k, ck);
	ck_assert(!clientkey_find("alice", &iters, out)); /* another count */
	ck_assert_int_eq(clientkey_count(), 0);
	clientkey_clear();
}
END_TEST

START_TEST(test_store_again_replaces)
{
	struct scram_keys k1 = keys_of(1, 2), k2 = keys_of(7, 8);
	uint8_t ck1[SCRAM_KEY_LEN], ck2[SCRAM_KEY_LEN], out[SCRAM_KEY_LEN];
	memset(ck1, 1, sizeof(ck1));
	memset(ck2, 2, sizeof(ck2));
	clientkey_store("alice", &k1, ck1);
	clientkey_store("alice", &k2, ck2);
	ck_assert_int_eq(clientkey_count(), 1);
	ck_assert(clientkey_find("alice", &k2, out));
	ck_assert_mem_eq(out, ck2, SCRAM_KEY_LEN);
	clientkey_clear();
	ck_assert_int_eq(clientkey_count(), 0);
}
END_TEST

START_TEST(test_bounded_oldest_goes)
{
	struct scram_keys k = keys_of(1, 2);
	uint8_t ck[SCRAM_KEY_LEN] = {0}, out[SCRAM_KEY_LEN];
	char name[32];
	for (int i = 0; i < CLIENTKEY_MAX + 5; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		clientkey_store(name, &k, ck);
	}
	ck_assert_int_eq(clientkey_count(), CLIENTKEY_MAX);
	ck_assert(!clientkey_find("user0", &k, out));
	ck_assert(!clientkey_find("user4", &k, out));
	ck_assert(clientkey_find("user5", &k, out));
	snprintf(name, sizeof(name), "user%d", CLIENTKEY_MAX + 4);
	ck_assert(clientkey_find(name, &k, out));
	clientkey_clear();
}
END_TEST

/* The verifier of "pencil" (RFC 7677's). */
#define PENCIL_VERIFIER                                                                  \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"                                     \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                    \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static struct auth_file *load(const char *content)
{
	char path[64] = "/tmp/pgcoro_test_clientkey_XXXXXX", err[256] = "";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	struct auth_file *af = auth_load(path, err, sizeof(err));
	unlink(path);
	ck_assert_msg(af, "%s", err);
	ck_assert(auth_make_scram_keys(af, 4096, true, false));
	return af;
}

START_TEST(test_reconfigure_drops_changed_verifiers)
{
	struct auth_file *af = load("\"carol\" \"" PENCIL_VERIFIER "\"\n\"dave\" \"" PENCIL_VERIFIER
				    "\"\n\"erin\" \"" PENCIL_VERIFIER "\"\n");
	struct scram_keys v;
	ck_assert(scram_parse_verifier(PENCIL_VERIFIER, &v));
	uint8_t ck[SCRAM_KEY_LEN] = {9}, out[SCRAM_KEY_LEN];
	clientkey_store("carol", &v, ck);
	clientkey_store("dave", &v, ck);
	clientkey_store("erin", &v, ck);
	clientkey_store("frank", &v, ck);
	clientkey_reconfigure(af); /* frank is not in the file */
	ck_assert_int_eq(clientkey_count(), 3);
	auth_free(af);
	/* carol unchanged, dave gone, erin a plain password now */
	af = load("\"carol\" \"" PENCIL_VERIFIER "\"\n\"erin\" \"pencil\"\n");
	clientkey_reconfigure(af);
	ck_assert_int_eq(clientkey_count(), 1);
	ck_assert(clientkey_find("carol", &v, out));
	ck_assert(!clientkey_find("dave", &v, out));
	ck_assert(!clientkey_find("erin", &v, out));
	clientkey_reconfigure(NULL); /* no auth_file any more */
	ck_assert_int_eq(clientkey_count(), 0);
	auth_free(af);
	clientkey_clear();
}
END_TEST

static Suite *clientkey_suite(void)
{
	Suite *s = suite_create("clientkey");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_find_only_for_the_same_verifier);
	tcase_add_test(tc, test_store_again_replaces);
	tcase_add_test(tc, test_bounded_oldest_goes);
	tcase_add_test(tc, test_reconfigure_drops_changed_verifiers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return unit_run(clientkey_suite()); }

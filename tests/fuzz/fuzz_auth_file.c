/* Fuzzes the auth_file loader (auth.c, PgBouncer's userlist.txt format) over a memory
 * file, then the look-ups and checks of a loaded file for the first user of the input
 * and a few fixed names: auth_lookup, the md5 check (its cached stored hash) and the
 * SCRAM keys made with the file (plain secrets derived with one iteration). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "loop.h"
#include "scram.h"

/* The first quoted field of the input, as the loader reads it ("" is a quote), into
 * BUF; "" if there is none. */
static void first_user(const uint8_t *d, size_t n, char *buf, size_t cap)
{
	size_t o = 0, i = 0;
	while (i < n && d[i] != '"')
		i++;
	for (i++; i < n && o + 1 < cap; i++) {
		if (d[i] == '"') {
			if (i + 1 < n && d[i + 1] == '"')
				i++;
			else
				break;
		}
		buf[o++] = (char)d[i];
	}
	buf[o] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024] = "";
	struct auth_file *af = auth_load(fz_memfile(data, size), err, sizeof(err));
	if (!af) {
		if (!err[0])
			abort();
		return 0;
	}
	char user[256];
	first_user(data, size, user, sizeof(user));
	if (!auth_make_scram_keys(af, 1, true, true)) /* one iteration: cheap per input */
		abort();
	const char *names[] = {user, "alice", "", "md5"};
	static const uint8_t salt[4] = {0, 1, 2, 3};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *secret = auth_lookup(af, names[i]);
		(void)auth_md5_check_user(af, names[i], salt, "md50123456789abcdef0123456789abcdef");
		const struct scram_keys *k = auth_scram_keys(af, names[i]);
		if (secret && *secret && auth_secret_kind(secret) != SECRET_MD5 && !k)
			abort(); /* every plain secret and verifier has its keys */
	}
	if (auth_count(af) < 0)
		abort();
	auth_free(af);
	return 0;
}

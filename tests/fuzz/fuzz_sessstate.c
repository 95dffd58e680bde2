/* Fuzzes sessstate's reading of statement texts: the input is the text of a Query or
 * Parse, any bytes (NULs too). Oracles: nothing read outside the text (ASan: each text is
 * scanned in a buffer of its size exactly), only the effect bits of sessstate.h, and
 * answers that must agree:
 *   - a ';' and white space after the text change nothing (a statement cut short gives
 *     nothing; an unterminated quote or comment swallows them);
 *   - a comment and white space before it change nothing;
 *   - a whole statement before it adds its effect and changes nothing else;
 *   - in a text holding neither '"' nor '$' (quoted names and dollar-quote tags keep their
 *     case), upper-casing or lower-casing its ASCII letters changes nothing;
 *   - cut in two at a point the first byte picks, with a newline put between the halves,
 *     the text has at least the effects of its first half (what a token has decided
 *     stays decided; the newline ends a word, a number or a -- comment there);
 *   - the quick look in front of the full scan says "nothing" only when the full scan
 *     finds nothing (every text above), with AVX2 and without, and both say the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "sessstate.h"

#define ALL_EFFECTS                                                                        \
	(SESS_PREPARE | SESS_HOLD | SESS_ADVISORY | SESS_TEMP | SESS_LOAD | SESS_SETTING |  \
	 SESS_UNDO)

static void check(bool ok, const char *what, uint32_t a, uint32_t b)
{
	if (!ok) {
		fprintf(stderr, "fuzz_sessstate: %s (0x%x, 0x%x)\n", what, a, b);
		abort();
	}
}

/* The quick look at TEXT (LEN bytes) says "nothing" only when the full scan finds
 * nothing, with AVX2 (when the processor has it) and without. */
static void check_quick(const char *text, size_t len)
{
	bool clean = sess_scan_quick(text, len, true);
	check(clean == sess_scan_quick(text, len, false), "quick looks disagree", clean, 0);
	if (clean) {
		uint32_t full = sess_scan_full(text, len);
		check(full == 0, "the quick look missed an effect", full, 0);
	}
}

/* The scan of BEFORE + TEXT (N bytes) + AFTER (NULL: nothing), in a buffer of that size
 * exactly. */
static uint32_t scan_with(const char *before, const uint8_t *text, size_t n, const char *after)
{
	size_t bn = before ? strlen(before) : 0, an = after ? strlen(after) : 0;
	size_t len = bn + n + an;
	char *buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	if (bn)
		memcpy(buf, before, bn);
	if (n)
		memcpy(buf + bn, text, n);
	if (an)
		memcpy(buf + bn + n, after, an);
	uint32_t got = sess_scan(buf, len);
	check_quick(buf, len);
	free(buf);
	check((got & ~(uint32_t)ALL_EFFECTS) == 0, "an undefined bit", got, 0);
	return got;
}

/* D (N bytes) with its ASCII letters in upper case (UPPER) or lower case, scanned. */
static uint32_t scan_case(const uint8_t *d, size_t n, bool upper)
{
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		abort();
	for (size_t i = 0; i < n; i++) {
		uint8_t c = d[i];
		if (upper && c >= 'a' && c <= 'z')
			c = (uint8_t)(c - 'a' + 'A');
		else if (!upper && c >= 'A' && c <= 'Z')
			c = (uint8_t)(c - 'A' + 'a');
		buf[i] = c;
	}
	uint32_t got = sess_scan((const char *)buf, n);
	check_quick((const char *)buf, n);
	free(buf);
	return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t whole = scan_with(NULL, data, size, NULL);
	check((whole & ~(uint32_t)ALL_EFFECTS) == 0, "an undefined bit", whole, 0);
	uint32_t got = scan_with(NULL, data, size, ";\n\t ");
	check(got == whole, "a ';' after changed it", got, whole);
	got = scan_with(" /* c */\n", data, size, NULL);
	check(got == whole, "a comment before changed it", got, whole);
	got = scan_with("PREPARE p AS SELECT 1;", data, size, NULL);
	check(got == (whole | SESS_PREPARE), "a statement before changed it", got, whole);
	if (!memchr(data, '"', size) && !memchr(data, '$', size)) {
		got = scan_case(data, size, true);
		check(got == whole, "upper case changed it", got, whole);
		got = scan_case(data, size, false);
		check(got == whole, "lower case changed it", got, whole);
	}
	size_t k = size ? data[0] % (size + 1) : 0;
	uint32_t first = scan_with(NULL, data, k, NULL);
	uint8_t *cut = malloc(size + 1);
	if (!cut)
		abort();
	memcpy(cut, data, k);
	cut[k] = '\n';
	memcpy(cut + k + 1, data + k, size - k);
	got = sess_scan((const char *)cut, size + 1);
	free(cut);
	check((got & first) == first, "the first half's effects lost", got, first);
	return 0;
}

/* Fuzzes what pin.c reads of bytes a peer sent: the DataRows a server sends in answer to
 * the question of what a client's session holds (pin_parse_row), and the custom setting
 * names read from a client's statement text (pin_custom_names). Byte 0 picks which; the
 * rest is the input, in a buffer of exactly its size. Oracles: nothing read outside it
 * (ASan); a row accepted is three columns that tile the body exactly, the first one byte,
 * the pointers inside the body; every name found is NUL-terminated, shorter than
 * PIN_CUSTOM_NAME, dotted, lower case, of name characters only, found once, and in the
 * text (in any case); the count never passes its bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loop.h"
#include "pin.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_pin: %s\n", what);
		abort();
	}
}

static void rows(const uint8_t *body, uint32_t blen)
{
	uint8_t kind;
	const uint8_t *name, *value;
	uint32_t nlen, vlen;
	if (!pin_parse_row(body, blen, &kind, &name, &nlen, &value, &vlen))
		return;
	check(blen >= 2 + 3 * 4 + 1, "row shorter than three columns");
	check(kind == body[6], "kind is not column 1's byte");
	check(name == body + 2 + 4 + 1 + 4, "name is not column 2");
	check(name + nlen + 4 == value, "value does not follow name");
	check(value + vlen == body + blen, "columns do not tile the row");
}

static void names(const char *t, size_t n)
{
	enum { MAX = 8 };
	char found[MAX][PIN_CUSTOM_NAME];
	bool lost = false;
	int k = pin_custom_names(t, n, found, MAX, 0, &lost);
	check(k >= 0 && k <= MAX, "count out of bounds");
	for (int i = 0; i < k; i++) {
		size_t l = strnlen(found[i], PIN_CUSTOM_NAME);
		check(l > 0 && l < PIN_CUSTOM_NAME, "name not terminated");
		check(strchr(found[i], '.') != NULL, "name not dotted");
		for (size_t j = 0; j < l; j++) {
			char ch = found[i][j];
			check((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
				      ch == '.' || ch == '$',
			      "name has a byte that is not a lower-case name character");
		}
		for (int j = 0; j < i; j++)
			check(strcmp(found[i], found[j]) != 0, "name found twice");
		bool in = false;
		for (size_t at = 0; !in && at + l <= n; at++)
			in = strncasecmp(t + at, found[i], l) == 0;
		check(in, "name not in the text");
	}
	/* a second call with those already there adds none of them again */
	int again = pin_custom_names(t, n, found, MAX, k, &lost);
	check(again == k, "a second call found new names");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		names((const char *)buf, size - 1);
	else if (size - 1 <= UINT32_MAX)
		rows(buf, (uint32_t)(size - 1));
	free(buf);
	return 0;
}

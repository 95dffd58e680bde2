/* Fuzzes hkquery's reading of a server's answers (bytes a server sends to pgcoro's own
 * queries) and its identifier quoting. Byte 0 is the size of the pieces the answer bytes
 * arrive in (0: all at once), byte 1 picks the client_encoding for the quoting; the rest
 * are the server's bytes: answers back to back, each read up to its ReadyForQuery, as a
 * stream owner reads them (what a call leaves unused comes again with the next piece).
 * Oracles: nothing read outside the input (ASan), the summary's texts terminated inside
 * their arrays, and the same callbacks, summaries and outcome whatever the pieces (every
 * piece size against all at once). Quoting: a name accepted comes back unchanged when
 * unquoted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hkquery.h"
#include "loop.h"

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_hkquery: %s\n", what);
		abort();
	}
}

/* A running FNV-1a hash of what was seen. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s) { return mix(h, s, strlen(s) + 1); }

static void cb_param(void *arg, const char *name, const char *value)
{
	uint64_t *h = arg;
	*h = mix_str(mix_str(mix(*h, "S", 1), name), value);
}

static void cb_notification(void *arg, uint32_t pid, const char *channel, const char *payload)
{
	uint64_t *h = arg;
	*h = mix_str(mix_str(mix(mix(*h, "A", 1), &pid, sizeof(pid)), channel), payload);
}

static void cb_notice(void *arg, const char *severity, const char *message)
{
	uint64_t *h = arg;
	*h = mix_str(mix_str(mix(*h, "N", 1), severity), message);
}

static void cb_row(void *arg, const uint8_t *value, uint32_t len)
{
	uint64_t *h = arg;
	*h = mix(*h, value ? "D" : "d", 1);
	if (value)
		*h = mix(mix(*h, &len, sizeof(len)), value, len);
}

static const struct hkquery_ops ops = {
	.param = cb_param, .notification = cb_notification, .notice = cb_notice, .row = cb_row};

static bool terminated(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

/* A finished answer's summary, checked and mixed into H. */
static uint64_t summary(uint64_t h, const struct hkquery *q)
{
	check(terminated(q->sqlstate, sizeof(q->sqlstate)) && terminated(q->tag, sizeof(q->tag)) &&
		      terminated(q->message, sizeof(q->message)) &&
		      terminated(q->detail, sizeof(q->detail)) && terminated(q->hint, sizeof(q->hint)),
	      "a text not terminated");
	check(q->tx_status == 'I' || q->tx_status == 'T' || q->tx_status == 'E',
	      "DONE without a transaction status");
	check(q->failed || !q->fatal, "fatal without an error");
	check(q->skip == 0, "DONE inside a skipped message");
	h = mix(h, &q->results, sizeof(q->results));
	h = mix(h, &q->rows, sizeof(q->rows));
	h = mix(h, &q->copy_in, sizeof(q->copy_in));
	uint8_t flags[3] = {q->failed, q->fatal, q->tx_status};
	h = mix(h, flags, sizeof(flags));
	h = mix_str(mix_str(h, q->sqlstate), q->tag);
	return mix_str(mix_str(mix_str(h, q->message), q->detail), q->hint);
}

struct outcome {
	uint64_t hash;
	enum hkquery_status last;
	size_t used;
};

/* Reads D (N bytes) arriving in pieces of STEP bytes (0: at once). */
static struct outcome read_answers(const uint8_t *d, size_t n, size_t step)
{
	struct outcome o = {.hash = 14695981039346656037ull, .last = HKQUERY_MORE};
	struct hkquery q;
	hkquery_begin(&q, &ops, &o.hash);
	size_t have = 0; /* the unused input is d[o.used, have) */
	while (have < n || o.last == HKQUERY_DONE) {
		if (o.last != HKQUERY_DONE)
			have += step && n - have > step ? step : n - have;
		size_t used = 0;
		const char *why = NULL;
		o.last = hkquery_parse(&q, d + o.used, have - o.used, &used, &why);
		check(used <= have - o.used, "used more than given");
		o.used += used;
		if (o.last == HKQUERY_BAD) {
			check(why != NULL, "BAD without a reason");
			o.hash = mix_str(o.hash, why);
			break;
		}
		if (o.last == HKQUERY_DONE) {
			o.hash = summary(o.hash, &q);
			hkquery_begin(&q, &ops, &o.hash); /* the next answer */
			if (o.used == have && have == n) {
				o.last = HKQUERY_MORE;
				break;
			}
		}
	}
	return o;
}

static void fuzz_quote(const uint8_t *d, size_t n, uint8_t pick)
{
	static const char *const encodings[] = {"UTF8", "LATIN1", "SQL_ASCII", "SJIS", "EUC_JP",
						NULL};
	const char *enc = encodings[pick % (sizeof(encodings) / sizeof(encodings[0]))];
	char name[96];
	size_t len = n < sizeof(name) - 1 ? n : sizeof(name) - 1;
	memcpy(name, d, len);
	name[len] = 0;
	len = strlen(name);
	struct pbuf b;
	pbuf_init(&b);
	const char *why = NULL;
	if (!hkquery_quote_ident(&b, name, enc, &why)) {
		check(why != NULL && b.len == 0, "refused without a reason, or with output");
		pbuf_free(&b);
		return;
	}
	check(!b.failed && b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"',
	      "not in quotes");
	size_t o = 0;
	for (size_t i = 1; i + 1 < b.len; i++) {
		if (b.data[i] == '"') {
			check(i + 2 < b.len && b.data[i + 1] == '"', "a quote not doubled");
			i++;
		}
		check(o < len && (uint8_t)name[o] == b.data[i], "not the name");
		o++;
	}
	check(o == len, "the name cut short");
	for (size_t i = 0; i < len; i++)
		if ((uint8_t)name[i] >= 0x80)
			check(enc && strcmp(enc, "SJIS") != 0 && strcmp(enc, "EUC_JP") != 0,
			      "non-ASCII quoted for an encoding not checked");
	pbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t step = data[0];
	uint8_t pick = data[1];
	const uint8_t *d = data + 2;
	size_t n = size - 2;
	/* in a buffer of exactly its size, so a read past it is caught */
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, d, n);
	struct outcome whole = read_answers(copy, n, 0);
	struct outcome pieces = read_answers(copy, n, step);
	struct outcome bytes = read_answers(copy, n, 1);
	check(whole.hash == pieces.hash && whole.last == pieces.last && whole.used == pieces.used,
	      "pieces read otherwise than all at once");
	check(whole.hash == bytes.hash && whole.last == bytes.last && whole.used == bytes.used,
	      "bytes one by one read otherwise than all at once");
	fuzz_quote(copy, n, pick);
	free(copy);
	return 0;
}

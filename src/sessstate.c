/* Owns the reading of a client's statement text for what it may do to its session beyond
 * its transaction (sessstate.h; step 11, transparent pinning in transaction mode): a
 * quick look that clears most texts, then for the others one pass of a tokenizer over the
 * bytes, a small state machine per statement on its first tokens, and a look at every
 * name for the few functions that make session state. No parser, no allocation, no
 * locale: ASCII case folding by hand.
 *
 * DESIGN: the quick look (sess_scan_quick), run on every text first. It says "nothing"
 * only where the full scan below would find nothing, and leaves anything doubtful to it.
 * The full scan finds something only through a statement's first word, a second
 * statement, a function's name, or SELECT/WITH .. INTO temp|temporary|pg_temp; so,
 * ignoring quotes and comments (which only hide things from the full scan):
 *   - white space and NULs at the end, then one ';', are dropped: they add nothing;
 *   - the first byte after white space: '-' or '/' (a comment may hide the first word)
 *     -> doubtful; a word's: its first four bytes (OR 0x20) starting like
 *     a keyword the full scan reads on from (PREPARE DECLARE SET RESET DISCARD
 *     DEALLOCATE CLOSE DROP LOAD CREATE) -> doubtful; like SELECT or WITH: look for
 *     "temp" too; any other byte: the full scan reads nothing more of the statement;
 *   - a text shorter than 10 bytes holds no function's name nor INTO and temp: doubtful
 *     only with a ';';
 *   - otherwise every pair of bytes at an even offset is compared (OR 0x20: either case),
 *     32 bytes at a time with AVX2 when the processor has it, else 16 (SSE2 on x86-64;
 *     the compiler's vector extensions elsewhere), an odd length's last byte on its own:
 *     ';', and pairs that every needle has at one even offset or the other, wherever it
 *     starts: "advisory" (in every advisory-lock function's name) "vi" or "dv",
 *     "set_config" "nf" or "fi", "temp" "mp" or "em"; any of them -> doubtful. A false
 *     hit costs the full scan, nothing else.
 *
 * DESIGN: the grammar read.
 * Tokens, cut as PostgreSQL's scanner (scan.l) cuts them:
 *   space      [ \t\n\r\f\v]
 *   comment    -- to the next \n or \r; / * to its * / (nested ones counted)
 *   word       [A-Za-z_\x80-\xff][A-Za-z_0-9$\x80-\xff]*, compared in ASCII lower case
 *   name       "..." ("" inside), compared as written; never a keyword
 *   string     '...' ('' inside; B'', X'', N'', U&'' alike); E'...' (a word e or E
 *              right before the quote: \ escapes the next byte, '' inside);
 *              $tag$...$tag$ (tag empty or [A-Za-z_\x80-\xff][A-Za-z_0-9\x80-\xff]*,
 *              case kept; a $ inside a word, before a digit ($1) or with no $ closing
 *              its tag starts none)
 *   ;          the end of a statement
 *   other      any other byte: operators, punctuation, digits, NUL
 * An unterminated string, name, dollar quote or / * comment ends the scan: the server
 * refuses such a text whole, so what came before runs neither.
 *
 * Anywhere in the text (a word, or a name equal to the lower-case function name; any
 * schema may qualify it, and whatever follows it):
 *   pg_advisory_lock[_shared], pg_try_advisory_lock[_shared]          ADVISORY
 *   pg_advisory_unlock, pg_advisory_unlock_shared, pg_advisory_unlock_all  UNDO
 *   set_config                                                         SETTING
 * A statement's first tokens (capitals: a word in any case; "..": any tokens):
 *   PREPARE TRANSACTION string                                 -
 *   PREPARE token (the name: a word, TRANSACTION not followed by a string, or a name)
 *                                                              PREPARE
 *   DECLARE .. WITH HOLD .. FOR (only the words before the first FOR)        HOLD
 *   SET LOCAL|TRANSACTION|CONSTRAINTS ..                       -
 *   SET token (SET x, SET SESSION .., SET ROLE, SET TIME ZONE ..)              SETTING
 *   RESET ..                                                   SETTING
 *   DISCARD ALL                                                UNDO | SETTING
 *   DISCARD .., DEALLOCATE .., CLOSE .., DROP ..               UNDO
 *   LOAD ..                                                    LOAD
 *   CREATE {OR|REPLACE|GLOBAL|LOCAL}* TEMP|TEMPORARY ..        TEMP
 *   CREATE .. pg_temp .. (pg_temp or pg_temp_N, a word or a name, anywhere in it)  TEMP
 *   SELECT|WITH .. INTO {UNLOGGED|TABLE}* TEMP|TEMPORARY|pg_temp ..            TEMP
 *   anything else, and a statement that ends before the token that decides (PREPARE;
 *   SET;), which the server refuses                            -
 * Knowingly not seen (the false negatives the README states; false positives cost one
 * round trip and are not listed):
 *   - state made by code the text calls or defines rather than by its own statements:
 *     function and procedure bodies, DO blocks, dynamic SQL they EXECUTE, rules,
 *     triggers; EXPLAIN ANALYZE of a statement above; a parenthesised SELECT .. INTO;
 *   - a function named with Unicode escapes (U&"pg\005fadvisory\005flock");
 *   - a temporary table made without the words above: CREATE TABLE x after a SET
 *     search_path that puts pg_temp first (the SET itself is seen);
 *   - quotes ending elsewhere than the server sees them: '...' with backslash escapes
 *     under standard_conforming_strings = off, and E'...' in a client encoding whose
 *     characters may hold the byte of a backslash (SJIS, BIG5, GBK, GB18030, UHC). */
#include "sessstate.h"

#include <stdbool.h>
#include <string.h>

/* What a byte starts. C_WORD: it goes on a word too (letters, digits, $). C_PLAIN: it
 * starts nothing a statement's words depend on (white space, operators, punctuation,
 * digits): a run of them is one token at most, and none in the common states. */
#define C_WORD 0x10
#define C_PLAIN 0x20
enum cls {
	C_SQUOTE = 1,                   /* ' */
	C_DQUOTE,                       /* " */
	C_DASH,                         /* - */
	C_SLASH,                        /* / */
	C_SEMI,                         /* ; */
	C_IDENT = C_WORD | 1,           /* A-Z a-z _ and every byte >= 0x80 */
	C_DOLLAR = C_WORD | 2,          /* $ */
	C_OTHER = C_PLAIN | 1,          /* any other byte */
	C_SPACE = C_PLAIN | 2,          /* space \t \n \v \f \r */
	C_DIGIT = C_PLAIN | C_WORD | 3, /* 0-9 */
};

/* clang-format off */
#define O C_OTHER
#define I C_IDENT
#define D C_DIGIT
#define W C_SPACE
static const uint8_t cls[256] = {
	/* 0x00 */ O, O, O, O, O, O, O, O, O, W, W, W, W, W, O, O,
	/* 0x10 */ O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,
	/* 0x20 */ W, O, C_DQUOTE, O, C_DOLLAR, O, O, C_SQUOTE, O, O, O, O, O, C_DASH, O, C_SLASH,
	/* 0x30 */ D, D, D, D, D, D, D, D, D, D, O, C_SEMI, O, O, O, O,
	/* 0x40 */ O, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0x50 */ I, I, I, I, I, I, I, I, I, I, I, O, O, O, O, I,
	/* 0x60 */ O, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0x70 */ I, I, I, I, I, I, I, I, I, I, I, O, O, O, O, O,
	/* 0x80 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0x90 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xa0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xb0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xc0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xd0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xe0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
	/* 0xf0 */ I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
};
#undef O
#undef I
#undef D
#undef W
/* clang-format on */

/* The end of the word whose second byte is at P (one bounds check every four bytes). */
static inline const uint8_t *word_end(const uint8_t *p, const uint8_t *end)
{
	for (; end - p >= 4; p += 4) {
		if (!(cls[p[0]] & C_WORD))
			return p;
		if (!(cls[p[1]] & C_WORD))
			return p + 1;
		if (!(cls[p[2]] & C_WORD))
			return p + 2;
		if (!(cls[p[3]] & C_WORD))
			return p + 3;
	}
	while (p < end && (cls[*p] & C_WORD))
		p++;
	return p;
}

/* A dollar quote's tag goes on through letters and digits. */
static inline bool tag_cont(uint8_t c)
{
	return (cls[c] & C_WORD) && c != '$';
}

/* Whether the word W (N bytes) is KW (KN bytes: lower-case letters and _) in any case.
 * A word's byte and a keyword's differ at most in bit 5 only when they are the same
 * letter in either case ('_' ^ 0x20 is DEL, never in a word). */
static bool word_is(const uint8_t *w, size_t n, const char *kw, size_t kn)
{
	if (n != kn)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((w[i] ^ (uint8_t)kw[i]) & ~0x20u)
			return false;
	return true;
}

#define KW(w, n, kw) word_is(w, n, kw, sizeof(kw) - 1)

/* The functions that make or drop session state whatever statement calls them, by the
 * length of their name less FUNC_MIN (every length differs). */
#define FUNC_MIN 10
#define FUNC_MAX 27
static const struct {
	const char *name;
	uint32_t effect;
} funcs[FUNC_MAX - FUNC_MIN + 1] = {
    [10 - FUNC_MIN] = {"set_config", SESS_SETTING},
    [16 - FUNC_MIN] = {"pg_advisory_lock", SESS_ADVISORY},
    [18 - FUNC_MIN] = {"pg_advisory_unlock", SESS_UNDO},
    [20 - FUNC_MIN] = {"pg_try_advisory_lock", SESS_ADVISORY},
    [22 - FUNC_MIN] = {"pg_advisory_unlock_all", SESS_UNDO},
    [23 - FUNC_MIN] = {"pg_advisory_lock_shared", SESS_ADVISORY},
    [25 - FUNC_MIN] = {"pg_advisory_unlock_shared", SESS_UNDO},
    [27 - FUNC_MIN] = {"pg_try_advisory_lock_shared", SESS_ADVISORY},
};

/* The effect of calling the function named W (N bytes; FOLD: a word, compared in lower
 * case, else a quoted name, compared as written), 0 for any other name. */
static inline uint32_t func_effect(const uint8_t *w, size_t n, bool fold)
{
	if (n - FUNC_MIN > (size_t)(FUNC_MAX - FUNC_MIN))
		return 0;
	const char *name = funcs[n - FUNC_MIN].name;
	if (!name || ((w[0] ^ (uint8_t)name[0]) & (fold ? ~0x20u : ~0u)))
		return 0;
	if (fold ? !word_is(w, n, name, n) : memcmp(w, name, n) != 0)
		return 0;
	return funcs[n - FUNC_MIN].effect;
}

/* Whether W (N bytes; FOLD as above) names the session's temporary schema: pg_temp, or
 * pg_temp_N as the server names it. */
static bool is_pg_temp(const uint8_t *w, size_t n, bool fold)
{
	static const char pg_temp[] = "pg_temp";
	size_t k = sizeof(pg_temp) - 1;
	if (n < k || (fold ? !word_is(w, k, pg_temp, k) : memcmp(w, pg_temp, k) != 0))
		return false;
	if (n == k)
		return true;
	if (w[k] != '_' || n == k + 1)
		return false;
	for (size_t i = k + 1; i < n; i++)
		if (cls[w[i]] != C_DIGIT)
			return false;
	return true;
}

/* Where a statement's reading is. Those up to ST_SELECT look at words only. */
enum st {
	ST_NONE,         /* decided: nothing more to read in this statement */
	ST_SELECT,       /* SELECT or WITH: looking for INTO */
	ST_HEAD,         /* before the statement's first token */
	ST_INTO,         /* SELECT .. INTO [UNLOGGED] [TABLE] */
	ST_PREPARE,      /* PREPARE */
	ST_PREPARE_TX,   /* PREPARE TRANSACTION */
	ST_DECLARE,      /* DECLARE, before FOR: looking for WITH HOLD */
	ST_DECLARE_WITH, /* DECLARE .. WITH */
	ST_SET,          /* SET */
	ST_DISCARD,      /* DISCARD */
	ST_CREATE,       /* CREATE [OR REPLACE] [GLOBAL|LOCAL] */
	ST_CREATE_BODY,  /* the rest of a CREATE: looking for pg_temp */
};

/* What a token is to the statement's state machine. */
enum tok {
	TK_WORD,   /* a word: may be a keyword */
	TK_NAME,   /* a quoted name */
	TK_STRING, /* a string literal of any kind */
	TK_OTHER,  /* anything else */
};

/* A statement's reading: the effects found, the state. */
struct scan {
	uint32_t flags;
	enum st st;
};

/* The statement's first word W (N bytes): the state it leads to. */
static enum st head(struct scan *s, const uint8_t *w, size_t n)
{
	switch (n) {
	case 3:
		if (KW(w, n, "set"))
			return ST_SET;
		break;
	case 4:
		if (KW(w, n, "with"))
			return ST_SELECT;
		if (KW(w, n, "drop"))
			s->flags |= SESS_UNDO;
		else if (KW(w, n, "load"))
			s->flags |= SESS_LOAD;
		break;
	case 5:
		if (KW(w, n, "reset"))
			s->flags |= SESS_SETTING;
		else if (KW(w, n, "close"))
			s->flags |= SESS_UNDO;
		break;
	case 6:
		if (KW(w, n, "select"))
			return ST_SELECT;
		if (KW(w, n, "create"))
			return ST_CREATE;
		break;
	case 7:
		if (KW(w, n, "prepare"))
			return ST_PREPARE;
		if (KW(w, n, "declare"))
			return ST_DECLARE;
		if (KW(w, n, "discard")) {
			s->flags |= SESS_UNDO;
			return ST_DISCARD;
		}
		break;
	case 10:
		if (KW(w, n, "deallocate"))
			s->flags |= SESS_UNDO;
		break;
	}
	return ST_NONE;
}

/* Token T (W, N: the bytes of a word, or inside a name's quotes) of the statement being
 * read, whose state S->st is past ST_NONE. */
static void step(struct scan *s, enum tok t, const uint8_t *w, size_t n)
{
	bool word = t == TK_WORD;
	switch (s->st) {
	case ST_NONE:
		break;
	case ST_HEAD:
		s->st = word ? head(s, w, n) : ST_NONE;
		break;
	case ST_SELECT:
		if (word && KW(w, n, "into"))
			s->st = ST_INTO;
		break;
	case ST_INTO:
		if (word && (KW(w, n, "unlogged") || KW(w, n, "table")))
			break;
		if ((word && (KW(w, n, "temp") || KW(w, n, "temporary"))) ||
		    ((word || t == TK_NAME) && is_pg_temp(w, n, word))) {
			s->flags |= SESS_TEMP;
			s->st = ST_NONE;
		} else {
			s->st = ST_SELECT;
		}
		break;
	case ST_PREPARE:
		if (word && KW(w, n, "transaction")) {
			s->st = ST_PREPARE_TX;
			break;
		}
		/* fall through - the token is the statement's name */
	case ST_PREPARE_TX:
		if (t != TK_STRING)
			s->flags |= SESS_PREPARE;
		s->st = ST_NONE;
		break;
	case ST_DECLARE_WITH:
		if (word && KW(w, n, "hold")) {
			s->flags |= SESS_HOLD;
			s->st = ST_NONE;
			break;
		}
		s->st = ST_DECLARE;
		/* fall through - this token may be WITH or FOR */
	case ST_DECLARE:
		if (word && KW(w, n, "with"))
			s->st = ST_DECLARE_WITH;
		else if (word && KW(w, n, "for"))
			s->st = ST_NONE;
		break;
	case ST_SET:
		if (!(word &&
		      (KW(w, n, "local") || KW(w, n, "transaction") || KW(w, n, "constraints"))))
			s->flags |= SESS_SETTING;
		s->st = ST_NONE;
		break;
	case ST_DISCARD:
		if (word && KW(w, n, "all"))
			s->flags |= SESS_SETTING;
		s->st = ST_NONE;
		break;
	case ST_CREATE:
		if (word && (KW(w, n, "or") || KW(w, n, "replace") || KW(w, n, "global") ||
		             KW(w, n, "local")))
			break;
		if (word && (KW(w, n, "temp") || KW(w, n, "temporary"))) {
			s->flags |= SESS_TEMP;
			s->st = ST_NONE;
			break;
		}
		s->st = ST_CREATE_BODY;
		/* fall through */
	case ST_CREATE_BODY:
		if ((word || t == TK_NAME) && is_pg_temp(w, n, word)) {
			s->flags |= SESS_TEMP;
			s->st = ST_NONE;
		}
		break;
	}
}

/* Token T of the statement whose state is *ST, the effects found so far *FLAGS: step()
 * on a copy, so that the scan's own state stays in registers. */
static inline void step_on(uint32_t *flags, enum st *st, enum tok t, const uint8_t *w, size_t n)
{
	struct scan s = {.flags = 0, .st = *st};
	step(&s, t, w, n);
	*flags |= s.flags;
	*st = s.st;
}

/* A token that is not a word or a name: only states past ST_SELECT look at it. */
#define TOKEN(t)                                                                                   \
	do {                                                                                       \
		if (st > ST_SELECT)                                                                \
			step_on(&flags, &st, t, NULL, 0);                                          \
	} while (0)

/* The end of a quoted string or name opened before P whose quote is Q, doubled inside
 * (''; ""): just past its closing quote, NULL when it has none. */
static const uint8_t *skip_quoted(const uint8_t *p, const uint8_t *end, uint8_t q)
{
	for (;;) {
		p = memchr(p, q, (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
		if (p == end || *p != q)
			return p;
		p++;
	}
}

/* The end of an E'...' string whose body starts at P, as skip_quoted. */
static const uint8_t *skip_estring(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		uint8_t c = *p++;
		if (c == '\\') {
			if (p == end)
				return NULL;
			p++;
		} else if (c == '\'') {
			if (p == end || *p != '\'')
				return p;
			p++;
		}
	}
	return NULL;
}

/* The end of a dollar-quoted string whose body starts at P and whose delimiter ($tag$)
 * is DELIM (DN bytes), as skip_quoted. */
static const uint8_t *skip_dollar(const uint8_t *p, const uint8_t *end, const uint8_t *delim,
                                  size_t dn)
{
	while ((size_t)(end - p) >= dn) {
		p = memchr(p, '$', (size_t)(end - p) - dn + 1);
		if (!p)
			return NULL;
		if (memcmp(p, delim, dn) == 0)
			return p + dn;
		p++;
	}
	return NULL;
}

/* The end of a -- comment whose text starts at P (its line's end is left to be read). */
static const uint8_t *skip_line(const uint8_t *p, const uint8_t *end)
{
	while (p < end && *p != '\n' && *p != '\r')
		p++;
	return p;
}

/* The end of a / * comment whose text starts at P, past its closing * /, NULL when it
 * has none. */
static const uint8_t *skip_comment(const uint8_t *p, const uint8_t *end)
{
	size_t depth = 1;
	while (end - p >= 2) {
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			p += 2;
			if (--depth == 0)
				return p;
		} else {
			p++;
		}
	}
	return NULL;
}

uint32_t sess_scan_full(const char *text, size_t len)
{
	if (len == 0)
		return 0; /* TEXT may then be NULL */
	const uint8_t *p = (const uint8_t *)text, *end = p + len;
	uint32_t flags = 0;
	enum st st = ST_HEAD;
	while (p < end) {
		uint8_t k = cls[*p];
		if (k == C_IDENT) {
			const uint8_t *w = p;
			p = word_end(p + 1, end);
			size_t n = (size_t)(p - w);
			if (n == 1 && p < end && *p == '\'' && (*w | 0x20) == 'e') {
				p = skip_estring(p + 1, end);
				if (!p)
					return flags;
				TOKEN(TK_STRING);
				continue;
			}
			flags |= func_effect(w, n, true);
			if (st == ST_SELECT) { /* the common case, inline */
				if (n == 4 && KW(w, n, "into"))
					st = ST_INTO;
			} else if (st != ST_NONE) {
				step_on(&flags, &st, TK_WORD, w, n);
			}
			continue;
		}
		if (k & C_PLAIN) {
			if (st <= ST_SELECT) { /* the common case: nothing to see in them */
				do
					p++;
				while (p < end && (cls[*p] & C_PLAIN));
			} else {
				if (k != C_SPACE)
					step_on(&flags, &st, TK_OTHER, NULL, 0);
				p++;
			}
			continue;
		}
		switch ((enum cls)k) {
		case C_DQUOTE: {
			const uint8_t *w = p + 1;
			p = skip_quoted(w, end, '"');
			if (!p)
				return flags;
			size_t n = (size_t)(p - 1 - w);
			flags |= func_effect(w, n, false);
			if (st != ST_NONE)
				step_on(&flags, &st, TK_NAME, w, n);
			break;
		}
		case C_SQUOTE:
			p = skip_quoted(p + 1, end, '\'');
			if (!p)
				return flags;
			TOKEN(TK_STRING);
			break;
		case C_DOLLAR: {
			const uint8_t *q = p + 1;
			if (q < end && cls[*q] == C_DIGIT) { /* a parameter: $1 */
				do
					q++;
				while (q < end && cls[*q] == C_DIGIT);
				p = q;
				TOKEN(TK_OTHER);
				break;
			}
			if (q < end && cls[*q] == C_IDENT)
				do
					q++;
				while (q < end && tag_cont(*q));
			if (q < end && *q == '$') {
				const uint8_t *delim = p;
				p = skip_dollar(q + 1, end, delim, (size_t)(q + 1 - delim));
				if (!p)
					return flags;
				TOKEN(TK_STRING);
				break;
			}
			p++; /* a lone $: what follows is read on its own */
			TOKEN(TK_OTHER);
			break;
		}
		case C_DASH:
			if (end - p >= 2 && p[1] == '-') {
				p = skip_line(p + 2, end);
				break;
			}
			p++;
			TOKEN(TK_OTHER);
			break;
		case C_SLASH:
			if (end - p >= 2 && p[1] == '*') {
				p = skip_comment(p + 2, end);
				if (!p)
					return flags;
				break;
			}
			p++;
			TOKEN(TK_OTHER);
			break;
		case C_SEMI:
			p++;
			st = ST_HEAD;
			break;
		default: /* C_IDENT and C_PLAIN ones: above */
			break;
		}
	}
	return flags;
}

/* ---- the quick look ------------------------------------------------------------------ */

/* 32 or 16 bytes of text, as bytes or as pairs of bytes (GCC's and clang's vector
 * extensions: AVX2 or SSE2 instructions on x86-64, what the target has elsewhere). */
typedef uint8_t q_bytes32 __attribute__((vector_size(32)));
typedef uint16_t q_pairs32 __attribute__((vector_size(32)));
typedef int16_t q_mask32 __attribute__((vector_size(32)));
typedef uint8_t q_bytes16 __attribute__((vector_size(16)));
typedef uint16_t q_pairs16 __attribute__((vector_size(16)));
typedef int16_t q_mask16 __attribute__((vector_size(16)));

/* The bytes A, B repeated through 32 bytes: a pair in every lane, whatever the byte
 * order; the first 16 serve blocks of 16. */
#define Q_2(a, b) a, b
#define Q_8(a, b) Q_2(a, b), Q_2(a, b), Q_2(a, b), Q_2(a, b)
#define Q_32(a, b)                                                                                 \
	{                                                                                          \
		Q_8(a, b), Q_8(a, b), Q_8(a, b), Q_8(a, b)                                         \
	}
enum { Q_SEMI, Q_FOLD, Q_OR_DV_NF, Q_IS_DV_NF, Q_OR_VI_FI, Q_IS_VI_FI, Q_IS_MP, Q_IS_EM, Q_N };
static const q_bytes32 q_consts[Q_N] = {
    [Q_SEMI] = Q_32(';', ';'),
    [Q_FOLD] = Q_32(0x20, 0x20),
    /* "advisory" at an odd offset has "dv" at an even one, "set_config" at an even one
     * "nf": both are in the pairs {d,f,l,n} x {f,v} (either case), the lanes that OR
     * 0x2a, 0x30 turns into "nv" */
    [Q_OR_DV_NF] = Q_32(0x2a, 0x30),
    [Q_IS_DV_NF] = Q_32('n', 'v'),
    /* "advisory" at an even offset has "vi", "set_config" at an odd one "fi": the pairs
     * {f,v} x {i} that OR 0x30, 0x20 turns into "vi" */
    [Q_OR_VI_FI] = Q_32(0x30, 0x20),
    [Q_IS_VI_FI] = Q_32('v', 'i'),
    /* "temp" has "mp" at an even offset or "em" */
    [Q_IS_MP] = Q_32('m', 'p'),
    [Q_IS_EM] = Q_32('e', 'm'),
};

/* The lanes (mask type M, pair type P) of block B, from an even offset, that may hold a
 * needle: a ';', a pair of "advisory" or "set_config" above; SEL: of "temp" too. C: the
 * constants in B's type. Macros: one body for both sizes, and a vector of 32 bytes is
 * not passed to a function built without AVX. */
#define Q_PAIR_IS(P, b, c, or, is) ((P)((b) | (c)[or]) == (P)(c)[is])
#define Q_HITS(P, M, b, c, sel)                                                                    \
	((M)((b) == (c)[Q_SEMI]) | Q_PAIR_IS(P, b, c, Q_OR_DV_NF, Q_IS_DV_NF) |                    \
	 Q_PAIR_IS(P, b, c, Q_OR_VI_FI, Q_IS_VI_FI) |                                              \
	 ((sel) ? Q_PAIR_IS(P, b, c, Q_FOLD, Q_IS_MP) | Q_PAIR_IS(P, b, c, Q_FOLD, Q_IS_EM)        \
	        : (M){0}))

/* ACC |= the lanes of TEXT[0..N) (N >= the size of type V) that may hold a needle: every
 * byte but an odd N's last read in pairs from even offsets, in blocks of V, the last one
 * overlapping the one before it. The constants are read from memory (the empty asm):
 * not built in registers at every call. */
#define Q_CONST(c, k, j) memcpy(&(c)[j], (k) + (size_t)(j) * sizeof(q_bytes32), sizeof((c)[j]))
#define Q_SCAN(V, P, M, p, n, sel, acc)                                                            \
	do {                                                                                       \
		const uint8_t *k_ = (const uint8_t *)q_consts;                                     \
		__asm__("" : "+r"(k_));                                                            \
		V c_[Q_N], b_;                                                                     \
		Q_CONST(c_, k_, Q_SEMI);                                                           \
		Q_CONST(c_, k_, Q_FOLD);                                                           \
		Q_CONST(c_, k_, Q_OR_DV_NF);                                                       \
		Q_CONST(c_, k_, Q_IS_DV_NF);                                                       \
		Q_CONST(c_, k_, Q_OR_VI_FI);                                                       \
		Q_CONST(c_, k_, Q_IS_VI_FI);                                                       \
		Q_CONST(c_, k_, Q_IS_MP);                                                          \
		Q_CONST(c_, k_, Q_IS_EM);                                                          \
		size_t last_ = ((n) - sizeof(V)) & ~(size_t)1;                                     \
		for (size_t i_ = 0; i_ < last_; i_ += sizeof(V)) {                                 \
			memcpy(&b_, (p) + i_, sizeof(V));                                          \
			(acc) |= Q_HITS(P, M, b_, c_, sel);                                        \
		}                                                                                  \
		memcpy(&b_, (p) + last_, sizeof(V));                                               \
		(acc) |= Q_HITS(P, M, b_, c_, sel);                                                \
	} while (0)

/* Whether TEXT[0..N) (N >= 16) holds no needle, in blocks of 16 (SSE2 on x86-64). */
static __attribute__((noinline)) bool q_clean16(const uint8_t *p, size_t n, bool sel)
{
	q_mask16 acc = {0};
	if (sel)
		Q_SCAN(q_bytes16, q_pairs16, q_mask16, p, n, true, acc);
	else
		Q_SCAN(q_bytes16, q_pairs16, q_mask16, p, n, false, acc);
	uint64_t w[2];
	memcpy(w, &acc, sizeof(w));
	return !(w[0] | w[1]);
}

/* Whether TEXT[0..N) (N < 16) holds no needle: copied into a block of 16 (zeros after
 * it) as far as blocks of 16 would read it. */
static __attribute__((noinline)) bool q_clean_short(const uint8_t *p, size_t n, bool sel)
{
	uint8_t d[16] = {0};
	for (size_t s = 8; s >= 2; s /= 2)
		if (n >= s) {
			memcpy(d, p, s);
			memcpy(d + s, p + ((n - s) & ~(size_t)1), s);
			break;
		}
	return q_clean16(d, sizeof(d), sel);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Whether TEXT[0..N) (N >= 32) holds no needle, in blocks of 32 with AVX2 instructions,
 * for the processors that have them. */
__attribute__((target("avx2"), noinline)) static bool q_clean32(const uint8_t *p, size_t n,
                                                                bool sel)
{
	q_mask32 acc = {0};
	if (sel)
		Q_SCAN(q_bytes32, q_pairs32, q_mask32, p, n, true, acc);
	else
		Q_SCAN(q_bytes32, q_pairs32, q_mask32, p, n, false, acc);
	return _mm256_testz_si256((__m256i)acc, (__m256i)acc);
}
#endif

/* What a statement's first word asks of the quick look. */
enum q_head {
	Q_NONE,   /* nothing: the full scan reads no more of the statement */
	Q_SELECT, /* SELECT or WITH, or a word that starts alike: "temp" too */
	Q_SLOW,   /* a keyword the full scan reads on from, or a word that starts alike */
};

/* The bytes S[0..4) as one word, in memory order. */
static inline uint32_t q_word(const char *s)
{
	uint32_t u;
	memcpy(&u, s, 4);
	return u;
}

/* The statement whose first word starts at W, with at least 4 bytes from W in the text:
 * what its first four bytes ask (a word's other bytes than letters never become letters
 * by OR 0x20; SET is followed by a byte that ends a word). */
static inline enum q_head q_head(const uint8_t *w)
{
	uint32_t x;
	memcpy(&x, w, 4);
	x |= 0x20202020u;
	switch (w[0] | 0x20) {
	case 's':
		if (x == q_word("sele"))
			return Q_SELECT;
		return (x & q_word("\xff\xff\xff")) == q_word("set") && !(cls[w[3]] & C_WORD)
		           ? Q_SLOW
		           : Q_NONE;
	case 'w':
		return x == q_word("with") ? Q_SELECT : Q_NONE;
	case 'd':
		return x == q_word("drop") || x == q_word("decl") || x == q_word("disc") ||
		               x == q_word("deal")
		           ? Q_SLOW
		           : Q_NONE;
	case 'l':
		return x == q_word("load") ? Q_SLOW : Q_NONE;
	case 'r':
		return x == q_word("rese") ? Q_SLOW : Q_NONE;
	case 'c':
		return x == q_word("clos") || x == q_word("crea") ? Q_SLOW : Q_NONE;
	case 'p':
		return x == q_word("prep") ? Q_SLOW : Q_NONE;
	default:
		return Q_NONE;
	}
}

/* As q_head, for a word of the N < 4 bytes left in the text. */
static enum q_head q_head_short(const uint8_t *w, size_t n)
{
	return n == 3 && (w[0] | 0x20) == 's' && (w[1] | 0x20) == 'e' && (w[2] | 0x20) == 't'
	           ? Q_SLOW
	           : Q_NONE;
}

/* sess_scan_quick, inline in sess_scan. */
static inline __attribute__((always_inline)) bool q_clean(const char *text, size_t len, bool avx2)
{
	const uint8_t *p = (const uint8_t *)text;
	size_t n = len;
	while (n > 0 && (cls[p[n - 1]] == C_SPACE || p[n - 1] == 0))
		n--;
	if (n > 0 && p[n - 1] == ';')
		n--;
	size_t i = 0;
	while (i < n && cls[p[i]] == C_SPACE)
		i++;
	if (i == n)
		return true;
	if ((n & 1) && p[n - 1] == ';')
		return false; /* the one byte the blocks leave out */
	bool sel = false;
	if (cls[p[i]] == C_IDENT) {
		enum q_head h = n - i >= 4 ? q_head(p + i) : q_head_short(p + i, n - i);
		if (h == Q_SLOW)
			return false;
		sel = h == Q_SELECT;
	} else if (p[i] == '-' || p[i] == '/') {
		return false; /* a comment may hide the first word */
	}
	if (n < FUNC_MIN) {
		/* too short for a function's name or SELECT .. INTO temp: one statement? */
		for (; i < n; i++)
			if (p[i] == ';')
				return false;
		return true;
	}
	if (n < 16)
		return q_clean_short(p, n, sel);
#if defined(__x86_64__)
	if (n >= 32 && avx2 && __builtin_cpu_supports("avx2"))
		return q_clean32(p, n, sel);
#endif
	return q_clean16(p, n, sel);
}

bool sess_scan_quick(const char *text, size_t len, bool avx2)
{
	return q_clean(text, len, avx2);
}

uint32_t sess_scan(const char *text, size_t len)
{
	if (q_clean(text, len, true))
		return 0;
	return sess_scan_full(text, len);
}

const char *sess_effect_name(uint32_t bit)
{
	switch (bit) {
	case SESS_PREPARE:
		return "prepare";
	case SESS_HOLD:
		return "hold_cursor";
	case SESS_ADVISORY:
		return "advisory_lock";
	case SESS_TEMP:
		return "temp_table";
	case SESS_LOAD:
		return "load";
	case SESS_SETTING:
		return "setting";
	case SESS_UNDO:
		return "undo";
	}
	return "?";
}

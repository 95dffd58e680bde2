/* Owns the reading of a client's statement text for what it may do to its session beyond
 * its transaction (sessstate.h; step 11, transparent pinning in transaction mode): one
 * pass of a tokenizer over the bytes, a small state machine per statement on its first
 * tokens, and a look at every name for the few functions that make session state. No
 * parser, no allocation, no locale: ASCII case folding by hand.
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

uint32_t sess_scan(const char *text, size_t len)
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

/* What a client's statement text may do to its session beyond its transaction (step 11:
 * transparent pinning in transaction mode). A small tokenizer, not a SQL parser: it reads
 * the first keywords of each statement in a Query's or Parse's text (statements split at
 * ';' outside quotes, quoted identifiers, dollar quotes and comments; white space and
 * comments skipped), and looks anywhere in the text for the few function names that make
 * session state whatever statement calls them. It only says "may": pgcoro confirms with
 * the server's word (pg_prepared_statements, pg_cursors, pg_locks, the temporary schema,
 * pg_settings) after the transaction, so a false positive costs one round trip and a
 * false negative is the limit the README states (state made inside a function body, a
 * DO block, a dynamic EXECUTE). Pure: bytes in, flags out; unit-tested and fuzzed. */
#ifndef PGCORO_SESSSTATE_H
#define PGCORO_SESSSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a statement text may do. Several may be set. */
enum sess_effect {
	SESS_PREPARE = 1u << 0,  /* PREPARE name ... (never PREPARE TRANSACTION) */
	SESS_HOLD = 1u << 1,     /* DECLARE ... WITH HOLD ... */
	SESS_ADVISORY = 1u << 2, /* pg_advisory_lock, pg_advisory_lock_shared,
	                          * pg_try_advisory_lock, pg_try_advisory_lock_shared called
	                          * anywhere (not the _xact_ ones) */
	SESS_TEMP = 1u << 3,     /* CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY TABLE|VIEW|
	                          * SEQUENCE..., a CREATE naming pg_temp (CREATE TABLE [IF NOT
	                          * EXISTS] pg_temp.x, CREATE FUNCTION pg_temp.f ...), SELECT|WITH
	                          * ... INTO [UNLOGGED] [TABLE] TEMP|TEMPORARY|pg_temp.x (also
	                          * CREATE TEMP ... ON COMMIT DROP: the check clears it) */
	SESS_LOAD = 1u << 4,     /* LOAD 'library' */
	SESS_SETTING = 1u << 5,  /* SET (not SET LOCAL, SET TRANSACTION, SET CONSTRAINTS), SET
	                          * SESSION ..., SET ROLE, RESET, or set_config( anywhere: the
	                          * session's settings may have changed */
	SESS_UNDO = 1u << 6,     /* DEALLOCATE, CLOSE, DISCARD, DROP, pg_advisory_unlock /
	                          * pg_advisory_unlock_shared / pg_advisory_unlock_all anywhere:
	                          * some session state may be gone */
};

/* What make a server the client's alone (SESS_SETTING and SESS_UNDO do not). */
#define SESS_PINS (SESS_PREPARE | SESS_HOLD | SESS_ADVISORY | SESS_TEMP | SESS_LOAD)

/* The effects (enum sess_effect bits) the statements in TEXT (LEN bytes, not
 * NUL-terminated; it may hold NULs, which end nothing) may have. Reads only TEXT[0..LEN).
 * Keywords and function names match in any case; a quoted identifier ("PREPARE") is not
 * a keyword; text inside string literals, quoted identifiers, dollar-quoted strings and
 * comments (-- to end of line, nested / * * /) is never matched; an unterminated one ends
 * the scan. Cheap on text that creates nothing (a quick look at its bytes, 32 at a time,
 * clears most of it), no allocation. */
uint32_t sess_scan(const char *text, size_t len);

/* sess_scan's two halves, exported for the unit tests and the fuzzer (callers use
 * sess_scan). sess_scan_quick: true only when sess_scan_full would return 0 (a cheap
 * look for the few bytes that may matter; false: doubtful, read it whole); AVX2: with
 * AVX2 instructions when the processor has them (as sess_scan), else with the target's
 * default ones. sess_scan_full: sess_scan's answer, read token by token. */
bool sess_scan_quick(const char *text, size_t len, bool avx2);
uint32_t sess_scan_full(const char *text, size_t len);

/* The name of one effect bit (for log lines, SHOW CLIENTS and metrics labels):
 * "prepare", "hold_cursor", "advisory_lock", "temp_table", "load", "setting", "undo";
 * "?" for anything else. */
const char *sess_effect_name(uint32_t bit);

#endif

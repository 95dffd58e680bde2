/* The PostgreSQL v3 wire protocol as pure functions over byte buffers: framing, parsing
 * and building. No I/O, no allocation except when a builder must grow. */
#ifndef PGCORO_PROTO_H
#define PGCORO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_V3            196608u   /* 3.0 */
#define PROTO_SSL_CODE      80877103u
#define PROTO_GSSENC_CODE   80877104u
#define PROTO_CANCEL_CODE   80877102u
#define PROTO_STARTUP_MAX   10000u    /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PROTO_HDR           5u        /* type byte + int32 length */
#define PROTO_MAX_PARAMS    64

/* ---- building ------------------------------------------------------------------------ */

/* A reusable output buffer. Messages are appended; reset keeps the allocation. */
struct pbuf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t msg_start; /* offset of the message being built */
	bool failed;      /* an allocation failed; contents are unusable */
};

void pbuf_init(struct pbuf *b);
void pbuf_reset(struct pbuf *b);
void pbuf_free(struct pbuf *b);

/* Starts a message of TYPE (0: no type byte, as for startup packets); proto_end patches
 * the length. Between them, put_* append big-endian fields. */
void proto_begin(struct pbuf *b, uint8_t type);
void proto_put_u8(struct pbuf *b, uint8_t v);
void proto_put_u16(struct pbuf *b, uint16_t v);
void proto_put_u32(struct pbuf *b, uint32_t v);
void proto_put_bytes(struct pbuf *b, const void *p, size_t n);
void proto_put_str(struct pbuf *b, const char *s); /* with its NUL */
void proto_end(struct pbuf *b);

/* Whole messages, appended to B. */
/* ErrorResponse 'E' (or NoticeResponse 'N' with proto_build_notice): fields S, V, C, M and,
 * when non-NULL, D (detail) and H (hint). SEVERITY is "FATAL", "ERROR", ... */
void proto_build_error(struct pbuf *b, const char *severity, const char *sqlstate,
		       const char *message, const char *detail, const char *hint);
void proto_build_notice(struct pbuf *b, const char *severity, const char *sqlstate,
			const char *message, const char *detail);
/* Authentication 'R': int32 CODE followed by DATA (LEN bytes, may be 0). */
void proto_build_auth(struct pbuf *b, uint32_t code, const void *data, size_t len);
/* AuthenticationSASL offering exactly "SCRAM-SHA-256". */
void proto_build_auth_sasl(struct pbuf *b);
void proto_build_param_status(struct pbuf *b, const char *name, const char *value); /* 'S' */
void proto_build_backend_key(struct pbuf *b, uint32_t pid, uint32_t key);           /* 'K' */
void proto_build_ready(struct pbuf *b, uint8_t status);                             /* 'Z' */
/* NegotiateProtocolVersion 'v': the newest version supported (major << 16 | minor, as
 * PostgreSQL sends it), then the unrecognized options. */
/* A result column: its name, type OID and type length (-1 variable). */
struct proto_column {
	const char *name;
	uint32_t type_oid;
	int type_len;
};
void proto_build_row_description(struct pbuf *b, const struct proto_column *cols, int n); /* 'T' */
/* 'D': N text values; a NULL pointer is SQL NULL. */
void proto_build_data_row(struct pbuf *b, const char *const *values, int n);
void proto_build_command_complete(struct pbuf *b, const char *tag); /* 'C' */
void proto_build_empty_query(struct pbuf *b);                        /* 'I' */
void proto_build_negotiate(struct pbuf *b, uint32_t version, const char *const *names, int n);

/* Extended-protocol messages under a new statement name, the rest of the original
 * message (REST, RLEN bytes, as returned by the parsers below) copied unchanged. */
void proto_build_parse(struct pbuf *b, const char *name, const uint8_t *rest, uint32_t rlen); /* 'P' */
void proto_build_bind(struct pbuf *b, const char *portal, const char *stmt, const uint8_t *rest,
		      uint32_t rlen);                                                  /* 'B' */
/* Describe 'D' or Close 'C' (TYPE) of a statement ('S') or portal ('P') (KIND). */
void proto_build_target(struct pbuf *b, uint8_t type, uint8_t kind, const char *name);
/* A message with no body: ParseComplete '1', BindComplete '2', CloseComplete '3', ... */
void proto_build_empty(struct pbuf *b, uint8_t type);
void proto_build_execute(struct pbuf *b, const char *portal, uint32_t max_rows); /* 'E' */
void proto_build_query(struct pbuf *b, const char *sql);                         /* 'Q' */

/* Authentication codes */
#define AUTH_REQ_OK        0
#define AUTH_REQ_PASSWORD  3
#define AUTH_REQ_MD5       5
#define AUTH_REQ_SASL      10
#define AUTH_REQ_SASL_CONT 11
#define AUTH_REQ_SASL_FIN  12

/* ---- framing ------------------------------------------------------------------------- */

enum proto_frame {
	PROTO_NEED_MORE, /* the message is not all there yet */
	PROTO_OK,        /* the whole message is there */
	PROTO_BAD,       /* length field out of range */
};

/* A message at the head of a buffer, as proto_next / proto_next_startup frame it. */
struct proto_msg {
	const uint8_t *data; /* its first byte: the type byte (a startup packet: its length) */
	uint8_t type;        /* 0 for a startup-style packet */
	uint32_t len;        /* the length field, which counts itself but not the type byte */
	size_t size;         /* bytes of the whole message: LEN + 1 (a startup packet: LEN) */
	const uint8_t *body; /* what follows the header (a startup packet: its protocol code) */
	uint32_t blen;       /* bytes of BODY */
};

/* The regular message at the head of DATA (AVAIL bytes). PROTO_OK only when all of it is
 * there: then *M describes it and every byte of it may be read. NEED_MORE until then
 * (M->len is set once the header is there). BAD when the length field is < 4 or > MAX_LEN
 * (M->len holds it). The one framing of input pgcoro handles itself; the relay, which
 * streams what it passes, frames headers in place and looks only at whole messages. */
enum proto_frame proto_next(const uint8_t *data, size_t avail, uint32_t max_len,
			    struct proto_msg *m) __attribute__((warn_unused_result));

/* The length field a server message of TYPE must have, or 0 when it varies: the
 * fixed-size messages the relay and prepared.c look at or swallow (ParseComplete,
 * BindComplete, CloseComplete, NoData, PortalSuspended, EmptyQueryResponse: 4;
 * ReadyForQuery: 5). A hostile server's other length is refused, never waited for. */
extern const uint8_t proto_server_fixed_len[256];

/* Non-zero for the message types a client may send once logged in (PostgreSQL's
 * PostgresMain: Bind, Close, Describe, Execute, FunctionCall, Flush, Parse, Query, Sync,
 * Terminate, CopyData/Done/Fail). Any other type gets FATAL 08P01 "invalid frontend
 * message type", from pgcoro, without reaching a server (which would answer it with a
 * FATAL nobody waits for). */
extern const uint8_t proto_frontend_type[256];

/* The same for a startup-style packet (int32 length first, no type byte). BAD when the
 * length is < 8 or > PROTO_STARTUP_MAX. */
enum proto_frame proto_next_startup(const uint8_t *data, size_t avail, struct proto_msg *m)
	__attribute__((warn_unused_result));

/* ---- parsing ------------------------------------------------------------------------- */

enum proto_startup_kind {
	STARTUP_MSG,    /* StartupMessage, protocol 3.x */
	STARTUP_SSL,    /* SSLRequest */
	STARTUP_GSSENC, /* GSSENCRequest */
	STARTUP_CANCEL, /* CancelRequest */
};

/* A parsed startup packet. Strings point into the packet passed to proto_parse_startup,
 * which must outlive this struct. */
struct proto_startup {
	enum proto_startup_kind kind;
	uint32_t version;               /* major << 16 | minor */
	const char *user;               /* NULL if absent */
	const char *database;           /* NULL if absent */
	int nparams;                    /* every pair except user, database and _pq_.* */
	const char *names[PROTO_MAX_PARAMS];
	const char *values[PROTO_MAX_PARAMS];
	int nunrecognized;              /* _pq_.* protocol options (for NegotiateProtocolVersion) */
	const char *unrecognized[PROTO_MAX_PARAMS];
	uint32_t cancel_pid, cancel_key;
};

/* Parses PKT (LEN bytes, length field included). On a malformed packet returns false and
 * sets *WHY to a static reason: wrong length for the code, a protocol major other than 3,
 * missing terminators, an empty or missing "user", a name without value, too many params. */
bool proto_parse_startup(const uint8_t *pkt, uint32_t len, struct proto_startup *out,
			 const char **why) __attribute__((warn_unused_result));

/* What the "replication" startup parameter asks for, read as PostgreSQL reads it. */
enum proto_replication {
	PROTO_REPL_INVALID = -1, /* not a boolean nor "database": PostgreSQL refuses it */
	PROTO_REPL_NONE,         /* false, off, no, 0 (or a prefix): a normal connection */
	PROTO_REPL_LOGICAL,      /* "database": a walsender connected to a database */
	PROTO_REPL_PHYSICAL,     /* true, on, yes, 1 (or a prefix): a physical walsender */
};

/* VALUE of a "replication" startup parameter: "database" (exactly), or a boolean as
 * PostgreSQL's parse_bool takes it (any case; a prefix of true/false/yes/no, of on/off
 * from two letters, 1 or 0). */
enum proto_replication proto_parse_replication(const char *value);

/* In the parse functions below BODY is the message after its 5-byte header, BLEN = LEN - 4. */

/* PasswordMessage: one NUL-terminated string that ends exactly at BLEN. */
bool proto_parse_password(const uint8_t *body, uint32_t blen, const char **password)
	__attribute__((warn_unused_result));

/* SASLInitialResponse: mechanism name, int32 data length (-1 = none), data. */
bool proto_parse_sasl_initial(const uint8_t *body, uint32_t blen, const char **mech,
			      const uint8_t **data, uint32_t *datalen) __attribute__((warn_unused_result));

/* ParameterStatus: name, value. */
bool proto_parse_param_status(const uint8_t *body, uint32_t blen, const char **name,
			      const char **value) __attribute__((warn_unused_result));

/* Parse: the statement name; *REST, *RLEN: what follows it (query, parameter types). */
bool proto_parse_parse(const uint8_t *body, uint32_t blen, const char **name,
		       const uint8_t **rest, uint32_t *rlen) __attribute__((warn_unused_result));

/* Bind: the portal and statement names; *REST, *RLEN: what follows them. */
bool proto_parse_bind(const uint8_t *body, uint32_t blen, const char **portal, const char **stmt,
		      const uint8_t **rest, uint32_t *rlen) __attribute__((warn_unused_result));

/* Describe / Close: *KIND ('S' or 'P', not checked) and the name, which must end at BLEN. */
bool proto_parse_target(const uint8_t *body, uint32_t blen, uint8_t *kind, const char **name)
	__attribute__((warn_unused_result));

/* What a simple Query's text is, for LISTEN/UNLISTEN served by pgcoro. */
enum proto_listen {
	LISTEN_OTHER,        /* anything else (several statements, comments, ...) */
	LISTEN_ONE,          /* LISTEN channel */
	UNLISTEN_ONE,        /* UNLISTEN channel */
	UNLISTEN_ALL,        /* UNLISTEN * */
};

/* Classifies SQL (LEN bytes, no NUL needed): one LISTEN or UNLISTEN statement, keyword in
 * any case, an optional ';' and white space around. The channel is written to CHANNEL
 * (CAP bytes) as PostgreSQL names it: an unquoted identifier lower-cased (ASCII), a
 * quoted one as written ("" for a quote). Identifiers over 63 bytes, non-ASCII unquoted
 * ones and an empty quoted one give LISTEN_OTHER. */
enum proto_listen proto_parse_listen(const char *sql, size_t len, char *channel, size_t cap);

/* True when SQL (LEN bytes, no NUL needed) is one `DEALLOCATE [PREPARE] name` statement,
 * keywords in any case, an optional ';' and white space around: NAME (CAP bytes, at least
 * 64) gets the statement's name as PostgreSQL reads it (unquoted lower-cased, quoted as
 * written). False for anything else: DEALLOCATE ALL, several statements, comments, a name
 * over 63 bytes or unquoted non-ASCII. */
bool proto_parse_deallocate(const char *sql, size_t len, char *name, size_t cap)
	__attribute__((warn_unused_result));

/* NotificationResponse 'A'. */
void proto_build_notification(struct pbuf *b, uint32_t pid, const char *channel,
			      const char *payload);

/* ErrorResponse / NoticeResponse: the value of field CODE ('C', 'M', 'S', ...), or NULL. */
const char *proto_error_field(const uint8_t *body, uint32_t blen, uint8_t code);

#endif

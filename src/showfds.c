/* Owns the SHOW FDS answer's bytes (showfds.h): its columns, and the new process's reading
 * of the old one's answer — what each message is, a DataRow's values (bounded by the
 * message, NUL-terminated in place), the SCRAM keys in hex and the pgcoro_params pairs. */
#include "showfds.h"

#include <stdlib.h>
#include <string.h>

const struct proto_column showfds_cols[SHOWFDS_NCOLS] = {
    {"fd", 23, 4},
    {"task", 25, -1},
    {"user", 25, -1},
    {"database", 25, -1},
    {"addr", 25, -1},
    {"port", 23, 4},
    {"cancel", 20, 8},
    {"link", 23, 4},
    {"client_encoding", 25, -1},
    {"std_strings", 25, -1},
    {"datestyle", 25, -1},
    {"timezone", 25, -1},
    {"password", 25, -1},
    {"scram_client_key", 17, -1},
    {"scram_server_key", 17, -1},
    {"pgcoro_params", 25, -1},
};
enum {
	COL_FD,
	COL_TASK,
	COL_USER,
	COL_DB,
	COL_ADDR,
	COL_PORT,
	COL_CANCEL,
	COL_LINK,
	COL_ENC,
	COL_STD,
	COL_DATESTYLE,
	COL_TZ,
	COL_PASSWORD,
	COL_CKEY,
	COL_SKEY,
	COL_PARAMS
};

const char *const showfds_reported[4] = {"client_encoding", "standard_conforming_strings",
                                         "DateStyle", "TimeZone"};

enum showfds_msg showfds_msg_kind(const struct proto_msg *m, const char **text)
{
	switch (m->type) {
	case 'D':
		return SHOWFDS_ROW;
	case 'Z':
		return SHOWFDS_READY;
	case 'E': {
		/* bounded by the body: the old process's last field may lack its NUL */
		const char *t = proto_error_field(m->body, m->blen, 'M');
		*text = t ? t : "?";
		return SHOWFDS_ERROR;
	}
	case 'R':
		return m->blen >= 4 && (m->body[0] | m->body[1] | m->body[2] | m->body[3]) != 0
		           ? SHOWFDS_PASSWORD
		           : SHOWFDS_OTHER;
	default:
		return SHOWFDS_OTHER;
	}
}

static int unhex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* A bytea text value of SCRAM_KEY_LEN bytes ("\x..."). */
static bool key_of(const char *v, uint8_t out[SCRAM_KEY_LEN])
{
	if (!v || strncmp(v, "\\x", 2) != 0 || strlen(v) != 2 + 2 * SCRAM_KEY_LEN)
		return false;
	for (int i = 0; i < SCRAM_KEY_LEN; i++) {
		int h = unhex(v[2 + 2 * i]), l = unhex(v[3 + 2 * i]);
		if (h < 0 || l < 0)
			return false;
		out[i] = (uint8_t)(h << 4 | l);
	}
	return true;
}

bool showfds_parse_row(uint8_t *body, uint32_t blen, struct showfds_row *row)
{
	char *v[SHOWFDS_NCOLS] = {0};
	uint8_t *p = body, *end = p + blen;
	int ncols = blen >= 2 ? p[0] << 8 | p[1] : 0;
	if (ncols < SHOWFDS_PGB_NCOLS)
		return false;
	p += 2;
	for (int i = 0; i < ncols && i < SHOWFDS_NCOLS; i++) {
		if (end - p < 4)
			return false;
		int32_t len =
		    (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | p[2] << 8 | p[3]);
		if (len < 0) {
			p += 4;
			continue;
		}
		if (end - p - 4 < len)
			return false;
		memmove(p, p + 4,
		        (size_t)len); /* the value moves over its length: room for a NUL */
		p[len] = 0;
		v[i] = (char *)p;
		p += 4 + len;
	}
	if (!v[COL_TASK] || !v[COL_FD])
		return false;
	*row = (struct showfds_row){
	    .oldfd = atoi(v[COL_FD]),
	    .task = v[COL_TASK],
	    .user = v[COL_USER],
	    .db = v[COL_DB],
	    .addr = v[COL_ADDR],
	    .port = v[COL_PORT] ? atoi(v[COL_PORT]) : 0,
	    .link = v[COL_LINK] ? atoi(v[COL_LINK]) : 0,
	    .cancel = v[COL_CANCEL] ? strtoull(v[COL_CANCEL], NULL, 10) : 0,
	    .all = v[COL_PARAMS],
	    .password = v[COL_PASSWORD],
	};
	for (int i = 0; i < 4; i++)
		row->params[i] = v[COL_ENC + i];
	row->keys = key_of(v[COL_CKEY], row->ckey) && key_of(v[COL_SKEY], row->skey);
	return true;
}

int showfds_row_params(struct showfds_row *row, const char **names, const char **values, int cap)
{
	int n = 0;
	for (char *q = row->all; q && *q && n < cap;) {
		char *us = strchr(q, SHOWFDS_PARAM_US),
		     *rs = us ? strchr(us, SHOWFDS_PARAM_RS) : NULL;
		if (!rs)
			break;
		*us = *rs = 0;
		names[n] = q;
		values[n++] = us + 1;
		q = rs + 1;
	}
	if (row->all) {
		row->all = NULL; /* cut: once */
		return n;
	}
	for (int i = 0; i < 4 && n < cap; i++)
		if (row->params[i]) {
			names[n] = showfds_reported[i];
			values[n++] = row->params[i];
		}
	return n;
}

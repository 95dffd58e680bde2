/* The relay: framed passthrough of whole protocol messages between a client and its
 * server, with back-pressure. It looks inside only ReadyForQuery, ParameterStatus and
 * Terminate. */
#ifndef PGCORO_RELAY_H
#define PGCORO_RELAY_H

#include <stdint.h>

#include "proto.h"
#include "types.h"

struct evbuffer;

#define RELAY_HIGH_WATER (256 * 1024) /* stop reading a side whose peer has this much queued */
#define RELAY_LOW_WATER (64 * 1024)   /* resume once the peer's queue drains to this */
#define RELAY_MAX_READ (64 * 1024)

struct runtime;
struct bufferevent;

void relay_init(struct runtime *rt);

/* Reads the header of the message at the head of IN without consuming it. */
enum proto_frame relay_peek_header(struct evbuffer *in, uint32_t max_len, uint8_t *type,
				   uint32_t *len);

/* Sets buffer limits and watermarks on a bufferevent used by the relay. */
void relay_setup_bev(struct bufferevent *bev);

/* Forwards what the client has sent to its server. May disconnect C. */
void relay_client_to_server(client_t *c);

/* Forwards what the server has sent to its client. May disconnect S or its client. */
void relay_server_to_client(server_t *s);

#endif

/* The relay: framed passthrough of whole protocol messages between a client and its
 * server, with back-pressure. It looks inside only ReadyForQuery, ParameterStatus and
 * Terminate. */
#ifndef PGCORO_RELAY_H
#define PGCORO_RELAY_H

#include <stdint.h>

#include "proto.h"
#include "types.h"

struct evbuffer;

#include "stream.h"

/* Stop moving to a side that has this much queued; its stream's drain callback (at
 * STREAM_DRAIN_LOW) resumes the relay. Sources stop being read at STREAM_READ_HIGH. */
#define RELAY_HIGH_WATER STREAM_READ_HIGH

struct runtime;

void relay_init(struct runtime *rt);

/* Reads the header of the message at the head of IN without consuming it. */
enum proto_frame relay_peek_header(struct evbuffer *in, uint32_t max_len, uint8_t *type,
				   uint32_t *len);


/* Forwards what the client has sent to its server. May disconnect C. */
void relay_client_to_server(client_t *c);

/* Forwards what the server has sent to its client. May disconnect S or its client. */
void relay_server_to_client(server_t *s);

#endif

/* The relay: framed passthrough of whole protocol messages between a client and its
 * server, with back-pressure. It looks inside only ReadyForQuery, ParameterStatus and
 * Terminate, and lets prepared.c rewrite named statements in transaction mode. */
#ifndef PGCORO_RELAY_H
#define PGCORO_RELAY_H

#include "stream.h"
#include "types.h"

/* Stop moving to a side that has this much queued; its stream's drain callback (at
 * STREAM_DRAIN_LOW) resumes the relay. Sources stop being read at STREAM_READ_HIGH. */
#define RELAY_HIGH_WATER STREAM_READ_HIGH

struct runtime;

void relay_init(struct runtime *rt);

/* Forwards what the client has sent to its server. May disconnect C. */
void relay_client_to_server(client_t *c);

/* Forwards what the server has sent to its client. May disconnect S or its client. */
void relay_server_to_client(server_t *s);

#endif

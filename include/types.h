/* Forward typedefs shared by every module, so headers need not include each other. */
#ifndef PGCORO_TYPES_H
#define PGCORO_TYPES_H

typedef struct client client_t;
typedef struct server server_t;
typedef struct pool pool_t;
typedef struct config config_t;
typedef struct executor executor_t;
typedef struct auth_file auth_file_t;

#endif
